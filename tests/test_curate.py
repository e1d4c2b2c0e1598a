"""Curate rules on inline cases, the rule order, PII and boilerplate modes, coverage, the task."""

from __future__ import annotations

from dataclasses import replace

import pytest

from faqforge.config import CurateConfig, TeacherConfig
from faqforge.records import Chunk, QAPair
from faqforge.stage import StageCounts, save_output
from faqforge.storage import Workspace, iter_jsonl
from tasks import pii
from tasks.curate import PASSAGE_REFERENCE, curate, curate_pairs

ANSWER = "Each chunk's answer is cached by its text hash and the prompt version."


def qa(question: str, answer: str = ANSWER, pid: str = "p1") -> QAPair:
    return QAPair(
        id=pid, question=question, answer=answer, doc_id="d1", chunk_id="c1",
        source="guide.md", prompt_version="v1", teacher="t",
    )  # fmt: skip


@pytest.mark.parametrize(
    "question",
    [
        "What does the passage say about caching?",  # "the passage": always referential
        "According to the text, what is a chunk?",  # attribution frame
        "What is described in this document?",  # "this document"
        "What does the document say about retries?",  # noun + saying verb
        "Based on the context, why are tasks cached?",
        "What is the main topic of the article?",  # "of the article" closing the question
        "Which tools are mentioned above?",
        "What does the above imply about caching?",
        "In this chapter, which stage runs first?",
        "What does the excerpt list as inputs?",
        "According to the author, why is dedup needed?",
        "What is mentioned in the text about retries?",
        "Which stages does the given text list?",
        "WHAT DO THE DOCUMENTS DESCRIBE?",  # case-insensitive, plural
    ],
)
def test_passage_reference_positives(question):
    assert PASSAGE_REFERENCE.search(question)
    assert curate_pairs([qa(question)], CurateConfig())[1][0].reason == "passage_reference"


@pytest.mark.parametrize(
    "question",
    [
        "How are documents ingested?",  # "documents" as the subject itself
        "What does the text stage do?",  # "the text" naming a stage, no saying verb
        "What does 'hash' mean in the context of caching?",  # idiom "in the context of"
        "How is a document's content hash computed?",
        "Which config section controls dedup?",
        "What is the context window of the student model?",
        "Why is this document-level grouping needed?",  # compound, not "this document"
        "What happens when the document text changes?",
        "How is plain text extracted from a PDF?",
        "What is the passage_reference rule?",  # identifier, not "the passage"
    ],
)
def test_passage_reference_negatives(question):
    assert not PASSAGE_REFERENCE.search(question)
    assert curate_pairs([qa(question)], CurateConfig())[0] == [qa(question)]


@pytest.mark.parametrize(
    ("question", "answer", "reason"),
    [
        ("How are answers cached?", "word " * 61, "answer_too_long"),  # 61 > 60 words
        ("How are answers cached?", "   ", "empty_answer"),
        ("Retries?", ANSWER, "question_too_short"),  # 1 < 3 words
        ("Tasks are cached by input.", ANSWER, "not_a_question"),  # no '?', no interrogative
        ("What does the passage say?", "", "passage_reference"),  # first failing rule wins
        ("Why?", "", "empty_answer"),  # empty answer is checked before question length
        # fragments: a clause cut from its sentence, a lead-in, a bullet, a label
        ("How is the zone shown?", "the time zone is omitted when the local time zone is used",
         "answer_not_sentence"),
        ("Which options are there?", "The options are:", "answer_not_sentence"),
        ("What is the marker?", "-", "answer_not_sentence"),
        ("What is `git-rebase`?", "git-rebase - Reapply commits on top of another base tip",
         "answer_not_sentence"),
        ("How are answers cached?", "By hash.", "answer_too_short"),  # 2 < 3 words
    ],
)  # fmt: skip
def test_rules_and_order(question, answer, reason):
    kept, rejected = curate_pairs([qa(question, answer)], CurateConfig())
    assert kept == []
    assert rejected[0].reason == reason
    assert rejected[0].record_id == "p1"
    assert rejected[0].record["question"] == question


@pytest.mark.parametrize(
    "question",
    [
        "How are answers cached?",
        "Explain how answers are cached?",  # imperative, but marked as a question
        "Is the teacher called for unchanged chunks",  # auxiliary opening, no '?'
        "Why " + "long " * 55 + "?",  # long (280 chars), within curate.max_question_chars
    ],
)
def test_kept(question):
    assert curate_pairs([qa(question, "word " * 59 + "end.")], CurateConfig())[0] != []


@pytest.mark.parametrize(
    "answer",
    [
        "faqforge runs as Prefect flows.",  # a lower-case name may open a sentence
        "`--onto` sets the starting point.",
        "(Optional.) The judge rates each pair.",
        'It keys each chunk by its "text hash".',
    ],
)
def test_sentences_kept(answer):
    assert curate_pairs([qa("How does it work?", answer)], CurateConfig())[1] == []


def test_an_answer_that_is_only_a_heading_is_dropped():
    pair = replace(qa("What is in the page?", "Table of the Stages."), heading_path=["Guide",
                   "Table of the Stages"])  # fmt: skip
    assert [r.reason for r in curate_pairs([pair], CurateConfig())[1]] == ["answer_is_heading"]


def test_limits_come_from_config():
    cfg = CurateConfig(min_question_words=5)
    words = TeacherConfig(max_answer_words=5).max_answer_words  # the teacher's limit: one knob
    long = qa("How are answers cached?", "Answers are kept in one file per chunk.")
    assert curate_pairs([long], cfg, None, words)[1][0].reason == "answer_too_long"
    assert curate_pairs([long], CurateConfig())[1] == []  # under the default 60 words
    _, rejected = curate_pairs([qa("How are answers cached?", "One two three.")], cfg)
    assert rejected[0].reason == "question_too_short"
    _, rejected = curate_pairs([qa("How are the answers cached?", "One two.")], cfg)
    assert rejected[0].reason == "answer_too_short"
    assert curate_pairs([qa("How are the answers cached?", "One two.")],
                        CurateConfig(min_answer_words=2))[1] == []  # fmt: skip


def test_task_fn_writes_output_and_counts(tmp_path):
    ws = Workspace(tmp_path)
    pairs = [qa("How are answers cached?", pid="a"), qa("What does the passage say?", pid="b")]
    upstream = save_output(ws, "generate", "k1", {"pairs": pairs}, StageCounts.of(2, 2, []))
    out = curate.fn(upstream, CurateConfig(), str(tmp_path))
    assert [p.id for p in out.read("pairs", QAPair)] == ["a"]
    assert out.counts.as_dict() == {"in": 2, "out": 1, "rejected": {"passage_reference": 1}}
    assert curate.fn(upstream, CurateConfig(), str(tmp_path)) == out  # finished: reused


@pytest.mark.parametrize(
    ("question", "answer", "kept"),
    [
        ("What is a rejection?", "A rejection, the rejection.", False),  # the question's words
        ("What is the dedup stage?", "It is the dedup stage.", False),  # echo with fillers
        ("What does the dedup stage keep?", "The dedup stage keeps one pair.", True),  # 3 new of 5
        ("Is the teacher cached?", "Yes, it is so.", True),  # no content words: not this rule's
    ],
)
def test_answer_repeating_question(question, answer, kept):
    survivors, rejected = curate_pairs([qa(question, answer)], CurateConfig())
    assert bool(survivors) is kept
    assert kept or rejected[0].reason == "answer_repeats_question"


@pytest.mark.parametrize(
    ("question", "answer", "kept"),
    [
        # German, French, Spanish: confidently not English
        ("Wie werden Dokumente eingelesen?", "Jede Datei wird gelesen und normalisiert.", False),
        ("Comment les documents sont-ils lus ?", "Chaque fichier est lu puis normalisé.", False),
        ("¿Cómo se leen los documentos?", "Cada archivo se lee y se normaliza.", False),
        # English, with code: kept
        ("How is a run started?", "`faqforge run refresh --config configs/default.yaml`.", True),
        # too short and technical for a confident verdict: kept rather than guessed at
        ("What is MinHash LSH?", "Banded MinHash buckets.", True),
    ],
)
def test_language(question, answer, kept):
    survivors, rejected = curate_pairs([qa(question, answer)], CurateConfig())
    assert bool(survivors) is kept
    assert kept or rejected[0].reason == "wrong_language"


def test_language_config():
    german = qa("Wie werden Dokumente eingelesen?", "Jede Datei wird gelesen und normalisiert.")
    assert curate_pairs([german], CurateConfig(languages=["en", "de"]))[0] == [german]
    assert curate_pairs([german], CurateConfig(languages=[]))[0] == [german]  # check off
    with pytest.raises(ValueError, match="unknown language code"):
        curate_pairs([german], CurateConfig(languages=["english"]))


@pytest.mark.parametrize(
    ("answer", "found"),
    [
        ("Write to jane.doe@example.com for access.", "pii:email"),
        ("Call the desk on +44 20 7946 0958.", "pii:phone"),
        ("Call (555) 123-4567 for help.", "pii:phone"),
        ("Use the key sk-proj-A1b2C3d4E5f6G7h8I9j0K1l2 in the header.", "pii:secret"),
        ("Set api_key=9f8e7d6c5b4a39281706f5e4 in the file.", "pii:secret"),
        ("The token is ghp_abcdefghijklmnopqrstuvwxyz0123456789 for CI.", "pii:secret"),
        ("AWS uses AKIAIOSFODNN7EXAMPLE as the key id.", "pii:secret"),
        ("Copyright (c) 2024 Example Corp. All rights reserved.", "boilerplate"),
        ("Click here to subscribe to our newsletter.", "boilerplate"),
    ],
)
def test_pii_and_boilerplate_rejected_by_default_and_flagged_on_request(answer, found):
    question = "How do I get access to the service?"
    _, rejected = curate_pairs([qa(question, answer)], CurateConfig())
    assert rejected[0].reason == found.split(":")[0]
    assert found in rejected[0].detail
    # the published rejection does not carry the secret itself
    if found.startswith("pii:"):
        assert f"[{found[4:].upper()}]" in rejected[0].record["answer"]
    flag = CurateConfig(pii="flag", boilerplate="flag")
    (kept,), _ = curate_pairs([qa(question, answer)], flag)
    assert kept.flags == [found] and kept.answer == answer
    off = CurateConfig(pii="off", boilerplate="off")
    assert curate_pairs([qa(question, answer)], off)[0] == [qa(question, answer)]


def test_a_timestamp_is_not_a_phone_number():
    footer = "Last updated 2024-05-31 00:35:55 UTC"
    assert pii.find_pii(footer) == [] and pii.find_pii("Call +44 20 7946 0958.") == ["phone"]
    assert pii.find_pii("Dated 31/05/2024 10:00.") == []
    # Still not a fact to train on: the footer is boilerplate.
    _, rejected = curate_pairs([qa("When was it updated?", footer + ".")], CurateConfig())
    assert [r.reason for r in rejected] == ["boilerplate"]


@pytest.mark.parametrize(
    "answer",
    [
        "Runs are keyed by FAQFORGE_TEACHER_API_KEY, never by the key itself.",  # a name only
        "Released on 2026-11-21 as version 1.24.3, with 20,000 documents.",  # dates, versions
        "The score was 0.952 on 12 345 pairs over 128 permutations.",  # numbers, not phones
        "Set `teacher.api_key_env` to the variable name.",
        "The threshold defaults to 0.7 and the seed to 1.",
    ],
)
def test_pii_negatives(answer):
    assert curate_pairs([qa("How are secrets handled?", answer)], CurateConfig())[1] == []


def test_task_fn_reports_coverage(tmp_path):
    ws = Workspace(tmp_path)
    chunk = [
        Chunk(chunk_id=c, doc_id=d, source=src, index=0, heading_path=h, text="t", n_tokens=1,
              text_hash=c)
        for c, d, src, h in [("c1", "d1", "guide.md", ["Guide", "Cache"]),
                             ("c2", "d1", "guide.md", ["Guide", "Retries"]),
                             ("c3", "d2", "notes.md", [])]
    ]  # fmt: skip
    pairs = [
        replace(qa("How are answers cached?", pid="a"), heading_path=["Guide", "Cache"]),
        replace(qa("Why are answers cached?", pid="b"), heading_path=["Guide", "Cache"]),
        # chunk c2's only pair is rejected; chunk c3 (document d2) got no pair at all
        replace(qa("What does the passage say?", pid="c"), chunk_id="c2",
                heading_path=["Guide", "Retries"]),
    ]  # fmt: skip
    upstream = save_output(ws, "generate", "k1", {"pairs": pairs}, StageCounts.of(3, 3, []))
    chunks = save_output(ws, "chunk", "k2", {"chunks": chunk}, StageCounts.of(2, 2, []))
    out = curate.fn(upstream, CurateConfig(), str(tmp_path), chunks)
    assert out.counts.as_dict() == {"in": 3, "out": 2, "rejected": {"passage_reference": 1}}
    assert out.stats["coverage"] == {
        "documents": 2,
        "documents_without_pairs": ["notes.md"],
        "chunks": 3,
        "chunks_without_pairs": 2,
        "headings": 3,
        "headings_without_pairs": 2,
        "headings_with_one_pair": 0,
        "pairs_per_heading_median": 0,
        "definition_entries": 0,
        "definition_entries_covered": 0,
        # pairs without a fact id are each their own fact, asked once
        "facts": 2,
        "phrasings_per_fact_median": 1,
        "facts_with_one_phrasing": 2,
    }
    uncovered = {r["chunk_id"]: r for r in iter_jsonl(out.path("uncovered"))}
    assert uncovered["c2"]["generated"] == 1
    assert uncovered["c2"]["rejected"] == {"passage_reference": 1}
    assert uncovered["c3"]["generated"] == 0 and uncovered["c3"]["heading"] == "(top)"
    headings = {r["heading"]: r["pairs"] for r in iter_jsonl(out.path("coverage"))}
    assert headings == {"Guide > Cache": 2, "Guide > Retries": 0, "(top)": 0}


SOURCE = (
    "Docs live at https://docs.faqforge.example/guide and questions go to "
    "help@faqforge.example. See [the runbook](https://docs.faqforge.example/runbook)."
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("See https://x.org/a. Then stop.", ["https://x.org/a"]),  # sentence dot stripped
        ("Mail a.b+c@mail.example.io, or mailto:ops@x.io!", ["a.b+c@mail.example.io", "ops@x.io"]),
        ("[docs](https://x.org/docs) and <http://y.org>", ["https://x.org/docs", "http://y.org"]),
        ("Visit www.evil.example/path?q=1 now", ["www.evil.example/path?q=1"]),
        ("Edit configs/default.yaml or tasks/curate.py", []),  # file names are not links
        ("ftp://files.example/x.tar.gz", ["ftp://files.example/x.tar.gz"]),
    ],
)
def test_find_links(text, expected):
    from tasks.links import find_links

    assert find_links(text) == expected


@pytest.mark.parametrize(
    ("answer", "unsourced"),
    [
        ("Read https://docs.faqforge.example/guide.", []),  # sourced, trailing dot
        ("Read HTTPS://Docs.FAQforge.example/guide/", []),  # case and trailing slash
        ("Ask help@faqforge.example.", []),
        ("The runbook is https://docs.faqforge.example/runbook", []),  # from a Markdown link
        ("Go to http://evil.example instead.", ["http://evil.example"]),
        ("Mail root@evil.example", ["root@evil.example"]),
        # a sourced host with another path is another link
        ("See https://docs.faqforge.example/admin", ["https://docs.faqforge.example/admin"]),
        ("Use https://docs.faqforge.example.evil.io/x", ["https://docs.faqforge.example.evil.io/x"]),
    ],
)  # fmt: skip
def test_unsourced_links(answer, unsourced):
    from tasks.links import unsourced_links

    assert unsourced_links(answer, SOURCE) == unsourced


def test_unsourced_link_is_rejected_first_naming_the_link():
    sources = {"c1": SOURCE}
    planted = qa("Where do the docs live?", "They moved to http://evil.example, see above.")
    sourced = qa("Where do the docs live?", "They live at https://docs.faqforge.example/guide.",
                 pid="p2")  # fmt: skip
    # also fails passage_reference; the link, checked first, names the reason
    both = qa("What does the passage say?", "Mail root@evil.example.", pid="p3")
    kept, rejected = curate_pairs([planted, sourced, both], CurateConfig(pii="off"), sources)
    assert kept == [sourced]
    assert [(r.record_id, r.reason, r.detail) for r in rejected] == [
        ("p1", "unsourced_link", "not in source chunk c1: http://evil.example"),
        ("p3", "unsourced_link", "not in source chunk c1: root@evil.example"),
    ]
    # without chunk texts (a bare JSONL file) no link check is possible
    assert curate_pairs([planted], CurateConfig())[0] == [planted]


def test_coverage_counts_definition_entries_named_by_a_kept_question():
    from tasks.coverage import document_rows

    text = (
        "--onto <newbase>\n: Starting point.\n\n-i, --interactive\n: Edit the list.\n\n"
        "<upstream>\n: Upstream branch."
    )
    chunk = Chunk("c1", "d1", "git-rebase.html", 0, ["git-rebase(1) Manual Page", "OPTIONS"],
                  text, 30, "h")  # fmt: skip
    here = {"source": "git-rebase.html", "heading_path": chunk.heading_path}
    kept = [
        replace(qa("What does the `--onto <newbase>` option of `git-rebase` do?"), **here),
        replace(qa("When would I use --interactive?"), **here),  # one alias is enough
        replace(qa("What is the upstream of git-rebase?"), source="other.html"),  # elsewhere
    ]
    (row,) = document_rows([chunk], kept)
    assert (row["entries"], row["entries_covered"]) == (3, 2)
    assert row["entries_uncovered"] == ["<upstream>"]
    assert (row["headings"], row["headings_covered"]) == (1, 1)


def test_answers_and_questions_are_bounded_in_characters_too():
    """A 1 MB answer is one "word": the word count alone published it."""
    huge = "A" + "x" * 1_000_000 + "."
    kept, rejected = curate_pairs([qa("How are answers cached?", huge)], CurateConfig())
    assert kept == [] and rejected[0].reason == "answer_too_long"
    assert len(rejected[0].record["answer"]) < 2100  # recorded cut: rejections are published
    assert rejected[0].record["answer"].endswith("more characters]")
    question = "Why is " + "x" * 400 + " cached?"
    assert curate_pairs([qa(question)], CurateConfig())[1][0].reason == "question_too_long"
    cfg = CurateConfig(max_answer_chars=20)
    assert curate_pairs([qa("How are answers cached?", ANSWER)], cfg)[1][0].reason == (
        "answer_too_long"
    )
