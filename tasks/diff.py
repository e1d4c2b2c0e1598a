"""What changed between two dataset versions: added, removed and changed pairs, and retention.

A pair id hashes its chunk, question and answer, so an edited answer gets a new id. Pairs are
matched by id first; an unmatched old and new pair with the same document and normalised
question count as one ``changed`` pair (the answer or chunk moved on), the rest as ``added`` /
``removed``. Shares are relative to the previous version's row count, which is what the
change bound in validation reads. Not covered: matching paraphrased questions.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from faqforge.records import QAPair
from faqforge.storage import read_json, read_records
from tasks.text import normalise

SAMPLE = 10  # ids and questions listed per kind in the artifact
FIELDS = ("answer", "chunk_id", "source")  # what a changed pair may differ in


def rows_of(train: Iterable[QAPair], evals: Iterable[QAPair]) -> dict[str, tuple[str, QAPair]]:
    return {p.id: (side, p) for side, ps in (("train", train), ("eval", evals)) for p in ps}


def read_version(version_dir: Path) -> dict[str, tuple[str, QAPair]]:
    return rows_of(
        read_records(version_dir / "train.jsonl", QAPair),
        read_records(version_dir / "eval.jsonl", QAPair),
    )


def dataset_diff(
    previous: dict[str, tuple[str, QAPair]], current: dict[str, tuple[str, QAPair]]
) -> dict[str, Any]:
    """``{added, removed, changed, unchanged, ..._share}``; ids and sides in the lists."""
    old_only = {i: r for i, r in previous.items() if i not in current}
    new_only = {i: r for i, r in current.items() if i not in previous}
    by_question = {(p.doc_id, normalise(p.question)): i for i, (_, p) in old_only.items()}
    changed = []
    for new_id, (side, pair) in list(new_only.items()):
        old_id = by_question.pop((pair.doc_id, normalise(pair.question)), None)
        if old_id is not None:
            old = old_only.pop(old_id)[1]
            fields = [f for f in FIELDS if getattr(old, f) != getattr(pair, f)]
            changed.append({"id": new_id, "previous_id": old_id, "split": side, "fields": fields})
            del new_only[new_id]
    n_prev = len(previous)

    def share(n: int) -> float | None:
        return round(n / n_prev, 4) if n_prev else None

    return {
        "previous_rows": n_prev,
        "rows": len(current),
        "added": [{"id": i, "split": s, "question": p.question} for i, (s, p) in new_only.items()],
        "removed": [
            {"id": i, "split": s, "question": p.question} for i, (s, p) in old_only.items()
        ],
        "changed": changed,
        "unchanged": len(current.keys() & previous.keys()),
        "added_share": share(len(new_only)),
        "removed_share": share(len(old_only)),
    }


def change_shares(
    previous_dir: Path | None, train: Sequence[QAPair], evals: Sequence[QAPair]
) -> dict:
    """``added_share`` / ``removed_share`` against a version folder (None: no previous)."""
    if previous_dir is None:
        return {"added_share": None, "removed_share": None}
    diff = dataset_diff(read_version(previous_dir), rows_of(train, evals))
    return {k: diff[k] for k in ("added_share", "removed_share")}


def retention(stages: dict[str, dict], previous: dict[str, dict] | None) -> list[dict[str, Any]]:
    """Per stage: in, out and out/in now, and out/in in the previous version."""

    def kept(counts: dict | None) -> float | None:
        return round(counts["out"] / counts["in"], 4) if counts and counts["in"] else None

    return [
        {
            "stage": name,
            "in": counts["in"],
            "out": counts["out"],
            "retention": kept(counts),
            "previous_retention": kept((previous or {}).get(name)),
        }
        for name, counts in stages.items()
    ]


def previous_stages(previous_dir: Path | None) -> dict[str, dict] | None:
    if previous_dir is None or not (previous_dir / "manifest.json").is_file():
        return None
    return read_json(previous_dir / "manifest.json").get("stages")


def diff_markdown(version: str, previous: str | None, diff: dict, stages: list[dict]) -> str:
    """The artifact: counts, a few examples per kind, and retention by stage."""
    lines = [
        f"# Dataset {version} vs {previous or '(none)'}",
        "",
        f"{diff['rows']} pairs ({diff['previous_rows']} before): {len(diff['added'])} added, "
        f"{len(diff['removed'])} removed, {len(diff['changed'])} changed, "
        f"{diff['unchanged']} unchanged.",
    ]
    for kind in ("added", "removed"):
        if diff[kind]:
            lines += ["", f"**{kind}** (first {SAMPLE}):", ""]
            lines += [f"- `{r['id']}` ({r['split']}): {r['question']}" for r in diff[kind][:SAMPLE]]
    if diff["changed"]:
        lines += ["", f"**changed** (first {SAMPLE}):", ""]
        lines += [
            f"- `{c['previous_id']}` → `{c['id']}`: {', '.join(c['fields']) or 'id'}"
            for c in diff["changed"][:SAMPLE]
        ]
    lines += ["", "| stage | in | out | retention | previous |", "|---|---|---|---|---|"]
    lines += [
        f"| {r['stage']} | {r['in']} | {r['out']} | {r['retention']} | "
        f"{r['previous_retention'] if r['previous_retention'] is not None else '—'} |"
        for r in stages
    ]
    return "\n".join(lines)
