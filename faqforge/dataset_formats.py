"""A published version in the shapes other tools take as they are.

Every version holds ``train.messages.jsonl`` and ``eval.messages.jsonl``: one conversation a
row (system prompt, question, answer), the ``messages`` column that TRL's ``SFTTrainer`` and
axolotl's ``type: chat_template`` read without mapping. ``faqforge export`` writes the others:

- ``messages``: the two chat files, copied;
- ``alpaca``: ``instruction``/``input``/``output``/``system`` rows (axolotl ``type: alpaca``);
- ``sharegpt``: ``conversations`` of ``from``/``value`` turns (``system``, ``human``, ``gpt``);
- ``parquet``: the chat rows as ``train.parquet`` and ``eval.parquet``;
- ``hf``: a ``datasets.DatasetDict`` with ``train`` and ``eval``, by ``save_to_disk``.

Rows keep ``id`` and ``source``, so an exported example still leads back to its document
(``faqforge lineage <id>``).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from faqforge.chat import to_messages
from faqforge.records import QAPair
from faqforge.storage import iter_jsonl, write_jsonl

FORMATS = ("messages", "alpaca", "sharegpt", "parquet", "hf")
SPLITS = ("train", "eval")
SHAREGPT_ROLES = {"system": "system", "user": "human", "assistant": "gpt"}


def chat_file(split: str) -> str:
    return f"{split}.messages.jsonl"


def messages_row(pair: QAPair, system_prompt: str) -> dict[str, Any]:
    """One conversation; the same columns in both splits (a loader needs one schema)."""
    return {
        "id": pair.id,
        "source": pair.source,
        "messages": to_messages(pair.question, pair.answer, system_prompt),
    }


def alpaca_row(row: dict[str, Any]) -> dict[str, Any]:
    system, user, assistant = (m["content"] for m in row["messages"])
    return {"id": row["id"], "source": row["source"], "system": system,
            "instruction": user, "input": "", "output": assistant}  # fmt: skip


def sharegpt_row(row: dict[str, Any]) -> dict[str, Any]:
    turns = [{"from": SHAREGPT_ROLES[m["role"]], "value": m["content"]} for m in row["messages"]]
    return {"id": row["id"], "source": row["source"], "conversations": turns}


def chat_rows(version_dir: Path, split: str) -> list[dict[str, Any]]:
    path = version_dir / chat_file(split)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing: versions published before chat files existed have none; "
            "run `faqforge run refresh` again to republish it"
        )
    return list(iter_jsonl(path))


def export(version_dir: Path, fmt: str, dest: Path) -> list[Path]:
    """Write ``version_dir``'s splits to ``dest`` in ``fmt``; returns what was written."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; one of {', '.join(FORMATS)}")
    rows = {split: chat_rows(version_dir, split) for split in SPLITS}
    dest.mkdir(parents=True, exist_ok=True)
    if fmt == "hf":
        import datasets

        datasets.disable_progress_bars()  # the command prints the paths it wrote, nothing else
        splits = {split: datasets.Dataset.from_list(r) for split, r in rows.items()}
        datasets.DatasetDict(splits).save_to_disk(str(dest))
        return [dest]
    if fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        written = []
        for split, r in rows.items():
            written.append(dest / f"{split}.parquet")
            pq.write_table(pa.Table.from_pylist(r), written[-1])
        return written
    convert = {"messages": lambda r: r, "alpaca": alpaca_row, "sharegpt": sharegpt_row}[fmt]
    return [_write(dest / f"{split}.{fmt}.jsonl", map(convert, r)) for split, r in rows.items()]


def _write(path: Path, rows: Iterable[dict[str, Any]]) -> Path:
    write_jsonl(path, rows)
    return path
