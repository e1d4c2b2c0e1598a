"""Dedup: exact and near duplicates, which pair survives, counts, and MinHash vs true Jaccard."""

from __future__ import annotations

import pytest

from faqforge.config import DedupConfig
from faqforge.records import QAPair
from faqforge.stage import StageCounts, save_output
from faqforge.storage import Workspace
from tasks.dedup import dedup, dedup_pairs, shingles, signatures

Q = "How does the pipeline avoid paying for teacher calls on unchanged documents?"
A = (
    "Each chunk is keyed by its text hash, prompt version and teacher model, "
    "so reruns hit the cache."
)


def qa(pid: str, question: str = Q, answer: str = A) -> QAPair:
    return QAPair(
        id=pid, question=question, answer=answer, doc_id="d1", chunk_id="c1",
        source="guide.md", prompt_version="v1", teacher="t",
    )  # fmt: skip


@pytest.mark.parametrize(
    "question",
    [
        Q,  # identical
        Q.upper(),  # case only
        "How does the pipeline avoid paying for teacher calls, on unchanged documents ?",  # punct
        "  How does the   pipeline avoid paying for teacher calls on unchanged documents?",  # space
    ],
)
def test_exact_duplicate_names_kept_pair(question):
    kept, rejected = dedup_pairs([qa("a"), qa("b", question, "A different answer entirely.")],
                                 DedupConfig())  # fmt: skip
    assert [p.id for p in kept] == ["a"]
    (rej,) = rejected
    assert (rej.reason, rej.record_id, rej.record["duplicate_of"]) == ("exact_duplicate", "b", "a")
    assert "a" in rej.detail


@pytest.mark.parametrize(
    ("question", "answer"),
    [
        # one word changed in a 30-word QA text: true 3-shingle Jaccard 0.81
        (Q.replace("documents", "files"), A),
        # two adjacent words changed: true Jaccard 0.75
        (Q.replace("unchanged documents", "modified files"), A),
        # one word changed; the answer differs only in punctuation and case
        (Q.replace("pipeline", "flow"), A.replace(",", ";").replace("reruns", "Reruns")),
    ],
)
def test_near_duplicate_caught(question, answer):
    kept, rejected = dedup_pairs([qa("a"), qa("b", question, answer)], DedupConfig())
    assert [p.id for p in kept] == ["a"]
    (rej,) = rejected
    assert (rej.reason, rej.record["duplicate_of"]) == ("near_duplicate", "a")
    assert "a" in rej.detail and "Jaccard" in rej.detail
    assert DedupConfig().threshold <= rej.record["jaccard"] <= 1


def test_distinct_pairs_kept():
    pairs = [
        qa("a"),
        qa("b", "Which library removes near-duplicate QA pairs?", "datasketch, with MinHash LSH."),
        qa("c", "How is the train/eval split grouped?", "By source document, so none leaks."),
        qa("d", "What blocks publishing a dataset?", "A failing expectation suite."),
    ]
    kept, rejected = dedup_pairs(pairs, DedupConfig())
    assert kept == pairs and rejected == []


def test_first_occurrence_kept_and_counts_add_up():
    near = Q.replace("unchanged", "unmodified")
    pairs = [qa("x", "What is dedup for?", "Dropping repeats."), qa("a"), qa("b", Q.lower()),
             qa("c", near), qa("d", "What is dedup for ?", "Other.")]  # fmt: skip
    kept, rejected = dedup_pairs(pairs, DedupConfig())
    assert [p.id for p in kept] == ["x", "a"]
    assert {r.record_id: (r.reason, r.record["duplicate_of"]) for r in rejected} == {
        "b": ("exact_duplicate", "a"),
        "d": ("exact_duplicate", "x"),
        "c": ("near_duplicate", "a"),
    }
    assert len(pairs) == len(kept) + len(rejected)
    assert dedup_pairs(pairs, DedupConfig()) == (kept, rejected)  # deterministic


@pytest.mark.parametrize(
    ("left", "right"),
    [
        (f"{Q} {A}", f"{Q} {A.replace('cache', 'store')}"),
        (f"{Q} {A}", f"{Q.replace('teacher', 'model')} {A.replace('prompt', 'template')}"),
        (f"{Q} {A}", "How is the train/eval split grouped? By source document, so none leaks."),
        ("a b c d e f g h", "a b c d x f g h"),
    ],
)
def test_minhash_estimate_tracks_true_jaccard(left, right):
    """Reference: the exact Jaccard of the shingle sets that the signatures summarise."""
    cfg = DedupConfig(num_perm=256)
    a, b = shingles(left, cfg.shingle_words), shingles(right, cfg.shingle_words)
    true = len(a & b) / len(a | b)
    sig_a, sig_b = signatures([left, right], cfg)
    assert sig_a.jaccard(sig_b) == pytest.approx(true, abs=0.1)


def test_short_text_is_one_shingle():
    assert shingles("Why?", 3) == {b"why"}


def test_task_fn(tmp_path):
    ws = Workspace(tmp_path)
    upstream = save_output(
        ws, "curate", "k", {"pairs": [qa("a"), qa("b")]}, StageCounts.of(2, 2, [])
    )
    out = dedup.fn(upstream, DedupConfig(), str(tmp_path))
    assert [p.id for p in out.read("pairs", QAPair)] == ["a"]
    assert out.counts.as_dict() == {"in": 2, "out": 1, "rejected": {"exact_duplicate": 1}}
