"""Dataset diff: pairs matched by id, then by (document, normalised question); retention."""

from __future__ import annotations

from dataclasses import replace

from faqforge.records import QAPair
from tasks.diff import dataset_diff, diff_markdown, retention, rows_of


def qa(pid: str, question: str, answer: str = "An answer.", doc_id: str = "d1") -> QAPair:
    return QAPair(
        id=pid, question=question, answer=answer, doc_id=doc_id, chunk_id="c", source="s.md",
        prompt_version="v1", teacher="t",
    )  # fmt: skip


OLD = [
    qa("a", "What is a chunk?"),
    qa("b", "How are retries spaced?"),
    qa("c", "Where do rejections go?"),
    qa("d", "Who runs the nightly flow?"),
]


def test_added_removed_changed_unchanged():
    new = [
        OLD[0],  # unchanged: same id
        # changed: same document and question (modulo case/punctuation), new answer → new id
        replace(OLD[1], id="b2", question="how are retries spaced", answer="Exponentially."),
        # "removed" + "added": the same question in another document is another pair
        replace(OLD[2], id="c2", doc_id="d2"),
        qa("e", "What is new?"),  # added
    ]  # OLD[3] removed
    diff = dataset_diff(rows_of(OLD, []), rows_of(new[:3], new[3:]))
    assert [r["id"] for r in diff["added"]] == ["c2", "e"]
    assert [r["split"] for r in diff["added"]] == ["train", "eval"]
    assert [r["id"] for r in diff["removed"]] == ["c", "d"]
    assert diff["changed"] == [{"id": "b2", "previous_id": "b", "split": "train",
                                "fields": ["answer"]}]  # fmt: skip
    assert diff["unchanged"] == 1
    assert (diff["added_share"], diff["removed_share"]) == (0.5, 0.5)  # 2 of 4 each


def test_first_version_has_no_shares():
    diff = dataset_diff({}, rows_of(OLD, []))
    assert len(diff["added"]) == 4 and diff["added_share"] is None


def test_retention_by_stage_against_previous():
    now = {"curate": {"in": 10, "out": 5}, "dedup": {"in": 5, "out": 5}}
    before = {"curate": {"in": 10, "out": 9}}
    rows = retention(now, before)
    assert rows == [
        {"stage": "curate", "in": 10, "out": 5, "retention": 0.5, "previous_retention": 0.9},
        {"stage": "dedup", "in": 5, "out": 5, "retention": 1.0, "previous_retention": None},
    ]
    text = diff_markdown("ds-2", "ds-1", dataset_diff(rows_of(OLD, []), rows_of(OLD[:1], [])),
                         rows)  # fmt: skip
    assert "3 removed" in text and "| curate | 10 | 5 | 0.5 | 0.9 |" in text
