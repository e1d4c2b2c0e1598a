"""Semantic dedup's cost against dedup without it, on real pairs: CPython's documentation
topics (``pydoc_data.topics``) through ingest → chunk → extractive teacher → curate →
ambiguity repair, as in a refresh (``question_quality.prepared``).

    .venv/bin/python bench/semantic_dedup.py [--topics N] [--repeat 3]

Printed first, as a user runs it: ``faqforge stage dedup`` on the pairs as JSONL, one process
each (start-up and MiniLM load included), semantic off and on, and the ratio (goal: 2x).
Then, in this process, each the median of ``--repeat`` runs after one warm-up that loads MiniLM:
- dedup with ``semantic: false`` (the baseline of the ratio);
- dedup with ``semantic: true`` as faqforge runs it: answers embedded only for close questions
  of *another* fact, each distinct text once, longest first;
- the previous way in the same run (``previous_paraphrases``: every answer of a pair with any
  close question embedded, repeats included);
- whether both allow the same merges (they must: the change only skips work whose result
  the rule never used), so dedup's clusters are unchanged;
- incremental: dedup (semantic on) with an empty vector cache (cold), then again after one
  document's pairs changed (their questions edited, as a revised document's would be): only
  the new texts are embedded and signed (``tasks/vector_cache.py``). Same decisions as
  without a cache, checked. Goal: the re-run at most 10% of the cold run.
Goal (the issue): semantic on within 2x of off.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from question_quality import prepared, pydoc_corpus  # noqa: E402

from faqforge.config import DedupConfig  # noqa: E402
from faqforge.records import QAPair  # noqa: E402
from tasks.dedup import Paraphrases, code_spans, dedup_pairs, names_other, same_fact  # noqa: E402


def median_s(fn: Callable[[], object], repeat: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def previous_paraphrases(pairs: list[QAPair], q_thr: float, a_thr: float) -> set[tuple[int, int]]:
    """The rule as computed before: answers embedded for every pair with a close question
    (its own fact's phrasings included), one call, repeats included. Returns the candidate
    merges (i, j) the rule allows, for comparison."""
    from tasks.embeddings import load_model, neighbours

    model = load_model()
    encode = lambda texts: model.encode(texts, batch_size=64, normalize_embeddings=True,  # noqa: E731
                                        show_progress_bar=False)  # fmt: skip
    close = neighbours(encode([p.question for p in pairs]), q_thr)
    involved = [i for i, near in enumerate(close) if near]
    answers = dict(zip(involved, encode([pairs[i].answer for i in involved]), strict=True))
    facts, names = [p.fact_id for p in pairs], [code_spans(p.question) for p in pairs]
    return {
        (i, j)
        for i, near in enumerate(close)
        for j, _ in near
        if answers[i] @ answers[j] >= a_thr
        and not same_fact(facts, i, j)
        and not names_other(names, i, j)
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--topics", type=int, default=0, help="first N topics (0: all)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--work", type=Path, default=Path("/tmp/faqforge-bench-semantic"))
    args = parser.parse_args()
    source = pydoc_corpus(args.work)
    if args.topics:
        for path in sorted(source.glob("*.txt"))[args.topics :]:
            path.unlink()
    run = prepared(source, args.work / "pydoc")
    pairs, cfg = run["repair"].pairs, run["cfg"].dedup
    on, off = cfg.model_copy(update={"semantic": True}), cfg.model_copy(update={"semantic": False})
    print(f"{len(run['docs'])} topics, {len(pairs)} curated pairs", flush=True)
    stage_command(pairs, args.work)

    start = time.perf_counter()
    from tasks.embeddings import load_model

    load_model()
    print(f"MiniLM load: {time.perf_counter() - start:.1f} s (once per process, not below)")
    t_off, (_, rej_off) = median_s(lambda: dedup_pairs(pairs, off), args.repeat)
    t_on, (_, rej_on) = median_s(lambda: dedup_pairs(pairs, on), args.repeat)
    t_prev, merges = median_s(
        lambda: previous_paraphrases(pairs, on.semantic_threshold, on.semantic_answer_threshold),
        args.repeat,
    )
    semantic = [r for r in rej_on if r.reason == "semantic_duplicate"]
    # The candidate merges now, exactly as dedup computes them: equal sets, equal clusters.
    now = {(i, j) for i, near in enumerate(Paraphrases(pairs, on).close) for j, _ in near}
    ok = now == merges
    print(f"dedup, semantic off: {t_off:6.1f} s  ({len(rej_off)} rejected)")
    print(f"dedup, semantic on:  {t_on:6.1f} s  ({len(rej_on)} rejected, {len(semantic)} "
          f"semantic) = {t_on / t_off:.2f}x off (goal <= 2x)")  # fmt: skip
    print(
        f"previous paraphrase computation alone: {t_prev:6.1f} s; semantic part now "
        f"{max(t_on - t_off, 0):.1f} s = {max(t_on - t_off, 0) / t_prev:.2f}x of it"
    )
    print(f"same semantic duplicates as the previous rule: {ok}")
    incremental(pairs, on, args.work / "vectors")


def stage_command(pairs: list[QAPair], work: Path) -> None:
    """``faqforge stage dedup`` in its own process, semantic off then on."""
    import json
    import subprocess

    source = work / "curated.jsonl"
    source.write_text("".join(json.dumps(p.to_dict()) + "\n" for p in pairs))
    cli = str(Path(sys.executable).with_name("faqforge"))
    times = {}
    for semantic in ("false", "true"):
        out = work / f"dedup-{semantic}.jsonl"
        start = time.perf_counter()
        subprocess.run([cli, "stage", "dedup", "-i", str(source), "-o", str(out),
                        "--set", f"dedup.semantic={semantic}"], check=True,
                       capture_output=True)  # fmt: skip
        times[semantic] = time.perf_counter() - start
    print(f"faqforge stage dedup, own process: semantic off {times['false']:.1f} s, on "
          f"{times['true']:.1f} s = {times['true'] / times['false']:.2f}x (goal <= 2x)",
          flush=True)  # fmt: skip


def incremental(pairs: list[QAPair], cfg: DedupConfig, cache: Path) -> None:
    """Cold dedup into an empty vector cache, then a re-run with one document's pairs edited."""
    from dataclasses import replace

    shutil.rmtree(cache, ignore_errors=True)
    docs = sorted({p.doc_id for p in pairs})
    edited_doc = docs[len(docs) // 2]
    edited = [
        replace(p, question=p.question.replace("?", " in Python?", 1))
        if p.doc_id == edited_doc
        else p
        for p in pairs
    ]
    start = time.perf_counter()
    dedup_pairs(pairs, cfg, cache_dir=cache)
    t_cold = time.perf_counter() - start
    start = time.perf_counter()
    result = dedup_pairs(edited, cfg, cache_dir=cache)
    t_warm = time.perf_counter() - start
    same = result == dedup_pairs(edited, cfg)
    n_edit = sum(p.doc_id == edited_doc for p in pairs)
    print(f"incremental, 1 of {len(docs)} documents edited ({n_edit} pairs):")
    print(f"  cold (empty vector cache): {t_cold:6.1f} s")
    print(f"  re-run:                    {t_warm:6.1f} s = {t_warm / t_cold:.1%} of cold "
          f"(goal <= 10%); same decisions as without a cache: {same}")  # fmt: skip


if __name__ == "__main__":
    main()
