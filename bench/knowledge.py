"""The motivating write-up's experiment on a laptop: does the tuned model answer a differently
worded question about a trained fact better than its base, and which recipe makes it so?

    .venv/bin/python bench/knowledge.py                      # both corpora, every condition
    .venv/bin/python bench/knowledge.py --corpus sample --conditions recipe one_phrasing

Corpora: the bundled sample (written here) and CPython's documentation topics
(``pydoc_data.topics``, nobody here wrote them: ``--topics`` statement topics, written out
verbatim as ``.txt``; ingest reads their underlined headings and indented blocks). For
each corpus one real refresh (``flows.refresh``, the embedded default: extractive teacher,
SmolLM2-135M-Instruct's tokenizer) builds the dataset and its frozen probes; then each
condition trains (``tasks.finetune.train_run``) and evaluates
(``tasks.evaluate.stage.evaluate_run``) on the same probes:

- ``recipe``: 2–3 phrasings per fact, LoRA all-linear, ``--epochs`` [0] (configs/default.yaml);
- ``one_phrasing``: the same, but trained on one pair per fact (the write-up's data);
- ``qk``: LoRA on q_proj/k_proj only (the write-up's other configuration);
- ``epochs``: the recipe with ``--epochs`` [1] epochs.

One factor changes at a time against the recipe. Printed per condition: knowledge-probe token
F1 and key-term recall (base → tuned), the knowledge lift with its 95% interval, the
unseen-documents confident-answer rate of the tuned model (the base's beside it), training
pairs, steps and seconds; then which condition wins, by how much, and whether its interval
excludes the recipe's. Base answers are cached, so each corpus generates them once.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from faqforge.config import PipelineConfig, load_run_config  # noqa: E402
from faqforge.records import QAPair  # noqa: E402
from faqforge.storage import Workspace, read_json, read_records, write_json, write_jsonl  # noqa: E402

PYDOC_TOPICS = [
    *("assert", "break", "continue", "del", "for", "global", "if", "lambda", "nonlocal"),
    *("pass", "return", "while", "yield", "truth", "booleans", "exceptions", "dict", "with"),
    "raise",
]
CONDITIONS = ("recipe", "one_phrasing", "qk", "epochs")


def pydoc_corpus(folder: Path, n_topics: int) -> Path:
    from pydoc_data.topics import topics

    folder.mkdir(parents=True, exist_ok=True)
    for name in PYDOC_TOPICS[:n_topics]:  # verbatim: ingest reads their structure
        (folder / f"{name}.txt").write_text(topics[name], encoding="utf-8")
    return folder


def refresh_dataset(source: Path, ws: Path) -> Path:
    """One real refresh on the embedded default; the published version's folder."""
    from flows.refresh import refresh

    summary = refresh(str(ROOT / "configs" / "default.yaml"), [], str(source), str(ws))
    return Path(summary["dir"])


def derived(dataset: Path, name: str, keep: Any) -> Path:
    """A copy of a dataset version whose train split is filtered by ``keep`` (own version id)."""
    out = dataset.parent / f"{dataset.name}-{name}"
    if not (out / "manifest.json").is_file():
        shutil.rmtree(out, ignore_errors=True)
        shutil.copytree(dataset, out)
        write_jsonl(out / "train.jsonl", keep(read_records(dataset / "train.jsonl", QAPair)))
        manifest = read_json(dataset / "manifest.json")
        write_json(out / "manifest.json", {**manifest, "version": out.name})
    return out


def one_per_fact(pairs: list[QAPair]) -> list[QAPair]:
    seen: set[str] = set()
    kept = []
    for p in pairs:
        if (p.fact_id or p.id) not in seen:
            seen.add(p.fact_id or p.id)
            kept.append(p)
    return kept


def condition(name: str, base: PipelineConfig, dataset: Path, epochs: list[float]):
    """``(dataset folder, finetune config)`` of one condition."""
    ft = base.finetune
    if name == "recipe":
        return dataset, ft.model_copy(update={"epochs": epochs[0]})
    if name == "one_phrasing":
        return derived(dataset, "one-phrasing", one_per_fact), ft.model_copy(
            update={"epochs": epochs[0]}
        )
    if name == "qk":
        return dataset, ft.model_copy(
            update={"epochs": epochs[0], "target_modules": "attention-qk"}
        )
    return dataset, ft.model_copy(update={"epochs": epochs[1]})


def run_condition(name: str, cfg: PipelineConfig, dataset: Path, ws: Path, epochs: list[float]):
    from tasks.evaluate.stage import evaluate_run
    from tasks.finetune import train_run

    data, ft = condition(name, cfg, dataset, epochs)
    start = time.perf_counter()
    summary = train_run(data, ft, Workspace(ws))
    trained = time.perf_counter() - start
    result = evaluate_run(Path(summary["run_dir"]), cfg.evaluate, Workspace(ws), cfg.teacher)
    m = result["metrics"]
    know, unseen = m["probes"]["knowledge"], m["probes"]["unseen_documents"]
    return {
        "condition": name,
        "label": label(name, ft),
        "train_pairs": summary["metrics"]["train_pairs"],
        "steps": summary["metrics"]["steps"],
        "train_s": round(trained, 1),
        "n_knowledge": know["n"],
        "f1": (know["base"]["token_f1"], know["tuned"]["token_f1"]),
        "ktr": (know["base"]["key_term_recall"], know["tuned"]["key_term_recall"]),
        "lift": m["knowledge_lift"],
        "confident": (
            unseen["answers"]["base"]["confident"],
            unseen["answers"]["tuned"]["confident"],
        ),
        "degenerate": m["degenerate"]["tuned"]["problems"],
        "report": result["report"],
    }


def label(name: str, ft: Any) -> str:
    data = "1 pair/fact" if name == "one_phrasing" else "2-3 phrasings"
    modules = "q/k" if ft.target_modules == "attention-qk" else "all-linear"
    return f"{data}, {modules}, {ft.epochs:g} ep"


def pct(v: float | None) -> str:
    return "  —" if v is None else f"{v:4.0%}"


def table(corpus: str, rows: list[dict[str, Any]]) -> str:
    head = (
        f"\n{corpus}\n| condition | train pairs | steps | train s | knowledge F1 base→tuned "
        "| key-term recall base→tuned | knowledge lift [95% CI] | unseen confident base/tuned |"
        "\n|---|---:|---:|---:|---|---|---|---|"
    )
    lines = [head]
    for r in rows:
        lift = r["lift"]
        ci = lift["ci95"] or [float("nan")] * 2
        lines.append(
            f"| {r['label']} | {r['train_pairs']} | {r['steps']} | {r['train_s']:.0f} "
            f"| {r['f1'][0]:.3f} → {r['f1'][1]:.3f} | {r['ktr'][0]:.3f} → {r['ktr'][1]:.3f} "
            f"| {lift['value']:+.3f} [{ci[0]:+.3f}, {ci[1]:+.3f}] "
            f"| {pct(r['confident'][0])} / {pct(r['confident'][1])} |"
            + (f" DEGENERATE: {'; '.join(r['degenerate'])}" if r["degenerate"] else "")
        )
    return "\n".join(lines)


def verdict(rows: list[dict[str, Any]]) -> str:
    best = max(rows, key=lambda r: r["lift"]["value"] if r["lift"]["value"] is not None else -9)
    recipe = next((r for r in rows if r["condition"] == "recipe"), None)
    text = f"Winner: {best['label']} (knowledge lift {best['lift']['value']:+.3f})"
    if recipe is not None and best is not recipe:
        gap = best["lift"]["value"] - recipe["lift"]["value"]
        apart = best["lift"]["ci95"][0] > recipe["lift"]["ci95"][1]
        text += (
            f", {gap:+.3f} over the recipe ({'intervals apart' if apart else 'intervals overlap'})"
        )
    for r in rows:
        if r is not best and r["lift"]["value"] is not None and best["lift"]["value"] is not None:
            text += f"\n  {r['label']}: {r['lift']['value'] - best['lift']['value']:+.3f} vs winner"
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", choices=["sample", "pydoc", "both"], default="both")
    parser.add_argument("--conditions", nargs="+", choices=CONDITIONS, default=list(CONDITIONS))
    parser.add_argument("--epochs", nargs=2, type=float, default=[2.5, 1.0],
                        help="the recipe's epochs, and the other number compared")  # fmt: skip
    parser.add_argument("--topics", type=int, default=len(PYDOC_TOPICS))
    parser.add_argument("--work", type=Path, default=Path("/tmp/faqforge-bench-knowledge"))
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    corpora = ["sample", "pydoc"] if args.corpus == "both" else [args.corpus]
    results: dict[str, list[dict[str, Any]]] = {}
    for corpus in corpora:
        ws = args.work / corpus / "ws"
        source = (
            ROOT / "faqforge" / "sample_corpus"
            if corpus == "sample"
            else pydoc_corpus(args.work / corpus / "docs", args.topics)
        )
        cfg = load_run_config(ROOT / "configs" / "default.yaml", workspace=ws, source=source)
        dataset = refresh_dataset(source, ws)
        rows = [run_condition(c, cfg, dataset, ws, args.epochs) for c in args.conditions]
        results[corpus] = rows
        print(table(f"{corpus} ({dataset.name})", rows), flush=True)
        print(verdict(rows), flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
