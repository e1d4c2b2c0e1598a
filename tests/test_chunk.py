"""Chunk: token-bounded chunks with overlap and heading paths, stable ids, content-keyed task."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from faqforge.config import ChunkConfig, IngestConfig
from faqforge.records import Chunk, Document, Rejection
from faqforge.stage import StageCounts, save_output
from faqforge.storage import Workspace
from tasks.chunk import (
    chunk,
    chunk_document,
    chunk_documents,
    count_tokens,
    load_tokenizer,
    split_sections,
    tail,
)
from tasks.ingest import doc_id_for, ingest_corpus

SAMPLE_CORPUS = Path(__file__).resolve().parent.parent / "faqforge" / "sample_corpus"
CFG = ChunkConfig(max_tokens=48, overlap_tokens=12)
TRAINING_TEXT = """
The pipeline reads documents, cuts them into chunks and asks a teacher for questions.
Each chunk is counted in tokens of the student's tokenizer, so sizes match what it sees.
Overlap between chunks keeps a sentence near a boundary answerable from one chunk.
Headings are kept as a path, and the chunk text does not repeat them.
"""


def train_tokenizer(vocab_size: int) -> Tokenizer:
    """A byte-level BPE like the student's: every string encodes, nothing is unknown."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator([TRAINING_TEXT] * 20, trainer)
    return tokenizer


@pytest.fixture(scope="module")
def tokenizer() -> Tokenizer:
    return train_tokenizer(400)


def doc(text: str, source: str = "guide.md") -> Document:
    return Document(doc_id_for(source), source, "md", "t", text, "h")


def long_section(n_sentences: int = 40) -> str:
    """Distinct numbered sentences, so any shared text between chunks is overlap."""
    return " ".join(
        f"Sentence {i} says the stage number {i} keeps its records." for i in range(n_sentences)
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # nested headings build a path; a sibling replaces the deeper level
        (
            "# A\na\n## B\nb\n### C\nc\n## D\nd",
            [(["A"], "a"), (["A", "B"], "b"), (["A", "B", "C"], "c"), (["A", "D"], "d")],
        ),
        # text before the first heading has an empty path
        ("intro\n# A\na", [([], "intro"), (["A"], "a")]),
        # a heading with no body yields no section; closing #s are dropped
        ("# A\n## B ##\nb", [(["A", "B"], "b")]),
        # '#' lines inside a fenced code block are code, not headings
        ("# A\n```\n# not a heading\n```", [(["A"], "```\n# not a heading\n```")]),
        # '#tag' without a space is not a heading
        ("# A\n#tag text", [(["A"], "#tag text")]),
    ],
)
def test_split_sections(text: str, expected: list[tuple[list[str], str]]) -> None:
    assert split_sections(text) == expected


def test_chunks_fit_max_tokens(tokenizer: Tokenizer) -> None:
    chunks = chunk_document(doc("# Long\n\n" + long_section()), tokenizer, CFG)
    assert len(chunks) > 3
    for c in chunks:
        assert c.n_tokens == count_tokens(tokenizer, c.text) <= CFG.max_tokens
    assert [c.index for c in chunks] == list(range(len(chunks)))


def test_consecutive_chunks_of_a_section_overlap(tokenizer: Tokenizer) -> None:
    chunks = chunk_document(doc("# Long\n\n" + long_section()), tokenizer, CFG)
    for prev, nxt in itertools.pairwise(chunks):
        # the next chunk opens with a tail of the previous one (at least a few words)
        shared = max(
            n for n in range(len(nxt.text) + 1) if prev.text.endswith(nxt.text[:n].rstrip())
        )
        overlap = nxt.text[:shared].strip()
        assert len(overlap.split()) >= 3, (prev.text, nxt.text)
        # "about" the budget: a nearby sentence start may stretch it up to twice
        assert count_tokens(tokenizer, overlap) <= 2 * CFG.overlap_tokens


def test_overlap_starts_at_a_sentence_when_one_is_near(tokenizer: Tokenizer) -> None:
    text = " ".join(f"Stage {i} is short." for i in range(30))  # sentences well under budget
    chunks = chunk_document(doc(text), tokenizer, CFG)
    assert len(chunks) > 2
    assert all(c.text.startswith("Stage ") for c in chunks)  # never a sentence fragment
    assert all(c.text.endswith(".") for c in chunks)


def test_tail_never_starts_mid_word(tokenizer: Tokenizer) -> None:
    text = " ".join(f"unpunctuated{i}" for i in range(30))  # no sentence start to snap to
    overlap = tail(text, tokenizer, 12)
    assert overlap and text.endswith(overlap)
    assert overlap.split()[0] in text.split()
    assert tail("too short", tokenizer, 12) == ""  # the whole text is never a tail


def test_no_overlap_across_sections(tokenizer: Tokenizer) -> None:
    text = "# A\n\nAlpha alone here.\n\n# B\n\nBeta alone here."
    chunks = chunk_document(doc(text), tokenizer, CFG)
    assert [(c.heading_path, c.text) for c in chunks] == [
        (["A"], "Alpha alone here."),
        (["B"], "Beta alone here."),
    ]


def test_heading_path_kept_and_not_repeated_in_text(tokenizer: Tokenizer) -> None:
    text = "# Guide\n\n## Install\n\nRun the installer.\n\n## Use\n\nStart the flow."
    chunks = chunk_document(doc(text), tokenizer, CFG)
    assert [c.heading_path for c in chunks] == [["Guide", "Install"], ["Guide", "Use"]]
    assert all("#" not in c.text and "Install" not in c.text for c in chunks)


def test_long_sentence_is_cut_between_words(tokenizer: Tokenizer) -> None:
    words = [f"word{i}" for i in range(150)]  # one sentence, no punctuation, far over the limit
    chunks = chunk_document(doc(" ".join(words)), tokenizer, CFG)
    assert len(chunks) > 2
    assert all(c.n_tokens <= CFG.max_tokens for c in chunks)
    assert {w for c in chunks for w in c.text.split()} == set(words)  # no word cut in two


def test_paragraphs_are_kept_whole_when_they_fit(tokenizer: Tokenizer) -> None:
    text = "First paragraph is short.\n\nSecond paragraph too."
    [only] = chunk_document(doc(text), tokenizer, CFG)
    assert only.text == text  # the paragraph break survives packing


def fences_balanced(text: str) -> bool:
    return sum(line.startswith("```") for line in text.split("\n")) % 2 == 0


def test_a_code_block_with_blank_lines_stays_whole(tokenizer: Tokenizer) -> None:
    code = "```\n# a comment\n\nrun = 1\n\nstop = 2\n```"  # fits one chunk
    text = f"# Guide\n\n{long_section(3)}\n\n{code}\n\n{long_section(3)}"
    chunks = chunk_document(doc(text), tokenizer, CFG)
    assert len(chunks) > 1  # the section needs several chunks: a boundary could fall inside
    assert any(code in c.text for c in chunks)  # not cut at its blank lines
    assert all(fences_balanced(c.text) for c in chunks)
    assert [c.heading_path for c in chunks] == [["Guide"]] * len(chunks)  # no "a comment" heading


def test_over_long_blocks_are_cut_along_their_own_seams(tokenizer: Tokenizer) -> None:
    code = "```\n" + "\n".join(f"step_{i} = run({i})" for i in range(40)) + "\n```"
    entry = "--all\n" + "\n".join(
        f": Sentence {i} says the stage keeps records." for i in range(12)
    )
    chunks = chunk_document(doc(f"{code}\n\n{entry}"), tokenizer, CFG)
    assert all(c.n_tokens <= CFG.max_tokens for c in chunks)
    code_parts = [c.text for c in chunks if c.text.startswith("```")]
    assert len(code_parts) > 1 and all(fences_balanced(t) and t.endswith("```") for t in code_parts)
    lines = [line for t in code_parts for line in t.split("\n") if line.startswith("step_")]
    assert lines == [f"step_{i} = run({i})" for i in range(40)]  # every line once, in order
    entry_parts = [c.text for c in chunks if "Sentence" in c.text]
    assert len(entry_parts) > 1 and entry_parts[0].startswith("--all\n: ")
    # The later parts say they continue the entry: a teacher asks about the term once.
    assert all(t.startswith("--all (continued)\n: ") for t in entry_parts[1:])


def test_a_block_lends_no_overlap(tokenizer: Tokenizer) -> None:
    entries = "\n\n".join(f"--opt{i}\n: Option {i} sets the stage {i} records." for i in range(12))
    chunks = chunk_document(doc(entries), tokenizer, CFG)
    assert len(chunks) > 1
    for c in chunks:  # every chunk opens with a whole entry, never the tail of one
        assert c.text.startswith("--opt") and all(
            p.startswith("--opt") for p in c.text.split("\n\n")
        )


def test_only_a_sections_first_chunk_starts_it(tokenizer: Tokenizer) -> None:
    text = f"# A\n\n{long_section()}\n\n# B\n\nShort."
    chunks = chunk_document(doc(text), tokenizer, CFG)
    starts = [(c.heading_path[0], c.section_start) for c in chunks]
    assert starts[0] == ("A", True) and starts[-1] == ("B", True)
    assert all(not start for head, start in starts[1:-1])


def test_chunk_ids_stable_for_unchanged_text(tokenizer: Tokenizer) -> None:
    before = chunk_document(doc("# A\n\nStays the same.\n\n# B\n\nOld words."), tokenizer, CFG)
    after = chunk_document(doc("# A\n\nStays the same.\n\n# B\n\nNew words."), tokenizer, CFG)
    assert before[0].chunk_id == after[0].chunk_id
    assert before[0].text_hash == after[0].text_hash
    assert before[1].chunk_id != after[1].chunk_id
    assert re.fullmatch(r"chunk-[0-9a-f]{16}", before[0].chunk_id)
    # the same text in another document is another chunk
    other = chunk_document(doc("# A\n\nStays the same.", "other.md"), tokenizer, CFG)
    assert other[0].chunk_id != before[0].chunk_id


def test_heading_only_document_is_rejected_as_no_text(tokenizer: Tokenizer) -> None:
    empty = doc("# Title\n\n## Nothing below", "headings.md")
    chunks, [rejection] = chunk_documents([empty, doc("# T\n\nbody")], tokenizer, CFG)
    assert len(chunks) == 1
    assert (rejection.record_id, rejection.stage, rejection.reason) == (
        empty.doc_id,
        "chunk",
        "no_text",
    )
    assert rejection.detail.startswith("headings.md: ")


def test_sample_corpus_every_document_chunks(tokenizer: Tokenizer) -> None:
    docs, ingest_rejections = ingest_corpus(SAMPLE_CORPUS, IngestConfig())
    assert ingest_rejections == []
    cfg = ChunkConfig()  # the default sizes, as the embedded run uses them
    chunks, rejections = chunk_documents(docs, tokenizer, cfg)
    assert rejections == []
    assert {c.doc_id for c in chunks} == {d.doc_id for d in docs}
    assert all(c.n_tokens <= cfg.max_tokens for c in chunks)
    assert len({c.chunk_id for c in chunks}) == len(chunks)


def test_load_tokenizer_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"missing\.json"):
        load_tokenizer(str(tmp_path / "missing.json"))
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ValueError, match=r"bad\.json"):
        load_tokenizer(str(tmp_path / "bad.json"))


def test_task_reuses_output_and_keys_on_tokenizer_content(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    docs = [doc("# A\n\n" + long_section(10)), doc("# Only a heading", "empty.md")]
    documents = save_output(
        Workspace(ws), "ingest", "k1", {"documents": docs}, StageCounts.of(2, 2, [])
    )
    tok_file = tmp_path / "tokenizer.json"
    train_tokenizer(400).save(str(tok_file))
    params = {
        "documents": documents,
        "cfg": CFG,
        "tokenizer_file": str(tok_file),
        "workspace": str(ws),
    }
    prefect_key = chunk.cache_key_fn(None, params)  # the key Prefect caches under

    out = chunk.fn(documents, CFG, str(tok_file), str(ws))  # outside a Prefect run
    assert out.counts.as_dict() == {
        "in": 2,
        "out": 1,
        "rejected": {"no_text": 1},
        "produced": len(out.read("chunks", Chunk)),
    }
    assert [r.reason for r in out.read("rejections", Rejection)] == ["no_text"]
    assert out.key == prefect_key  # Prefect's cache key is the stage folder's key

    marker = Path(out.dir) / "_SUCCESS"
    written = marker.stat().st_mtime_ns
    assert chunk.fn(documents, CFG, str(tok_file), str(ws)) == out
    assert marker.stat().st_mtime_ns == written  # not recomputed

    train_tokenizer(300).save(str(tok_file))  # retrained in place: same path, new content
    retrained_key = chunk.cache_key_fn(None, params)
    assert retrained_key != out.key
    assert chunk.fn(documents, CFG, str(tok_file), str(ws)).key == retrained_key
