"""Near-duplicate detection: quality on planted duplicates of real text, and speed vs datasketch.

    .venv/bin/python bench/dedup_quality_speed.py [--docs 6000] [--seed 0]

Real text: (1) QA pairs that the extractive teacher writes from every paragraph of the
bundled corpus (faqforge/sample_corpus): templated questions such as "What is the ingest
stage in …?" / "What is the chunk stage in …?" make them hard negatives; (2) the long
descriptions of the installed packages (``*.dist-info/METADATA``) cut into QA-sized windows
of 20–60 words. Texts that already overlap another (3+ shared 4-word shingles of the answer
or window: licences, badges, repeated sentences) are dropped, so the only duplicates are the
planted ones. Planted: a third of the windows get one
to three variants, each with 1 word, 2 words, 5%, 10% or 15% of its words substituted,
deleted or inserted (words drawn from the corpus), or with case and punctuation changed.
Truth: every pair within a planted group is a duplicate; every other pair is not.

Reported, for each method with the default config (shingle size, permutations, bands,
threshold): precision, recall and F1 over duplicate pairs (candidates from LSH bands, kept
when the estimated Jaccard reaches the threshold), recall per edit size, the Jaccard estimates'
mean absolute error against datasketch and against the true Jaccard, and throughput (docs/s;
one process, both methods single-threaded; median of 3 alternating runs) of signatures alone
and end to end. Then a grid of shingle size × threshold (faqforge's method) that the defaults
were chosen from.
"""

from __future__ import annotations

import argparse
import random
import re
import statistics
import sys
import time
from collections.abc import Callable
from itertools import combinations
from pathlib import Path

import numpy as np
from datasketch import MinHash, MinHashLSH

from faqforge.config import DedupConfig
from faqforge.teachers.extractive import extract_facts
from tasks.minhash import SEED, LSHIndex, jaccard, shingles, signatures

ROOT = Path(__file__).resolve().parents[1]
EDITS = ["1 word", "2 words", "5%", "10%", "15%", "case+punct"]
_WORD = re.compile(r"^[A-Za-z][A-Za-z'-]*[.,;:!?]?$")


def prose_windows(rng: random.Random) -> list[str]:
    """QA-sized windows (20–60 words) of prose lines: mostly plain words, no code or markup."""
    files = sorted(ROOT.glob("faqforge/sample_corpus/*.md")) + sorted(
        ROOT.glob("faqforge/sample_corpus/*.txt")
    )
    site = Path(np.__file__).resolve().parents[1]
    files += sorted(site.glob("*.dist-info/METADATA"))
    windows = []
    for path in files:
        text = path.read_text(encoding="utf-8", errors="ignore")
        if path.name == "METADATA":
            text = text.split("\n\n", 1)[-1]  # the long description, not the headers
        prose = []
        for line in text.splitlines():
            tokens = line.split()
            if len(tokens) >= 6 and sum(bool(_WORD.match(t)) for t in tokens) >= 0.85 * len(tokens):
                prose += tokens
        i = 0
        while i + 20 <= len(prose):
            size = rng.randint(20, 60)
            windows.append(" ".join(prose[i : i + size]))
            i += size
    return windows


def teacher_pairs() -> list[tuple[str, str]]:
    """(question, answer) pairs the extractive teacher writes, paragraph by paragraph."""
    pairs = []
    for path in sorted(ROOT.glob("faqforge/sample_corpus/*.md")):
        headings: list[str] = []
        for block in path.read_text(encoding="utf-8").split("\n\n"):
            block = block.strip()
            if block.startswith("#"):
                level = len(block) - len(block.lstrip("#"))
                headings = [*headings[: level - 1], block.lstrip("# ").splitlines()[0]]
            elif block and not block.startswith(("```", "|", "    ")):
                # One phrasing per fact: near-duplicate pairs are planted from these below.
                facts = extract_facts(headings, block, 3, 60, 1, topic=path.stem)
                pairs += [(f.questions[0], f.answer) for f in facts]
    return pairs


def without_overlaps(texts: list[str], keys: list[str]) -> list[str]:
    """Keep a text only if its key shares fewer than 3 word 4-grams with every kept one."""
    seen: dict[bytes, int] = {}
    kept = []
    for text, key in zip(texts, keys, strict=True):
        grams = shingles(key, 4)
        hits: dict[int, int] = {}
        for g in grams:
            if g in seen:
                hits[seen[g]] = hits.get(seen[g], 0) + 1
        if max(hits.values(), default=0) < 3 and len(grams) > 1:
            for g in grams:
                seen.setdefault(g, len(kept))
            kept.append(text)
    return kept


def edit(text: str, kind: str, vocab: list[str], rng: random.Random) -> str:
    """A planted variant: words substituted, deleted or inserted, or case and punctuation."""
    tokens = text.split()
    if kind == "case+punct":
        return re.sub(r"[,;]", "", text).lower().replace(".", " .")
    n = {"1 word": 1, "2 words": 2}.get(kind) or max(1, round(len(tokens) * int(kind[:-1]) / 100))
    for _ in range(n):
        op, at = rng.choice(("sub", "sub", "del", "ins")), rng.randrange(len(tokens))
        if op == "sub":
            tokens[at] = rng.choice(vocab)
        elif op == "del" and len(tokens) > 5:
            del tokens[at]
        else:
            tokens.insert(at, rng.choice(vocab))
    return " ".join(tokens)


def planted(n_docs: int, seed: int) -> tuple[list[str], list[int], list[str]]:
    """Texts, their group id (planted duplicates share one) and each text's edit kind."""
    rng = random.Random(seed)
    qa = teacher_pairs()
    windows = prose_windows(rng)
    rng.shuffle(windows)
    texts = [f"{q} {a}" for q, a in qa] + windows
    bases = without_overlaps(texts, [a for _, a in qa] + windows)[: int(n_docs / 1.65)]
    vocab = sorted({w.strip(".,;:!?").lower() for t in bases for w in t.split()} - {""})
    texts, groups, kinds = [], [], []
    for g, base in enumerate(bases):
        texts.append(base), groups.append(g), kinds.append("original")
        if rng.random() < 1 / 3:
            for _ in range(rng.randint(1, 3)):
                kind = rng.choice(EDITS)
                texts.append(edit(base, kind, vocab, rng)), groups.append(g), kinds.append(kind)
    return texts, groups, kinds


def truth_pairs(groups: list[int]) -> set[tuple[int, int]]:
    members: dict[int, list[int]] = {}
    for i, g in enumerate(groups):
        members.setdefault(g, []).append(i)
    return {p for m in members.values() for p in combinations(m, 2)}


# --- the two methods: text → signatures, and signatures → verified duplicate pairs ----------


def datasketch_loop(sets: list[set[bytes]], cfg: DedupConfig) -> list[MinHash]:
    """The straightforward datasketch loop: ``MinHash()`` and one ``update()`` per shingle."""
    out = []
    for s in sets:
        m = MinHash(num_perm=cfg.num_perm, seed=SEED)
        for shingle in s:
            m.update(shingle)
        out.append(m)
    return out


def datasketch_pairs(sigs: list[MinHash], cfg: DedupConfig) -> set[tuple[int, int]]:
    lsh = MinHashLSH(num_perm=cfg.num_perm, params=(cfg.bands, cfg.num_perm // cfg.bands))
    found = set()
    for i, m in enumerate(sigs):
        for j in lsh.query(m):
            if m.jaccard(sigs[j]) >= cfg.threshold:
                found.add((j, i))
        lsh.insert(i, m)
    return found


def faqforge_pairs(sigs: np.ndarray, cfg: DedupConfig, threshold: float) -> set[tuple[int, int]]:
    index = LSHIndex(cfg.bands, cfg.num_perm // cfg.bands)
    keys = index.band_keys(sigs)
    found = set()
    for i in range(len(sigs)):
        candidates = sorted(index.query(keys[i]))
        if candidates:
            sims = jaccard(sigs[i], sigs[candidates])
            found |= {(j, i) for j, s in zip(candidates, sims, strict=True) if s >= threshold}
        index.insert(i, keys[i])
    return found


def prf(found: set[tuple[int, int]], truth: set[tuple[int, int]]) -> tuple[float, float, float]:
    tp = len(found & truth)
    p = tp / len(found) if found else 1.0
    r = tp / len(truth) if truth else 1.0
    return p, r, 2 * p * r / (p + r) if p + r else 0.0


def median_rate(n: int, fn: Callable[[], object], repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return n / statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=6000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    cfg = DedupConfig(semantic=False)
    texts, groups, kinds = planted(args.docs, args.seed)
    truth = truth_pairs(groups)
    print(
        f"planted set: {len(texts)} texts ({len(set(groups))} originals, "
        f"{len(texts) - len(set(groups))} planted variants, {len(truth)} duplicate pairs), "
        f"median {statistics.median(len(t.split()) for t in texts):.0f} words"
    )
    print(
        f"config: {cfg.shingle_words}-word shingles, {cfg.num_perm} permutations, "
        f"{cfg.bands} bands × {cfg.num_perm // cfg.bands} rows, Jaccard ≥ {cfg.threshold}\n"
    )

    sets = [shingles(t, cfg.shingle_words) for t in texts]
    ref = datasketch_loop(sets, cfg)
    ours = signatures(sets, cfg.num_perm, SEED)
    found_ref, found_ours = datasketch_pairs(ref, cfg), faqforge_pairs(ours, cfg, cfg.threshold)

    # Jaccard agreement: over every true pair and as many random pairs.
    rng = random.Random(args.seed)
    pairs = sorted(truth) + [tuple(sorted(rng.sample(range(len(texts)), 2))) for _ in truth]
    est_ref = np.array([ref[i].jaccard(ref[j]) for i, j in pairs])
    est_ours = np.array([jaccard(ours[i], ours[j : j + 1])[0] for i, j in pairs])
    true = np.array([len(sets[i] & sets[j]) / len(sets[i] | sets[j]) for i, j in pairs])

    n = min(len(texts), 3000)
    rates: dict[str, list[float]] = {"loop": [], "ours": []}
    e2e: dict[str, list[float]] = {"loop": [], "ours": []}
    for _ in range(3):  # alternate, so load on the machine hits both alike
        rates["loop"].append(median_rate(n, lambda: datasketch_loop(sets[:n], cfg), 1))
        rates["ours"].append(median_rate(n, lambda: signatures(sets[:n], cfg.num_perm, SEED), 1))
        e2e["loop"].append(
            median_rate(
                n,
                lambda: datasketch_pairs(
                    datasketch_loop([shingles(t, cfg.shingle_words) for t in texts[:n]], cfg), cfg
                ),
                1,
            )
        )
        e2e["ours"].append(
            median_rate(
                n,
                lambda: faqforge_pairs(
                    signatures(
                        [shingles(t, cfg.shingle_words) for t in texts[:n]],
                        cfg.num_perm,
                        SEED,
                    ),
                    cfg,
                    cfg.threshold,
                ),
                1,
            )
        )
    speed = {k: statistics.median(v) for k, v in rates.items()}
    speed_e2e = {k: statistics.median(v) for k, v in e2e.items()}

    print(f"{'method':<34}{'P':>7}{'R':>7}{'F1':>7}{'sig docs/s':>12}{'e2e docs/s':>12}")
    for name, key, found in (
        ("datasketch MinHash.update loop", "loop", found_ref),
        ("faqforge numpy (tasks/minhash.py)", "ours", found_ours),
    ):
        p, r, f = prf(found, truth)
        print(f"{name:<34}{p:>7.3f}{r:>7.3f}{f:>7.3f}{speed[key]:>12,.0f}{speed_e2e[key]:>12,.0f}")
    print(
        f"\nspeed ratio (faqforge / datasketch loop): signatures "
        f"{speed['ours'] / speed['loop']:.1f}×, end to end (shingles + signatures + LSH + "
        f"verification) {speed_e2e['ours'] / speed_e2e['loop']:.1f}×"
    )
    print(
        f"same duplicate pairs found: {found_ours == found_ref}; signatures bit-identical: "
        f"{all((ours[i] == ref[i].hashvalues).all() for i in range(len(texts)))}"
    )
    print(
        f"Jaccard estimates over {len(pairs)} pairs: mean |faqforge − datasketch| = "
        f"{np.abs(est_ours - est_ref).mean():.4f}; mean |estimate − true| = "
        f"{np.abs(est_ours - true).mean():.4f} (faqforge), {np.abs(est_ref - true).mean():.4f} "
        f"(datasketch)"
    )

    print("\nrecall of original–variant pairs by planted edit (default config):")
    for kind in EDITS:
        group_pairs = {(i, j) for i, j in truth if kinds[i] == "original" and kinds[j] == kind}
        hit = len(group_pairs & found_ours) / max(len(group_pairs), 1)
        print(f"  {kind:<11} {hit:.3f}  ({len(group_pairs)} pairs)")

    # Hard negatives, unlabelled: the teacher's own distinct pairs that a threshold would merge.
    qa = [f"{q} {a}" for q, a in teacher_pairs()]
    qa_sigs = signatures([shingles(t, cfg.shingle_words) for t in qa], cfg.num_perm, SEED)
    merged = {t: len(faqforge_pairs(qa_sigs, cfg, t)) for t in (0.5, 0.6, 0.7)}
    print(
        f"\nteacher pairs merged ({len(qa)} real extractive QA pairs, no planted edits): "
        + ", ".join(f"Jaccard ≥ {t}: {n}" for t, n in merged.items())
    )
    for i, j in sorted(faqforge_pairs(qa_sigs, cfg, cfg.threshold)):
        print(f"  {qa[i][:70]!r}\n  ≈ {qa[j][:70]!r}")

    print("\nshingle size × threshold (faqforge's method; P / R / F1):")
    thresholds = (0.5, 0.6, 0.7, 0.8)
    print("  shingles " + "".join(f"{t:>22}" for t in thresholds))
    for size in (1, 2, 3, 5):
        sigs = signatures([shingles(t, size) for t in texts], cfg.num_perm, SEED)
        cells = []
        for threshold in thresholds:
            p, r, f = prf(faqforge_pairs(sigs, cfg, threshold), truth)
            cells.append(f"{p:.3f}/{r:.3f}/{f:.3f}")
        print(f"  {size:>8} " + "".join(f"{c:>22}" for c in cells))
    return 0


if __name__ == "__main__":
    sys.exit(main())
