"""Write ``faqforge/sample_corpus/evaluation.pdf``, the sample corpus's one PDF document.

    .venv/bin/python scripts/make_sample_pdf.py

The PDF objects are written by hand (no PDF library can draw text here: pypdf only reads and
edits), using the standard Helvetica fonts so nothing is embedded. The output has no dates or
ids, so running the script again gives the same bytes. pypdf must extract its text: the
ingest tests read this file.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "faqforge" / "sample_corpus" / "evaluation.pdf"

# (kind, text): "title" and "heading" lines are set in bold, "para" text is wrapped.
CONTENT = [
    ("title", "Evaluation of the FAQ model"),
    ("para", "The evaluate stage measures whether fine-tuning made the student better at "
     "answering questions about the documents. The evaluate stage compares the base model with "
     "the tuned model, which is the base model with the LoRA adapter loaded, on the eval split "
     "of the dataset version the adapter was trained on."),
    ("heading", "Base versus tuned"),
    ("para", "A base versus tuned comparison is the core of every faqforge evaluation. Both "
     "models receive the same prompt for each eval question: the system prompt from the "
     "finetune configuration and the question as the user turn. Both models answer with greedy "
     "decoding, so a repeated evaluation gives the same answers. Because the two models differ "
     "only by the adapter, their difference in scores is what the adapter added."),
    ("para", "The eval split holds two probes. The knowledge probe asks held-out phrasings of "
     "facts the student was trained on: the teacher writes two or three questions per fact, "
     "one of them is kept out of training, and the other phrasings teach the fact. The "
     "unseen-documents probe asks about documents that never appeared in training, which a "
     "closed-book model cannot know, so its gain is what answer style alone buys."),
    ("heading", "Knowledge lift"),
    ("para", "The knowledge lift is the headline of every evaluation: the tuned model's gain "
     "over its base on the knowledge probe, minus its gain on the unseen-documents probe. "
     "Subtracting the unseen-documents gain removes what the answer style explains. The lift "
     "is reported with a 95% bootstrap interval, and the promotion gate needs the lower end of "
     "that interval above zero."),
    ("heading", "Exact match"),
    ("para", "Exact match is the share of answers that equal the reference answer after "
     "normalisation. Normalisation lowercases the text and removes punctuation, articles and "
     "extra spaces, in the style of the SQuAD benchmark. Exact match is strict: an answer that "
     "is correct but worded differently scores zero, so exact match is most useful for short "
     "factual answers such as a default value or the name of a stage."),
    ("heading", "ROUGE-L"),
    ("para", "ROUGE-L is a score based on the longest common subsequence of words between a "
     "generated answer and the reference answer. faqforge reports the ROUGE-L F1 score, "
     "computed with the rouge-score library, which balances how much of the reference the "
     "answer covers against how much of the answer is in the reference. ROUGE-L gives partial "
     "credit to an answer that says most of the right things in the right order, which makes "
     "ROUGE-L a smoother signal than exact match for answers of a sentence or two."),
    ("heading", "The evaluation report"),
    ("para", "The evaluation report is written to the eval folder of the fine-tuning run, under "
     "runs/<run-id>/eval/ in the workspace. The eval folder holds report.md, a readable summary "
     "of the scores; metrics.json, the averaged scores of the base model and the tuned model; "
     "predictions.jsonl, every question with the reference answer and both models' answers "
     "and scores; and manifest.json, which names the adapter, the base model and the dataset "
     "version. Each score is reported per item and averaged over the eval split."),
    ("heading", "Running an evaluation"),
    ("para", "The command faqforge run evaluate --config configs/default.yaml evaluates the "
     "latest fine-tuning run, and the --run option picks another run. The evaluate.max_new_tokens "
     "field limits the length of each generated answer, 64 tokens by default, and "
     "evaluate.batch_size sets how many questions are answered at once. The evaluate.max_items "
     "field caps the number of eval questions, which is useful for a quick check on a large "
     "dataset. In the embedded default, answers are generated with transformers on the CPU."),
    ("heading", "Reading the scores"),
    ("para", "A knowledge lift above zero means the tuned model learned the documents' facts, "
     "not only the expected answer style. A gain on ROUGE-L without a gain on exact match "
     "usually means answers in the right direction with different wording. Answers that are "
     "empty, mostly repeated or far shorter than the references are named as degenerate output "
     "in the first line of the report, and such a model is never promoted. "
     "Lower scores for the tuned model than for its base point to a problem in the dataset or "
     "the training settings; the predictions file shows which questions got worse. "
     "Because every pair carries its document and chunk ids, a wrong answer can be traced back "
     "to the source text it was trained or tested on."),
]  # fmt: skip

PAGE_W, PAGE_H, MARGIN = 595, 842, 56
FONT_SIZE, LEADING, WRAP = 10, 13, 92
FONTS = {"title": ("F2", 16), "heading": ("F2", 12), "para": ("F1", FONT_SIZE)}


def escape(text: str) -> str:
    """A PDF literal string body: backslash and parentheses escaped."""
    if not text.isascii():
        raise ValueError(f"non-ASCII text needs a font encoding: {text!r}")
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def layout(content: list[tuple[str, str]]) -> list[list[tuple[str, str]]]:
    """``(kind, line)`` lines split into pages; an empty line separates blocks."""
    lines: list[tuple[str, str]] = []
    for kind, text in content:
        wrapped = textwrap.wrap(text, WRAP) if kind == "para" else [text]
        lines += [(kind, line) for line in wrapped] + [("para", "")]
    per_page = (PAGE_H - 2 * MARGIN) // LEADING
    return [lines[i : i + per_page] for i in range(0, len(lines), per_page)]


def page_stream(lines: list[tuple[str, str]]) -> bytes:
    ops = ["BT", f"{LEADING} TL", f"{MARGIN} {PAGE_H - MARGIN} Td"]
    for kind, line in lines:
        font, size = FONTS[kind]
        # A blank line is drawn as one space: an empty string leaves no line break in pypdf's
        # extracted text, and the chunker needs blank lines between paragraphs.
        ops += [f"/{font} {size} Tf", f"({escape(line or ' ')}) Tj", "T*"]
    ops.append("ET")
    return "\n".join(ops).encode("ascii")


def build_pdf(pages: list[list[tuple[str, str]]]) -> bytes:
    """A minimal PDF 1.4 file: catalog, page tree, two base fonts, one content stream a page."""
    n_pages = len(pages)
    page_ids = [5 + 2 * i for i in range(n_pages)]
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        f"<< /Type /Pages /Kids [{' '.join(f'{p} 0 R' for p in page_ids)}] "
        f"/Count {n_pages} >>".encode(),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica-Bold /Encoding /WinAnsiEncoding >>",
    ]
    for page_id, lines in zip(page_ids, pages, strict=True):
        resources = "/Resources << /Font << /F1 3 0 R /F2 4 0 R >> >>"
        box = f"/MediaBox [0 0 {PAGE_W} {PAGE_H}]"
        page = f"<< /Type /Page /Parent 2 0 R {box} {resources} /Contents {page_id + 1} 0 R >>"
        objects.append(page.encode())
        stream = page_stream(lines)
        objects.append(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream))
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


def main() -> int:
    OUT.write_bytes(build_pdf(layout(CONTENT)))
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
