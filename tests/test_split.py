"""Split: the two eval probes (whole held-out documents; held-out phrasings of trained facts),
stable hash rules, and a frozen eval split across refreshes."""

from __future__ import annotations

from dataclasses import replace

import pytest

from faqforge.config import SplitConfig
from faqforge.integrity import DamagedFile
from faqforge.records import KNOWLEDGE, UNSEEN_DOCUMENTS, EvalItem, QAPair
from faqforge.stage import StageCounts, save_output
from faqforge.storage import Workspace, iter_jsonl
from tasks.split import eval_docs, most_distinct, position, split, split_pairs
from tasks.split_registry import (
    FrozenEval,
    eval_version_id,
    eval_versions,
    frozen_state,
    load_frozen,
    save_eval_version,
    write_state,
)


def qa(pid: str, doc_id: str) -> QAPair:
    return QAPair(
        id=pid, question=f"What is {pid}?", answer="An answer.", doc_id=doc_id, chunk_id="c",
        source=f"{doc_id}.md", prompt_version="v1", teacher="t",
    )  # fmt: skip


def corpus(n_docs: int, per_doc: int = 3) -> list[QAPair]:
    return [qa(f"d{d}-p{i}", f"d{d}") for d in range(n_docs) for i in range(per_doc)]


def sides(result) -> tuple[set[str], set[str]]:
    """Training documents, and documents held out whole (the unseen-documents probe)."""
    unseen = {p.doc_id for p in result.eval if p.probe == UNSEEN_DOCUMENTS}
    return {p.doc_id for p in result.train}, unseen


FORMS = ("What does {} do?", "What is the job of {}?", "What is {} responsible for?")


def fact(doc_id: str, k: int, n: int = 3) -> list[QAPair]:
    """One fact of ``doc_id`` asked ``n`` ways (the extractive teacher's forms)."""
    subject = f"the {doc_id} stage {k}"
    return [
        QAPair(
            id=f"{doc_id}-f{k}-q{i}", question=FORMS[i].format(subject),
            answer=f"The {doc_id} stage {k} writes file {k}.", doc_id=doc_id, chunk_id="c",
            source=f"{doc_id}.md", prompt_version="v1", teacher="t", fact_id=f"{doc_id}-f{k}",
        )
        for i in range(n)
    ]  # fmt: skip


def fact_corpus(n_docs: int = 10, per_doc: int = 6, n: int = 3) -> list[QAPair]:
    return [p for d in range(n_docs) for k in range(per_doc) for p in fact(f"d{d}", k, n)]


def test_documents_never_on_both_sides():
    result = split_pairs(corpus(40), SplitConfig())
    train_docs, eval_docs_ = sides(result)
    assert train_docs.isdisjoint(eval_docs_)
    assert len(result.train) + len(result.eval) == 120
    assert 0 < len(eval_docs_) < 40


def test_deterministic_and_independent_of_order_and_other_docs():
    cfg = SplitConfig()
    pairs = corpus(30)
    result = split_pairs(pairs, cfg)
    assert split_pairs(pairs, cfg) == result
    assert {p.id for p in split_pairs(pairs[::-1], cfg).eval} == {p.id for p in result.eval}
    # Adding documents does not move existing ones (unless a side was empty).
    more = split_pairs([*pairs, qa("new", "other-doc")], cfg)
    assert sides(result)[1] <= sides(more)[1]


def test_rule_is_hash_position_below_fraction():
    cfg = SplitConfig(eval_fraction=0.3)
    docs = [f"doc-{i}" for i in range(50)]
    assert eval_docs(docs, cfg) == {d for d in docs if position(d, cfg.salt) < 0.3}
    assert eval_docs(docs, cfg) != eval_docs(docs, SplitConfig(eval_fraction=0.3, salt="other"))


@pytest.mark.parametrize("fraction", [0.01, 0.99])  # neither document in eval / both in eval
def test_both_sides_non_empty(fraction):
    cfg = SplitConfig(eval_fraction=fraction)
    low, high = sorted(["alpha", "beta"], key=lambda d: position(d, cfg.salt))
    by_rule = {d for d in (low, high) if position(d, cfg.salt) < fraction}
    assert by_rule in (set(), {low, high})  # the rule alone would leave one side empty
    result = split_pairs([qa("a", "alpha"), qa("b", "beta")], cfg)
    # The document nearest the boundary moves: the lowest hash to eval, the highest to train.
    assert sides(result) == ({high}, {low})


def test_single_document_stays_on_its_hash_side():
    result = split_pairs(corpus(1), SplitConfig())
    assert len(result.train) + len(result.eval) == 3 and not (result.train and result.eval)


# --- the frozen eval split ---------------------------------------------------------------

CFG = SplitConfig(eval_fraction=0.3)
DOCS = [f"doc-{i}" for i in range(12)]
FIRST = split_pairs([qa(f"{d}-p{i}", d) for d in DOCS for i in range(2)], CFG)


def frozen(result=FIRST) -> FrozenEval:
    return FrozenEval(eval_version_id(result.eval), result.eval, frozenset(result.train_docs))


def test_unchanged_corpus_keeps_the_same_eval_items():
    again = split_pairs([qa(f"{d}-p{i}", d) for d in DOCS for i in range(2)], CFG, frozen())
    assert again.eval == FIRST.eval and again.train == FIRST.train
    assert (again.carried, again.rejected) == (0, [])
    assert eval_version_id(again.eval) == frozen().version  # same version, nothing new


def test_frozen_sides_hold_when_the_rule_would_move_documents():
    # With eval_fraction 0.99 the hash rule alone would send almost every train doc to eval.
    pairs = [qa(f"{d}-p{i}", d) for d in DOCS for i in range(2)]
    moved = split_pairs(pairs, SplitConfig(eval_fraction=0.99), frozen())
    assert sides(moved) == sides(FIRST)
    # Without the frozen split (--new-eval) the same config does move them.
    assert sides(split_pairs(pairs, SplitConfig(eval_fraction=0.99)))[1] != sides(FIRST)[1]


def test_eval_doc_changed_or_removed_keeps_its_frozen_items():
    eval_doc, gone_doc = sorted(sides(FIRST)[1])[:2]
    pairs = [qa(f"{d}-p{i}", d) for d in DOCS for i in range(2) if d != gone_doc]
    # eval_doc changed: its p1 pair is now generated differently (a new id), p0 is unchanged.
    pairs = [replace(p, id=p.id + "-v2") if p.id == f"{eval_doc}-p1" else p for p in pairs]
    result = split_pairs(pairs, CFG, frozen())
    assert result.eval == FIRST.eval  # verbatim, the removed document's items included
    assert result.carried == 3  # gone_doc's two items and eval_doc's old p1
    # The changed pair may go neither to eval (the set is frozen) nor to train (a leak).
    (rej,) = result.rejected
    assert (rej.record_id, rej.reason) == (f"{eval_doc}-p1-v2", "frozen_eval_doc")
    assert frozen().version in rej.detail


def test_new_documents_follow_the_hash_rule_and_only_add_eval_items():
    new_docs = [f"new-{i}" for i in range(20)]
    pairs = [qa(f"{d}-p0", d) for d in DOCS + new_docs]
    result = split_pairs(pairs, CFG, frozen())
    train_docs, eval_docs_ = sides(result)
    assert sides(FIRST)[1] <= eval_docs_ and sides(FIRST)[0] <= train_docs  # nothing moved
    assert eval_docs_ - sides(FIRST)[1] == {
        d for d in new_docs if position(d, CFG.salt) < CFG.eval_fraction
    }
    assert result.eval[: len(FIRST.eval)] == FIRST.eval  # frozen items first, then new ones
    assert set(result.train_docs) == train_docs


# --- the knowledge probe: held-out phrasings of trained facts ------------------------------


def test_knowledge_items_are_held_out_phrasings_of_facts_still_taught():
    cfg = SplitConfig(knowledge_fraction=0.3)
    pairs = fact_corpus()
    result = split_pairs(pairs, cfg)
    knowledge = [p for p in result.eval if p.probe == KNOWLEDGE]
    train_ids = {p.id for p in result.train}
    train_docs, unseen_docs = sides(result)
    facts_in_train = {p.fact_id for p in pairs if p.doc_id in train_docs}
    # The hash rule on the fact id picks the facts; each gives exactly one phrasing.
    sampled = {f for f in facts_in_train if position(f, cfg.salt) < cfg.knowledge_fraction}
    assert sampled and {p.fact_id for p in knowledge} == sampled
    assert len(knowledge) == len(sampled)
    for item in knowledge:
        assert item.doc_id in train_docs and item.id not in train_ids  # the wording is held out
        siblings = [p.id for p in pairs if p.fact_id == item.fact_id and p.id != item.id]
        assert item.taught_by == siblings and set(siblings) <= train_ids  # the fact is taught
    assert unseen_docs.isdisjoint(train_docs)
    # Nothing is lost: every pair is in train, in a probe, or rejected with a reason.
    out = len(result.train) + len(result.eval) + len(result.rejected)
    assert out == len(pairs)


def test_facts_asked_once_are_never_held_out():
    result = split_pairs(fact_corpus(n=1), SplitConfig(knowledge_fraction=0.99))
    assert not [p for p in result.eval if p.probe == KNOWLEDGE]


def test_the_held_out_phrasing_is_the_one_least_like_its_siblings():
    near, also_near, apart = (
        replace(p, question=q)
        for p, q in zip(
            fact("d", 0),
            ["What does the dedup stage do?", "What does the dedup stage do here?",
             "Which part of faqforge removes repeated pairs?"],
            strict=True,
        )
    )  # fmt: skip
    assert most_distinct([near, also_near, apart], "salt") == apart


def test_unseen_documents_ask_each_fact_once():
    result = split_pairs(fact_corpus(), SplitConfig(eval_fraction=0.3))
    unseen = [p for p in result.eval if p.probe == UNSEEN_DOCUMENTS]
    assert unseen and len({p.fact_id for p in unseen}) == len(unseen)
    extra = [r for r in result.rejected if r.reason == "unseen_extra_phrasing"]
    assert len(extra) == 2 * len(unseen)  # 3 phrasings per fact: 1 asked, 2 recorded
    assert all(r.record["doc_id"] in sides(result)[1] for r in extra)


def test_splitting_against_the_version_just_frozen_changes_nothing():
    # A refresh killed after it froze its eval state re-runs against that state: the
    # unseen documents' other phrasings must be rejected for the same reason, in the same
    # order, or the dataset's rejections differ from an uninterrupted run's.
    cfg = SplitConfig(eval_fraction=0.3, knowledge_fraction=0.3)
    first = split_pairs(fact_corpus(), cfg)
    held = FrozenEval(eval_version_id(first.eval), first.eval, frozenset(first.train_docs))
    again = split_pairs(fact_corpus(), cfg, held)
    assert any(r.reason == "unseen_extra_phrasing" for r in first.rejected)
    assert (again.train, again.eval) == (first.train, first.eval)
    assert again.rejected == first.rejected


def test_frozen_knowledge_items_stay_and_their_facts_add_no_other():
    cfg = SplitConfig(knowledge_fraction=0.3)
    first = split_pairs(fact_corpus(), cfg)
    held = FrozenEval(eval_version_id(first.eval), first.eval, frozenset(first.train_docs))
    # Raising the fraction samples more facts; the frozen ones keep their held-out phrasing.
    again = split_pairs(fact_corpus(), SplitConfig(knowledge_fraction=0.6), held)
    assert again.eval[: len(first.eval)] == first.eval
    knowledge = [p for p in again.eval if p.probe == KNOWLEDGE]
    assert len({p.fact_id for p in knowledge}) == len(knowledge)  # one item per fact, ever
    assert len(knowledge) > len([p for p in first.eval if p.probe == KNOWLEDGE])
    assert sides(again) == sides(first)  # knowledge items never move a document


def test_registry_round_trip_and_new_eval(tmp_path):
    ws = Workspace(tmp_path)
    assert frozen_state(ws) is None  # nothing published yet: split afresh
    version = save_eval_version(ws, FIRST.eval, {"parent": None})
    write_state(ws, version, FIRST.train_docs)
    state = frozen_state(ws)
    assert state == {"version": version, "train_docs": sorted(FIRST.train_docs)}
    assert load_frozen(ws, state) == frozen()
    assert frozen_state(ws, new_eval=True) is None
    # A second version is added, never replacing the first: decontamination reads both.
    save_eval_version(ws, FIRST.eval[:1], {"parent": version})
    assert eval_versions(ws) == [version, eval_version_id(FIRST.eval[:1])]


def test_missing_eval_version_folder_is_an_error_not_a_reset(tmp_path):
    ws = Workspace(tmp_path)
    write_state(ws, "ev-000000000000", ["d1"])
    with pytest.raises(DamagedFile, match="--new-eval"):  # found when the state is read
        frozen_state(ws)


def test_task_fn_outputs_counts_and_stats(tmp_path):
    ws = Workspace(tmp_path)
    pairs = corpus(10, per_doc=2)
    upstream = save_output(ws, "dedup", "k", {"pairs": pairs}, StageCounts.of(20, 20, []))
    out = split.fn(upstream, SplitConfig(), str(tmp_path))
    assert set(out.files) == {"train", "eval", "rejections", "train_docs"}
    train, evals = out.read("train", QAPair), out.read("eval", EvalItem)
    assert out.counts.as_dict() == {"in": 20, "out": 20, "rejected": {}}
    assert out.stats["eval_version"] == eval_version_id(evals)
    assert out.stats["eval_parent"] is None and out.stats["carried_eval"] == 0
    assert [r["doc_id"] for r in iter_jsonl(out.path("train_docs"))] == sorted(
        {p.doc_id for p in train}
    )

    # Frozen against that split, with one eval document gone: its items are carried in.
    version = save_eval_version(ws, evals, {"parent": None})
    write_state(ws, version, [p.doc_id for p in train])
    gone = evals[0].doc_id
    rest = [p for p in pairs if p.doc_id != gone]
    upstream = save_output(ws, "dedup", "k2", {"pairs": rest}, StageCounts.of(18, 18, []))
    out = split.fn(upstream, SplitConfig(), str(tmp_path), frozen_state(ws))
    assert out.read("eval", EvalItem) == evals
    assert out.counts.as_dict() == {"in": 20, "out": 20, "rejected": {}}  # 18 read + 2 carried
    assert out.stats["carried_eval"] == 2 and out.stats["eval_parent"] == version
