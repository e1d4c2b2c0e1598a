"""``faqforge lineage <qa-id | dataset-version | run-id>``: where a result came from, and where
it went, read from the files a workspace already holds.

- a QA pair (train, eval or rejected): its source file, document content hash, chunk (id,
  heading path, excerpt), prompt version and teacher model, the dataset versions holding it,
  and forward to the runs trained on them with their evaluation and promotion;
- a dataset version: its documents, counts, prompt version, teacher, and the runs that used it;
- a run: its dataset version, base model, training figures and evaluation.

Sources: ``datasets/<v>/manifest.json`` and its JSONL files, ``stages/chunk/*/chunks.jsonl``,
``runs/<id>/manifest.json`` and ``runs/<id>/eval/metrics.json``. What a workspace lacks (chunk
stage outputs on a worker that fetched the dataset) is reported as missing, not guessed.

    faqforge lineage 3f2a9c0d1e4b5a67 --workspace .faqforge
    faqforge lineage ds-0123abcd4567 --json
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from faqforge.storage import RunManifest, Workspace, iter_jsonl, read_json, read_run_manifest

EXCERPT_CHARS = 240
MAX_LISTED = 50  # documents shown in markdown (an artifact of 10k lines helps nobody)
SPLITS = ("train", "eval")


class LineageNotFound(LookupError):
    """The id names no dataset version, run or QA pair in the workspace."""


def lineage(ws: Workspace, ident: str) -> dict[str, Any]:
    """The lineage record of a dataset version, run or QA pair id (tried in that order)."""
    if (ws.datasets / ident / "manifest.json").is_file():
        return dataset_lineage(ws, ident)
    if (ws.runs / ident / "manifest.json").is_file():
        return run_lineage(ws, ident)
    if (found := pair_lineage(ws, ident)) is not None:
        return found
    raise LineageNotFound(
        f"{ident!r} is not a dataset version in {ws.datasets}, not a run in {ws.runs}, and no "
        f"QA pair with this id is in the train/eval/rejections files of the "
        f"{len(dataset_versions(ws))} dataset version(s) there"
    )


def dataset_versions(ws: Workspace) -> list[str]:
    """Published versions, oldest first."""
    found = [
        (read_json(p).get("created_at") or "", p.parent.name)
        for p in ws.datasets.glob("*/manifest.json")
    ]
    return [name for _, name in sorted(found)]


def run_manifests(ws: Workspace) -> list[RunManifest]:
    return [read_run_manifest(ws, p.parent) for p in sorted(ws.runs.glob("*/manifest.json"))]


def evaluation(ws: Workspace, run_id: str) -> dict[str, Any] | None:
    """A run's evaluation: report path, promotion and the reference metrics, base vs tuned."""
    path = ws.runs / run_id / "eval" / "metrics.json"
    if not path.is_file():
        return None
    m = read_json(path)
    numeric = [k for k, v in m["base"].items() if isinstance(v, int | float)]
    return {
        "report": str(path.parent / "report.md"),
        "n": m["n"],
        "promoted": m["promoted"],
        "base": {k: m["base"][k] for k in numeric},
        "tuned": {k: m["tuned"][k] for k in numeric},
    }


def run_summary(ws: Workspace, manifest: RunManifest) -> dict[str, Any]:
    metrics, run_id = manifest.metrics, manifest.run_id
    return {
        "run_id": run_id,
        "dataset_version": manifest.dataset_version,
        "base_model": manifest.base_model,
        "adapter_dir": manifest.adapter_dir,
        "steps": metrics.get("steps"),
        "train_loss_last": metrics.get("train_loss_last"),
        "evaluation": evaluation(ws, run_id),
        "champion": ws.read_pointer(ws.RUNS_CHAMPION) == run_id,
    }


def runs_of(ws: Workspace, versions: set[str]) -> list[dict[str, Any]]:
    return [run_summary(ws, m) for m in run_manifests(ws) if m.dataset_version in versions]


def dataset_summary(ws: Workspace, version: str) -> dict[str, Any]:
    m = read_json(ws.datasets / version / "manifest.json")
    return {
        "version": version,
        "dir": str(ws.datasets / version),
        "created_at": m.get("created_at"),
        "previous_version": m.get("previous_version"),
        "source": m.get("source"),
        "content_hash": m.get("content_hash"),
        "config_hash": m.get("config_hash"),
        "code_version": m.get("code_version"),
        "prompt_version": m.get("prompt_version"),
        "teacher_model": (m.get("teacher") or {}).get("model"),
        "eval_version": (m.get("eval") or {}).get("version"),
        "counts": {
            name: (m.get("files") or {})[f"{name}.jsonl"]["rows"]
            for name in ("train", "eval", "rejections")  # the chat files repeat train/eval
            if f"{name}.jsonl" in (m.get("files") or {})
        },
        "documents": m.get("documents", []),
    }


def dataset_lineage(ws: Workspace, version: str) -> dict[str, Any]:
    return {"kind": "dataset", **dataset_summary(ws, version), "runs": runs_of(ws, {version})}


def run_lineage(ws: Workspace, run_id: str) -> dict[str, Any]:
    manifest = read_run_manifest(ws, ws.runs / run_id)
    version = manifest.dataset_version
    local = (ws.datasets / version / "manifest.json").is_file()
    dataset = dataset_summary(ws, version) if local else None
    if dataset is not None:
        dataset["documents"] = len(dataset["documents"])  # counts here; the version lists them
    return {"kind": "run", **run_summary(ws, manifest), "dataset": dataset}


def find_chunk(ws: Workspace, chunk_id: str) -> dict[str, Any] | None:
    """The chunk from any chunk stage output kept in the workspace, with an excerpt."""
    row = ws.kept_chunks({chunk_id}).get(chunk_id)
    if row is None:
        return None
    text = row["text"]
    return {
        "chunk_id": chunk_id,
        "index": row["index"],
        "heading_path": row["heading_path"],
        "n_tokens": row["n_tokens"],
        "excerpt": text[:EXCERPT_CHARS] + ("…" if len(text) > EXCERPT_CHARS else ""),
    }


def pair_lineage(ws: Workspace, qa_id: str) -> dict[str, Any] | None:
    """A pair's record and every version holding (or rejecting) it; None when none does."""
    pair: dict[str, Any] | None = None
    holders: list[dict[str, str]] = []
    rejected: list[dict[str, str]] = []
    for version in dataset_versions(ws):
        folder = ws.datasets / version
        for split in SPLITS:
            for row in iter_jsonl(folder / f"{split}.jsonl"):
                if row["id"] == qa_id:
                    pair = row
                    holders.append({"version": version, "split": split})
        for row in iter_jsonl(folder / "rejections.jsonl"):
            if row["record_id"] == qa_id:
                pair = pair or row["record"] or None
                rejected.append(
                    {"version": version, "stage": row["stage"], "reason": row["reason"]}
                    | ({"detail": row["detail"]} if row.get("detail") else {})
                )
    if pair is None and not rejected:
        return None
    pair = pair or {}
    newest = (holders or rejected)[-1]["version"]
    manifest = read_json(ws.datasets / newest / "manifest.json")
    docs = manifest["documents"]
    doc: dict[str, Any] = next((d for d in docs if d["doc_id"] == pair.get("doc_id")), {})
    chunk = find_chunk(ws, pair["chunk_id"]) if pair.get("chunk_id") else None
    return {
        "kind": "pair",
        "id": qa_id,
        "pair": {
            k: pair.get(k)
            for k in ("question", "answer", "prompt_version", "teacher", "score", "flags")
        },
        "document": {
            "doc_id": pair.get("doc_id"),
            "source": pair.get("source"),
            "path": str(Path(manifest["source"]) / pair["source"]) if pair.get("source") else None,
            "content_hash": doc.get("content_hash"),
            "as_of": newest,
        },
        "chunk": chunk
        or {"chunk_id": pair.get("chunk_id"), "missing": f"no chunk stage output in {ws.root}"},
        "datasets": holders,
        "rejected": rejected,
        "runs": runs_of(ws, {h["version"] for h in holders}),
    }


def _fmt(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def _run_lines(runs: list[dict[str, Any]]) -> list[str]:
    if not runs:
        return ["- no fine-tuning run in this workspace used it"]
    lines = []
    for r in runs:
        lines.append(
            f"- run `{r['run_id']}` on `{r['dataset_version']}`: base `{r['base_model']}`, "
            f"adapter `{r['adapter_dir']}`, {r['steps']} steps"
            + (" — **champion**" if r["champion"] else "")
        )
        ev = r["evaluation"]
        if ev is None:
            lines.append("  - not evaluated")
            continue
        scores = ", ".join(
            f"{k} {_fmt(ev['base'][k])} → {_fmt(ev['tuned'][k])}" for k in sorted(ev["tuned"])
        )
        verdict = "promoted" if ev["promoted"] else "not promoted"
        lines.append(f"  - eval on {ev['n']} items, {verdict}: {scores}; report `{ev['report']}`")
    return lines


def _dataset_lines(d: dict[str, Any]) -> list[str]:
    counts = ", ".join(f"{n} {k}" for k, n in sorted(d["counts"].items()))
    docs = d["documents"]
    return [
        f"- dataset `{d['version']}` ({d['created_at']}): {counts}; `{d['dir']}`",
        f"- from `{d['source']}`: {docs if isinstance(docs, int) else len(docs)} documents; "
        f"content hash {d['content_hash']}, config hash {d['config_hash']}",
        f"- prompt version `{d['prompt_version']}`, teacher `{d['teacher_model']}`, eval "
        f"version `{d['eval_version']}`, previous version `{d['previous_version']}`",
    ]


def render(info: dict[str, Any]) -> str:
    """Markdown for the terminal and for the flow runs' ``lineage`` artifacts."""
    kind = info["kind"]
    if kind == "dataset":
        lines = [f"# Dataset {info['version']}", "", *_dataset_lines(info), "", "## Documents"]
        docs = info["documents"]
        lines += [
            f"- `{d['source']}` (doc {d['doc_id']}, content hash {d['content_hash']})"
            for d in docs[:MAX_LISTED]
        ]
        if len(docs) > MAX_LISTED:
            lines.append(f"- … and {len(docs) - MAX_LISTED} more (`--json` lists all)")
        lines += ["", "## Runs", *_run_lines(info["runs"])]
    elif kind == "run":
        ds = info["dataset"]
        lines = [f"# Run {info['run_id']}", "", "## Dataset"]
        lines += (
            _dataset_lines(ds) if ds else [f"- `{info['dataset_version']}` (not in this workspace)"]
        )
        lines += ["", "## Adapter and evaluation", *_run_lines([info])]
    else:
        p, doc, chunk = info["pair"], info["document"], info["chunk"]
        lines = [
            f"# QA pair {info['id']}",
            "",
            f"- question: {p['question']}",
            f"- answer: {p['answer']}",
            f"- prompt version `{p['prompt_version']}`, teacher `{p['teacher']}`",
            f"- source file `{doc['path']}` (doc {doc['doc_id']}, content hash "
            f"{doc['content_hash']} as of `{doc['as_of']}`)",
        ]
        if "missing" in chunk:
            lines.append(f"- chunk `{chunk['chunk_id']}`: {chunk['missing']}")
        else:
            lines += [
                f"- chunk `{chunk['chunk_id']}` (#{chunk['index']}, {chunk['n_tokens']} tokens)"
                f" under {' > '.join(chunk['heading_path']) or '(no heading)'}",
                f"  > {chunk['excerpt']}".replace("\n", " "),
            ]
        lines += ["", "## Dataset versions"]
        lines += [f"- `{h['version']}` ({h['split']})" for h in info["datasets"]]
        lines += [
            f"- `{r['version']}`: rejected at {r['stage']} ({r['reason']})"
            for r in info["rejected"]
        ]
        lines += ["", "## Runs", *_run_lines(info["runs"])]
    return "\n".join(lines) + "\n"


def to_json(info: dict[str, Any]) -> str:
    return json.dumps(info, indent=2, ensure_ascii=False)
