"""Decontaminate: n-gram overlap, same question or MinHash similarity with any eval item of any
eval version, or a benchmark line, removes a training pair and names what it hit."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from faqforge.config import DecontaminateConfig
from faqforge.records import KNOWLEDGE, UNSEEN_DOCUMENTS, EvalItem, QAPair, Rejection
from faqforge.stage import StageCounts, StageOutput, save_output
from faqforge.storage import Workspace
from tasks.decontaminate import decontaminate, remove_eval_overlap
from tasks.references import ReferenceSet, load_references, read_references, reference_set
from tasks.split import SplitStats
from tasks.split_registry import eval_version_id, save_eval_version

CFG_DEFAULT = DecontaminateConfig()
SENTENCE = "the teacher is only called for chunks whose text hash is not already in the cache"


def qa(pid: str, question: str, answer: str) -> QAPair:
    return QAPair(
        id=pid, question=question, answer=answer, doc_id=pid, chunk_id="c", source="s.md",
        prompt_version="v1", teacher="t",
    )  # fmt: skip


EVAL = [  # items of the unseen-documents probe: their content stays out of training
    EvalItem(**qa("e1", "When is the teacher called?", f"In short: {SENTENCE}.").to_dict()),
    EvalItem(**qa("e2", "What is a chunk?", "A window.").to_dict()),  # 6 words: one whole gram
]


def split_output(ws: Workspace, key: str, train: list, evals: list) -> StageOutput:
    """A split stage's output as split writes it: its records, counts and ``SplitStats``."""
    stats = SplitStats(
        train=len(train), eval=len(evals), train_docs=len({p.doc_id for p in train}),
        eval_docs=0, knowledge=sum(e.probe == KNOWLEDGE for e in evals),
        unseen_documents=sum(e.probe != KNOWLEDGE for e in evals),
        train_facts=len({p.fact_id for p in train}), carried_eval=0,
        eval_version=eval_version_id(evals), eval_parent=None,
    )  # fmt: skip
    n = len(train) + len(evals)
    counts = StageCounts.of(n, n, [])
    return save_output(
        ws, "split", key, {"train": train, "eval": evals}, counts, stats.model_dump()
    )


@pytest.mark.parametrize(
    ("question", "answer", "eval_id"),
    [
        # 13 consecutive words of e1's answer (case and punctuation ignored)
        (
            "Why are reruns cheap?",
            "Because THE teacher is only called, for chunks whose text hash is not already",
            "e1",
        ),
        # the 13 words span question and answer: the text is the normalised "question answer"
        (
            "Is it true that the teacher is only called for chunks whose",
            "text hash is not already cached?",
            "e1",
        ),
        # a training text containing the whole of the short eval text e2
        ("Quick recap: what is a chunk?", "A window. Of a document.", "e2"),
    ],
)
def test_overlap_removed(question, answer, eval_id):
    kept, rejected = remove_eval_overlap([qa("t1", question, answer)], EVAL, DecontaminateConfig())
    assert kept == []
    (rej,) = rejected
    assert (rej.reason, rej.record_id, rej.record["eval_id"]) == ("eval_overlap", "t1", eval_id)
    assert rej.record["eval_source"] == "eval" and eval_id in rej.detail


@pytest.mark.parametrize(
    ("question", "answer", "reason", "eval_id"),
    [
        # e1 with two words swapped and the question extended: no 13-word span, Jaccard ≈ 0.7
        ("When is the teacher called, in short?", "The teacher is called only for chunks whose "
         "text hash is not already in the cache.", "eval_near_duplicate", "e1"),
        # the same question as e2 (case, punctuation) with an unrelated answer
        ("what is a CHUNK", "Something the chunk stage produces from documents, token-bounded.",
         "eval_question", "e2"),
    ],
)  # fmt: skip
def test_paraphrase_and_same_question_removed(question, answer, reason, eval_id):
    kept, rejected = remove_eval_overlap([qa("t1", question, answer)], EVAL, DecontaminateConfig())
    assert kept == []
    (rej,) = rejected
    assert (rej.reason, rej.record["eval_id"]) == (reason, eval_id)


def test_another_phrasing_of_a_held_out_fact_is_removed_by_its_answer():
    held_out = EvalItem(**qa("e3", "What is a stage?", "One step of the pipeline.").to_dict())
    train = [qa("t1", "What is the job of a stage?", "One step of the pipeline!"),
             qa("t2", "Is it a step?", "Yes, it is.")]  # fmt: skip
    _, rejected = remove_eval_overlap(train, [held_out], CFG_DEFAULT)
    assert [r.reason for r in rejected] == ["eval_answer"] and rejected[0].record_id == "t1"
    # An answer shorter than 4 words is shared by chance, not by a leaked fact.
    short = EvalItem(**qa("e4", "Is a stage a step?", "Yes, it is.").to_dict())
    assert remove_eval_overlap(train[1:], [short], CFG_DEFAULT) == (train[1:], [])


def test_minhash_threshold_is_the_config_knob():
    train = [qa("t1", "When is the teacher called, in short?", "The teacher is called only for "
                "chunks whose text hash is not already in the cache.")]  # fmt: skip
    assert remove_eval_overlap(train, EVAL, DecontaminateConfig(minhash_threshold=0.95)) == (
        train,
        [],
    )


@pytest.mark.parametrize(
    ("question", "answer"),
    [
        # 6 shared words in a different frame: neither a 13-gram nor MinHash-similar
        (
            "Why are reruns cheap?",
            "Because only chunks whose text hash changed reach the slow model again.",
        ),
        # same topic, different wording
        ("When does the pipeline call its teacher?", "Only for chunks missing from the cache."),
        # a short training text (8 words) that does not appear whole in any eval text
        ("Is the cache checked?", "Already in the cache."),
    ],
)
def test_no_false_removal(question, answer):
    train = [qa("t1", question, answer)]
    assert remove_eval_overlap(train, EVAL, DecontaminateConfig()) == (train, [])


def test_short_training_text_found_whole_in_eval():
    # "what is a chunk a window" (6 words) appears whole in e2, so it collides although < 13.
    (rej,) = remove_eval_overlap([qa("t1", "What is a chunk?", "A window!")], EVAL,
                                 DecontaminateConfig())[1]  # fmt: skip
    assert rej.record["eval_id"] == "e2"
    # A short training text found whole inside the longer e1 collides too.
    (rej,) = remove_eval_overlap([qa("t2", "Teacher is only called?", "For chunks.")], EVAL,
                                 DecontaminateConfig())[1]  # fmt: skip
    assert rej.record["eval_id"] == "e1"


def test_every_eval_version_and_benchmark_is_a_reference(tmp_path):
    ws = Workspace(tmp_path)
    old = save_eval_version(ws, [EVAL[0]], {"parent": None})
    new = save_eval_version(ws, EVAL, {"parent": old})  # e1 again: named by the first version
    bench = tmp_path / "bench.jsonl"
    bench.write_text(
        '{"question": "How many legs does a spider have?", "answer": "Eight legs."}\n'
        "\n"  # blank lines are skipped but still counted for line numbers
        '{"id": "trivia-7", "question": "What colour is the sky on a clear day?"}\n'
    )
    refs = load_references(ws, reference_set(ws, DecontaminateConfig(benchmarks=[bench])))
    assert [(r.eval_id, r.origin) for r in refs] == [
        ("e1", f"eval:{old}"), ("e2", f"eval:{new}"),
        ("bench.jsonl:1", f"benchmark:{bench}"), ("trivia-7", f"benchmark:{bench}"),
    ]  # fmt: skip
    train = [
        qa("t1", "How many legs does a spider have?", "A spider has eight legs."),
        qa("t2", "What colour is the sky on a clear day, usually?", "Blue."),
        qa("t3", "What is dedup?", "Removal of repeated pairs."),
    ]
    kept, rejected = remove_eval_overlap(train, refs, DecontaminateConfig())
    assert [p.id for p in kept] == ["t3"]
    hits = {r.record_id: (r.record["eval_id"], r.record["eval_source"]) for r in rejected}
    assert hits == {
        "t1": ("bench.jsonl:1", f"benchmark:{bench}"),
        "t2": ("trivia-7", f"benchmark:{bench}"),
    }


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("not json", "bench.jsonl:2: not JSON"),
        ('{"answer": "no question"}', "bench.jsonl:2: expected an object with a string 'question'"),
        ('["a list"]', "bench.jsonl:2: expected an object"),
    ],
)
def test_bad_benchmark_line_is_an_error_naming_file_and_line(tmp_path, line, problem):
    bench = tmp_path / "bench.jsonl"
    bench.write_text('{"question": "Fine?"}\n' + line + "\n")
    with pytest.raises(ValueError, match=problem):
        read_references(bench)


def test_missing_benchmark_file_names_the_config_field(tmp_path):
    cfg = DecontaminateConfig(benchmarks=[tmp_path / "nope.jsonl"])
    with pytest.raises(FileNotFoundError, match=r"decontaminate\.benchmarks"):
        reference_set(Workspace(tmp_path), cfg)


def test_task_fn_reads_earlier_eval_versions(tmp_path):
    ws = Workspace(tmp_path)
    old = save_eval_version(ws, [EVAL[0]], {"parent": None})  # an eval split since redrawn
    train = [qa("t1", "Why are reruns cheap?", SENTENCE), qa("t2", "What is dedup?", "Removal.")]
    upstream = split_output(ws, "k", train, [EVAL[1]])
    out = decontaminate.fn(
        upstream, DecontaminateConfig(), str(tmp_path), reference_set(ws, DecontaminateConfig())
    )
    (rej,) = out.read("rejections", Rejection)
    assert (rej.record_id, rej.record["eval_id"], rej.record["eval_source"]) == (
        "t1", "e1", f"eval:{old}",
    )  # fmt: skip
    assert out.counts.as_dict() == {"in": 3, "out": 2, "rejected": {"eval_overlap": 1}}
    # Without the registry reference the same pair stays.
    out = decontaminate.fn(upstream, DecontaminateConfig(), str(tmp_path), ReferenceSet())
    assert [p.id for p in out.read("train", QAPair)] == ["t1", "t2"]


def test_task_fn_passes_eval_through(tmp_path):
    ws = Workspace(tmp_path)
    train = [qa("t1", "Why are reruns cheap?", SENTENCE), qa("t2", "What is dedup?", "Removal.")]
    upstream = split_output(ws, "k", train, EVAL)
    out = decontaminate.fn(upstream, DecontaminateConfig(), str(tmp_path))
    assert set(out.files) == {"train", "eval", "rejections"}
    assert [p.id for p in out.read("train", QAPair)] == ["t2"]
    assert out.read("eval", EvalItem) == EVAL
    assert out.counts.as_dict() == {"in": 4, "out": 3, "rejected": {"eval_overlap": 1}}


# --- the knowledge probe: only the wording is held out ------------------------------------

FACT = "The dedup stage removes repeated pairs with MinHash LSH before the split runs."


def probe_item(probe: str) -> EvalItem:
    return EvalItem(
        id="k1", question="What is the dedup stage responsible for?", answer=FACT, doc_id="d",
        chunk_id="c", source="d.md", prompt_version="v1", teacher="t", fact_id="f1",
        probe=probe,
    )  # fmt: skip


def sibling(pid: str, question: str) -> QAPair:
    return replace(qa(pid, question, FACT), fact_id="f1")


def test_knowledge_items_hold_out_wording_not_the_fact():
    train = [sibling("t1", "What does the dedup stage do?"),
             sibling("t2", "What is the job of the dedup stage?")]  # fmt: skip
    kept, rejected = remove_eval_overlap(train, [probe_item(KNOWLEDGE)], DecontaminateConfig())
    assert kept == train and rejected == []  # same answer, other wording: the fact is taught
    # The same pairs against a held-out document's item share its answer: they leak.
    kept, rejected = remove_eval_overlap(train, [probe_item(UNSEEN_DOCUMENTS)], CFG_DEFAULT)
    assert kept == [] and {r.reason for r in rejected} == {"eval_overlap"}


@pytest.mark.parametrize(
    ("question", "reason"),
    [
        ("what is the DEDUP stage responsible for", "eval_question"),  # same after normalising
        ("What is the dedup stage responsible for here?", "eval_near_question"),  # 5 of 6 pairs
        ("What is the dedup stage responsible for in faqforge?", "eval_near_question"),
    ],
)
def test_training_question_near_the_probe_wording_is_removed(question, reason):
    kept, rejected = remove_eval_overlap(
        [sibling("t1", question)], [probe_item(KNOWLEDGE)], CFG_DEFAULT
    )
    assert kept == []
    (rej,) = rejected
    assert (rej.reason, rej.record["eval_id"]) == (reason, "k1")


def test_near_question_bound_is_the_config_knob():
    train = [sibling("t1", "What is the dedup stage responsible for in faqforge?")]  # 0.71
    strict = DecontaminateConfig(question_threshold=0.8)
    assert remove_eval_overlap(train, [probe_item(KNOWLEDGE)], strict) == (train, [])


def test_task_fn_names_the_teaching_pairs_that_survive(tmp_path):
    ws = Workspace(tmp_path)
    train = [sibling("t1", "What does the dedup stage do?"),
             sibling("t2", "What is the dedup stage responsible for, then?"),  # near: removed
             qa("t3", "What is a chunk?", "A window of a document.")]  # fmt: skip
    evals = [replace(probe_item(KNOWLEDGE), taught_by=["t1", "t2"])]
    upstream = split_output(ws, "k", train, evals)
    out = decontaminate.fn(upstream, CFG_DEFAULT, str(tmp_path))
    assert [p.id for p in out.read("train", QAPair)] == ["t1", "t3"]
    (item,) = out.read("eval", EvalItem)
    assert item.taught_by == ["t1"] and out.stats["knowledge_untaught"] == 0
    # With every sibling removed, the item is left untaught (and evaluation skips it).
    upstream = split_output(ws, "k2", train[1:], evals)
    out = decontaminate.fn(upstream, CFG_DEFAULT, str(tmp_path))
    assert out.read("eval", EvalItem)[0].taught_by == [] and out.stats["knowledge_untaught"] == 1


def test_minhash_rule_finds_what_datasketch_finds():
    """Signatures and band candidates equal datasketch's MinHash and MinHashLSH at the
    config's threshold, on real text (the sample corpus's lines) and edited copies of it."""
    import random

    import numpy as np
    from datasketch import MinHash, MinHashLSH

    from tasks.decontaminate import lsh_index, signatures
    from tasks.text import word_ngrams, words

    cfg = DecontaminateConfig()
    sample = Path(__file__).resolve().parent.parent / "faqforge" / "sample_corpus"
    lines = [w for p in sorted(sample.glob("*.md")) for line in p.read_text().splitlines()
             if len(w := words(line)) >= 8][:120]  # fmt: skip
    rng = random.Random(0)
    edited = [[t for t in ws if rng.random() > 0.15] for ws in lines]  # ~15% of words dropped
    sets = [
        {" ".join(g).encode() for g in (word_ngrams(t, cfg.shingle_words) or [tuple(t)])}
        for t in lines + edited
    ]
    reference = MinHash.bulk(sets, num_perm=cfg.num_perm, seed=1)
    ours = signatures(lines + edited, cfg)
    assert (ours == np.array([m.hashvalues for m in reference])).all()

    theirs = MinHashLSH(threshold=cfg.minhash_threshold, num_perm=cfg.num_perm)
    index = lsh_index(cfg)
    for i, m in enumerate(reference[: len(lines)]):
        theirs.insert(i, m)
    for i, keys in enumerate(index.band_keys(ours[: len(lines)])):
        index.insert(i, keys)
    keys = index.band_keys(ours[len(lines) :])
    found = [index.query(k) for k in keys]
    assert found == [set(theirs.query(m)) for m in reference[len(lines) :]]
    assert sum(i in hits for i, hits in enumerate(found)) > len(lines) / 2  # edits are found
