"""Dedup: each detector on inline cases, which pair survives, cluster ids, counts, the task."""

from __future__ import annotations

from dataclasses import replace

import pytest

from faqforge.config import DedupConfig
from faqforge.records import QAPair
from faqforge.stage import StageCounts, save_output
from faqforge.storage import Workspace
from tasks.dedup import clusters, dedup, dedup_pairs

# Semantic dedup loads a sentence model: only the tests marked slow use it.
CFG = DedupConfig(semantic=False)

Q = "How does the pipeline avoid paying for teacher calls on unchanged documents?"
A = (
    "Each chunk is keyed by its text hash, prompt version and teacher model, "
    "so reruns hit the cache."
)


def qa(pid: str, question: str = Q, answer: str = A, score: float | None = None) -> QAPair:
    return QAPair(
        id=pid, question=question, answer=answer, doc_id="d1", chunk_id="c1",
        source="guide.md", prompt_version="v1", teacher="t", score=score,
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
def test_exact_duplicate_names_kept_pair_and_cluster(question):
    other = qa("b", question, A.replace("cache.", "cache!"))  # the same answer
    kept, rejected = dedup_pairs([qa("a"), other], CFG)
    assert [p.id for p in kept] == ["a"]
    (rej,) = rejected
    assert (rej.reason, rej.record_id) == ("exact_duplicate", "b")
    assert (rej.record["duplicate_of"], rej.record["cluster_id"]) == ("a", "dup-a")
    # The same question of another answer is one question asked of two facts: ambiguous.
    kept, rejected = dedup_pairs([qa("a"), qa("b", question, "A different answer entirely.")], CFG)
    assert [(r.reason, r.record["duplicate_of"]) for r in rejected] == [("ambiguous_question", "a")]


def test_a_near_alike_question_of_another_fact_is_kept():
    other = qa("b", Q.replace("?", " again?"), "It caches each chunk and keys it by content.")
    kept, rejected = dedup_pairs([qa("a"), other], CFG)
    assert [p.id for p in kept] == ["a", "b"] and rejected == []


def test_questions_naming_different_code_are_different_questions():
    pull = qa("a", "What does the `-j` option of `git-pull` do?", "Sets the number of jobs.")
    fetch = replace(pull, id="b", question="What does the `-j` option of `git-fetch` do?")
    assert dedup_pairs([pull, fetch], CFG) == ([pull, fetch], [])  # same answer, two commands
    upper = replace(pull, id="c", question="What does the `-J` option of `git-pull` do?")
    assert dedup_pairs([pull, upper], CFG)[1] == []  # case matters in code


@pytest.mark.parametrize(
    ("question", "answer", "reason"),
    [
        # two scattered words changed in a 30-word QA text: true Jaccard 0.65 with 3-word
        # shingles (missed by the old default), 0.76 with 2-word shingles
        (Q.replace("pipeline", "flow"), A.replace("prompt", "recipe"), "near_duplicate"),
        # one word changed; the answer differs only in punctuation and case
        (Q.replace("pipeline", "flow"), A.replace(",", ";").replace("reruns", "Reruns"),
         "near_duplicate"),
        # the question's last word changed (question Jaccard 0.83): caught on the question
        (Q.replace("documents", "files"), A, "near_duplicate_question"),
        # a word appended to the question; the answer says the same, reworded
        (Q.replace("?", " again?"), A.replace("so reruns hit the cache", "so reruns are free"),
         "near_duplicate_question"),
    ],
)  # fmt: skip
def test_near_duplicates_caught(question, answer, reason):
    kept, rejected = dedup_pairs([qa("a"), qa("b", question, answer)], CFG)
    assert [p.id for p in kept] == ["a"]
    (rej,) = rejected
    assert (rej.reason, rej.record["duplicate_of"], rej.record["cluster_id"]) == (
        reason,
        "a",
        "dup-a",
    )
    threshold = CFG.threshold if reason == "near_duplicate" else CFG.question_threshold
    assert threshold <= rej.record["similarity"] <= 1


def test_distinct_pairs_kept():
    pairs = [
        qa("a"),
        qa("b", "Which library removes near-duplicate QA pairs?", "datasketch, with MinHash LSH."),
        qa("c", "How is the train/eval split grouped?", "By source document, so none leaks."),
        # one word apart, but a different subject: short questions need a high threshold
        qa("d", "What is the ingest stage in ingest and chunk stages?", "It reads files."),
        qa("e", "What is the chunk stage in ingest and chunk stages?", "It cuts documents."),
    ]
    kept, rejected = dedup_pairs(pairs, CFG)
    assert kept == pairs and rejected == []


@pytest.mark.parametrize(
    ("pairs", "winner"),
    [
        # judge score decides, whatever the order
        ([qa("a", score=3.0), qa("b", Q.lower(), score=4.5)], "b"),
        # scored beats unscored
        ([qa("a"), qa("b", Q.lower(), score=1.0)], "b"),
        # equal scores: the longer answer
        ([qa("a", answer="Cached."), qa("b", Q.lower(), answer=A)], "b"),
        # all equal: the first in input order
        ([qa("a"), qa("b", Q.lower())], "a"),
    ],
)
def test_keeps_best_of_cluster(pairs, winner):
    kept, rejected = dedup_pairs(pairs, CFG)
    assert [p.id for p in kept] == [winner]
    assert rejected[0].record["duplicate_of"] == winner


def test_cluster_ids_and_counts():
    near = Q.replace("pipeline", "flow")
    pairs = [qa("x", "What is dedup for?", "Dropping repeats."), qa("a"), qa("b", Q.lower()),
             qa("c", near), qa("d", "What is dedup for ?", "Other."),
             qa("e", score=5.0)]  # fmt: skip
    kept, rejected = dedup_pairs(pairs, CFG)
    assert [p.id for p in kept] == ["x", "e"]  # e has the best score in its cluster
    assert {r.record_id: (r.reason, r.record["cluster_id"]) for r in rejected} == {
        "a": ("exact_duplicate", "dup-e"),
        "b": ("exact_duplicate", "dup-e"),
        "c": ("near_duplicate", "dup-e"),
        "d": ("ambiguous_question", "dup-x"),  # the same question of another answer
    }
    assert len(pairs) == len(kept) + len(rejected)
    assert [(c["cluster_id"], c["kept"], c["size"]) for c in clusters(rejected)] == [
        ("dup-e", "e", 4),
        ("dup-x", "x", 2),
    ]
    assert dedup_pairs(pairs, CFG) == (kept, rejected)  # deterministic


# The extractive teacher's phrasings of one fact: one answer, three question forms.
PHRASINGS = [
    replace(qa(f"p{i}", q, A), fact_id="f1")
    for i, q in enumerate(
        [
            "How does the pipeline avoid paying for teacher calls?",
            "Can you explain how the pipeline avoids paying for teacher calls?",
            "What keeps the pipeline from paying for teacher calls?",
        ]
    )
]


def test_phrasings_of_one_fact_are_not_duplicates():
    kept, rejected = dedup_pairs(PHRASINGS, CFG)
    assert kept == PHRASINGS and rejected == []  # the same fact, asked three ways
    # The same question and answer texts from another fact (an overlapping chunk) are one.
    twins = [replace(p, fact_id="f2", id=p.id + "-twin", chunk_id="c2") for p in PHRASINGS[1:]]
    kept, rejected = dedup_pairs([*PHRASINGS, *twins], CFG)
    assert kept == PHRASINGS
    assert {r.reason for r in rejected} == {"exact_duplicate"}
    # A near-identical question stays one question, even within a fact.
    again = replace(PHRASINGS[0], id="p9", question=PHRASINGS[0].question.replace("?", " now?"))
    kept, rejected = dedup_pairs([*PHRASINGS, again], CFG)
    assert [r.reason for r in rejected] == ["near_duplicate_question"]


@pytest.mark.slow
def test_semantic_dedup_keeps_the_phrasings_of_a_fact():
    kept, rejected = dedup_pairs(PHRASINGS, DedupConfig())
    assert kept == PHRASINGS and rejected == []
    # Another fact saying the same in other words (no shared wording for MinHash): merged.
    reworded = "Every chunk is cached under its text hash, prompt version and teacher model."
    other = replace(PHRASINGS[1], fact_id="f2", id="o1", answer=reworded)
    kept, rejected = dedup_pairs([PHRASINGS[0], other], DedupConfig())
    assert [r.reason for r in rejected] == ["semantic_duplicate"]


def test_empty_input():
    assert dedup_pairs([], DedupConfig()) == ([], [])


def test_bands_must_divide_permutations():
    with pytest.raises(ValueError, match="bands must divide num_perm"):
        DedupConfig(num_perm=128, bands=24)


@pytest.mark.slow
def test_semantic_duplicates_collapse_paraphrases_only():
    answer = "The dedup stage removes duplicate QA pairs and keeps the best one of each cluster."
    pairs = [
        qa("a", "What is the dedup stage?", answer),
        # a paraphrase with the same answer in other words: no shared wording for MinHash
        qa("b", "Can you explain what the dedup stage is?",
           "The dedup stage drops duplicate QA pairs, keeping the best pair of every cluster."),
        # a template twin (question cosine 0.96) with a different answer: kept
        qa("c", "What is the ingest stage in ingest and chunk stages?",
           "The ingest stage reads every file under the corpus folder."),
        qa("d", "What is the chunk stage in ingest and chunk stages?",
           "The chunk stage cuts each document into token-bounded chunks."),
    ]  # fmt: skip
    kept, rejected = dedup_pairs(pairs, DedupConfig())
    assert [p.id for p in kept] == ["a", "c", "d"]
    (rej,) = rejected
    assert (rej.reason, rej.record["duplicate_of"]) == ("semantic_duplicate", "a")
    assert rej.record["similarity"] >= DedupConfig().semantic_threshold
    assert dedup_pairs(pairs, DedupConfig(semantic=False))[0] == pairs  # MinHash alone: no


def test_task_fn(tmp_path):
    ws = Workspace(tmp_path)
    upstream = save_output(
        ws, "curate", "k", {"pairs": [qa("a"), qa("b")]}, StageCounts.of(2, 2, [])
    )
    out = dedup.fn(upstream, CFG, str(tmp_path))
    assert [p.id for p in out.read("pairs", QAPair)] == ["a"]
    assert out.counts.as_dict() == {"in": 2, "out": 1, "rejected": {"exact_duplicate": 1}}
    assert out.stats == {
        "clusters": 1, "largest_cluster": 2, "ambiguous_questions": 0, "repaired_pairs": 0,
        "distinct_answers_lost": 0,
        "facts": 1, "phrasings_per_fact_median": 1, "facts_with_one_phrasing": 1,
    }  # fmt: skip
    assert out.path("clusters").read_text().count("\n") == 1
