"""The dataset card: ``datasets/<version>/README.md``, written from the version's manifest.

YAML front matter in the Hugging Face hub's dataset-card format, so the folder can be pushed
as it is and ``datasets.load_dataset(<version dir>)`` reads it: the ``default`` config is the
chat files with splits ``train`` and ``eval`` (without it the loader would call ``eval.jsonl``
``test``), ``pairs`` and ``eval_items`` the records with their lineage fields. The body says
what a reader needs before training on it: source corpus, teacher, counts, rejections, eval
probes, known limits.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import yaml

from faqforge.dataset_formats import chat_file
from faqforge.records import Rejection

# The hub's size_categories buckets (upper bounds, exclusive).
SIZE_BUCKETS = ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"),
                (1_000_000, "100K<n<1M"), (10_000_000, "1M<n<10M"))  # fmt: skip
CHAT_FEATURES = [
    {"name": "id", "dtype": "string"},
    {"name": "source", "dtype": "string"},
    {"name": "messages", "list": [{"name": "role", "dtype": "string"},
                                  {"name": "content", "dtype": "string"}]},
]  # fmt: skip
SHOWN_DOCUMENTS = 30  # the rest are in manifest.json
LIMITS = """\
- Questions and answers are written by a teacher model from the documents; they are checked
  by rules (curate, dedup, decontaminate, the Great Expectations suites), not read by a person.
  Answers can be wrong where the source is ambiguous.
- Each answer comes from one chunk of one document: facts spread over several sections are
  asked piecewise, and nothing here is about the documents' subject beyond what they say.
- The eval split's knowledge probe asks facts the training split also teaches, in other words:
  it measures whether tuning taught them, not how a model does on new documents (the
  unseen_documents probe is for that, and a closed-book model cannot know those answers).
- The documents' own licence applies to the text; the `license` field above is the one
  configured for this dataset (`publish.license`)."""


def size_category(rows: int) -> str:
    return next((name for bound, name in SIZE_BUCKETS if rows < bound), "n>10M")


def front_matter(manifest: dict[str, Any]) -> dict[str, Any]:
    cfg, files = manifest["config"], manifest["files"]
    chats = {s: files[chat_file(s)] for s in ("train", "eval")}
    return {
        "pretty_name": cfg["publish"]["pretty_name"] or f"faqforge {cfg['name']} FAQ",
        "license": cfg["publish"]["license"],
        "language": list(cfg["curate"]["languages"]),
        "task_categories": ["question-answering", "text-generation"],
        "size_categories": [size_category(sum(f["rows"] for f in chats.values()))],
        "tags": ["faqforge", "synthetic", "faq", "sft"],
        "configs": [
            {
                "config_name": "default",
                "default": True,
                "data_files": [{"split": s, "path": chat_file(s)} for s in ("train", "eval")],
            },
            {"config_name": "pairs", "data_files": [{"split": "train", "path": "train.jsonl"}]},
            {"config_name": "eval_items", "data_files": [{"split": "eval", "path": "eval.jsonl"}]},
        ],
        "dataset_info": [
            {
                "config_name": "default",
                "features": CHAT_FEATURES,
                "splits": [
                    {"name": s, "num_bytes": f["bytes"], "num_examples": f["rows"]}
                    for s, f in chats.items()
                ],
            }
        ],
    }


def _table(header: tuple[str, ...], rows: list[tuple[Any, ...]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def render_card(manifest: dict[str, Any], rejections: list[Rejection]) -> str:
    """The card's text; deterministic for a given manifest (no timestamps)."""
    cfg, docs, teacher = manifest["config"], manifest["documents"], manifest["teacher"]
    probes = manifest["eval"]["probes"]
    version, files = manifest["version"], manifest["files"]
    shown = docs[:SHOWN_DOCUMENTS]
    hidden = len(docs) - len(shown)
    more = f"\n\n…and {hidden} more in `manifest.json`." if hidden else ""
    by_reason = Counter((r.stage, r.reason) for r in rejections)
    stage_rows = [
        (stage, c["in"], c["out"], ", ".join(f"{k} {v}" for k, v in c["rejected"].items()) or "—")
        for stage, c in manifest["stages"].items()
    ]
    probe_rows = [(name, p["items"], p["measures"]) for name, p in probes.items()]
    body = f"""# Dataset `{version}`

Question/answer pairs for fine-tuning a FAQ model, written by faqforge from
{len(docs)} documents of `{manifest["source"]}`. Every row names the document it came from
(`source`, and `doc_id`/`chunk_id` in the `pairs` config); `faqforge lineage <id>` traces it.

## Load it

```python
from datasets import load_dataset
ds = load_dataset("path/to/datasets/{version}")    # train, eval: chat rows (messages)
pairs = load_dataset("path/to/datasets/{version}", "pairs")  # with lineage fields
```

`train.messages.jsonl` goes to TRL's `SFTTrainer` or axolotl (`type: chat_template`) as it
is. The system prompt each conversation starts with, as in training:

> {cfg["finetune"]["system_prompt"]}

`faqforge export {version} --format alpaca|sharegpt|parquet|hf` writes the other shapes.

## Source corpus

{len(docs)} documents; content hashes are sha256 of the normalised text (first 16 hex digits).

{
        _table(
            ("source", "doc_id", "content hash"),
            [(d["source"], d["doc_id"], d["content_hash"]) for d in shown],
        )
    }{more}

## How it was made

- Teacher: `{teacher["model"]}` ({teacher["kind"]}), prompt version `{manifest["prompt_version"]}`.
- Config hash `{manifest["config_hash"]}`; faqforge {manifest["code_version"]["faqforge"]}
  at commit `{manifest["code_version"]["git_commit"]}`.
- Files: {", ".join(f"`{n}` ({f['rows']} rows)" for n, f in files.items() if "rows" in f)}.

{_table(("stage", "in", "out", "rejected"), stage_rows)}

Rejections by reason (`rejections.jsonl` holds each record and why):

{
        _table(
            ("stage", "reason", "records"), [(s, r, n) for (s, r), n in sorted(by_reason.items())]
        )
        if by_reason
        else "None."
    }

## Eval probes

The `eval` split (eval version `{manifest["eval"]["version"]}`) holds two probes; the
`eval_items` config has each item's `probe`.

{_table(("probe", "items", "what it measures"), probe_rows)}

Validation: {manifest["validation"]["successful"]} of {manifest["validation"]["evaluated"]}
expectations passed (`validation.md`, `validation.json`).

## Known limits

{LIMITS}
"""
    meta = yaml.safe_dump(front_matter(manifest), sort_keys=False, allow_unicode=True)
    return f"---\n{meta}---\n{body}"
