"""Split: grouped by document, decided by a stable hash, both sides non-empty."""

from __future__ import annotations

import pytest

from faqforge.config import SplitConfig
from faqforge.records import QAPair
from faqforge.stage import StageCounts, save_output
from faqforge.storage import Workspace
from tasks.split import doc_position, eval_docs, split, split_pairs


def qa(pid: str, doc_id: str) -> QAPair:
    return QAPair(
        id=pid, question=f"What is {pid}?", answer="An answer.", doc_id=doc_id, chunk_id="c",
        source=f"{doc_id}.md", prompt_version="v1", teacher="t",
    )  # fmt: skip


def corpus(n_docs: int, per_doc: int = 3) -> list[QAPair]:
    return [qa(f"d{d}-p{i}", f"d{d}") for d in range(n_docs) for i in range(per_doc)]


def test_documents_never_on_both_sides():
    train, evals = split_pairs(corpus(40), SplitConfig())
    assert {p.doc_id for p in train}.isdisjoint({p.doc_id for p in evals})
    assert len(train) + len(evals) == 120
    assert 0 < len({p.doc_id for p in evals}) < 40


def test_deterministic_and_independent_of_order_and_other_docs():
    cfg = SplitConfig()
    pairs = corpus(30)
    _, evals = split_pairs(pairs, cfg)
    assert split_pairs(pairs, cfg) == split_pairs(pairs, cfg)
    _, reversed_eval = split_pairs(pairs[::-1], cfg)
    assert {p.id for p in reversed_eval} == {p.id for p in evals}
    # Adding documents does not move existing ones (unless a side was empty).
    _, more_eval = split_pairs([*pairs, qa("new", "other-doc")], cfg)
    assert {p.doc_id for p in evals} <= {p.doc_id for p in more_eval}


def test_rule_is_hash_position_below_fraction():
    cfg = SplitConfig(eval_fraction=0.3)
    docs = [f"doc-{i}" for i in range(50)]
    assert eval_docs(docs, cfg) == {d for d in docs if doc_position(d, cfg.salt) < 0.3}
    assert eval_docs(docs, cfg) != eval_docs(docs, SplitConfig(eval_fraction=0.3, salt="other"))


@pytest.mark.parametrize("fraction", [0.01, 0.99])  # neither document in eval / both in eval
def test_both_sides_non_empty(fraction):
    cfg = SplitConfig(eval_fraction=fraction)
    low, high = sorted(["alpha", "beta"], key=lambda d: doc_position(d, cfg.salt))
    by_rule = {d for d in (low, high) if doc_position(d, cfg.salt) < fraction}
    assert by_rule in (set(), {low, high})  # the rule alone would leave one side empty
    train, evals = split_pairs([qa("a", "alpha"), qa("b", "beta")], cfg)
    # The document nearest the boundary moves: the lowest hash to eval, the highest to train.
    assert ({p.doc_id for p in train}, {p.doc_id for p in evals}) == ({high}, {low})


def test_single_document_stays_on_its_hash_side():
    train, evals = split_pairs(corpus(1), SplitConfig())
    assert len(train) + len(evals) == 3 and not (train and evals)


def test_task_fn_outputs_and_stats(tmp_path):
    ws = Workspace(tmp_path)
    pairs = corpus(10, per_doc=2)
    upstream = save_output(ws, "dedup", "k", {"pairs": pairs}, StageCounts.of(20, 20, []))
    out = split.fn(upstream, SplitConfig(), str(tmp_path))
    assert set(out.files) == {"train", "eval"}
    train, evals = out.read("train", QAPair), out.read("eval", QAPair)
    assert out.counts.as_dict() == {"in": 20, "out": 20, "rejected": {}}
    assert out.stats == {
        "train": len(train), "eval": len(evals),
        "train_docs": len({p.doc_id for p in train}), "eval_docs": len({p.doc_id for p in evals}),
    }  # fmt: skip
    assert out.stats["train_docs"] + out.stats["eval_docs"] == 10
