"""Reference metrics on commented cases, ROUGE-L against rouge-score itself, and the embedding
cosine on the bundled all-MiniLM-L6-v2."""

from __future__ import annotations

import pytest

import tasks.evaluate.metrics as em


@pytest.mark.parametrize(
    ("pred", "ref", "expected"),
    [
        ("Paris", "paris", 1.0),  # case
        ("The Eiffel Tower.", "eiffel tower", 1.0),  # article and punctuation
        ("  an   apple ", "apple", 1.0),  # whitespace and article
        ("Paris, France", "Paris France", 1.0),  # punctuation inside
        ("Paris", "Lyon", 0.0),  # different answer
        ("theatre", "atre", 0.0),  # "the" only as a whole word
        ("", "", 1.0),  # both empty
        ("Paris is nice", "Paris", 0.0),  # extra words are not a match
    ],
)
def test_exact_match(pred, ref, expected):
    assert em.exact_match(pred, ref) == expected


@pytest.mark.parametrize(
    ("pred", "ref", "expected"),
    [
        ("the red kettle", "the red kettle", 1.0),  # identical
        ("red kettle", "the kettle", 2 / 3),  # article dropped: 1 common, P = 1/2, R = 1/1
        # 2 common words, P = 2/4, R = 2/2 → F = 2·0.5·1/1.5
        ("kettle is very red", "red kettle", 2 / 3),
        ("red red red", "red", 0.5),  # counts are clipped: 1 common, P = 1/3, R = 1 → 0.5
        ("blue", "red", 0.0),  # nothing shared
        ("", "red", 0.0),  # empty prediction
        ("", "", 1.0),  # both empty
        ("The.", "a", 1.0),  # both normalise to nothing
        ("Red, KETTLE!", "kettle red", 1.0),  # order does not matter, case and punctuation
    ],
)
def test_token_f1(pred, ref, expected):
    assert em.token_f1(pred, ref) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("pred", "ref", "expected"),
    [
        ("the cat sat on the mat", "the cat sat on the mat", 1.0),  # identical
        ("", "the cat sat", 0.0),  # nothing predicted
        ("dog", "the cat sat", 0.0),  # no overlap
        # LCS "the cat" = 2 words: P = 2/2, R = 2/3, F = 0.8
        ("the cat", "the cat sat", 0.8),
        # LCS "cat sat" in order despite the inserted word: P = 2/3, R = 2/2, F = 0.8
        ("cat quietly sat", "cat sat", 0.8),
        ("Cats sitting", "cat sits", 1.0),  # Porter stemming: cats→cat, sitting/sits→sit
        # LCS "refund are paid day" = 4 of 6 words each side ("within" ≠ "in", "30" ≠ "thirty")
        ("Refunds are paid within 30 days.", "Refunds are paid in thirty days.", 2 / 3),
        # LCS "the vpn client" = 3: P = 3/4, R = 3/9, F = 2PR/(P+R) = 6/13
        ("Use the VPN client", "Connect with the corporate VPN client before logging in.", 6 / 13),
        # Words outside a-z0-9 split where rouge-score's tokenizer drops the letters, so
        # "ünïcode" ("n", "code") never meets "unicode": ROUGE-L sees no overlap.
        ("ünïcode wörds", "unicode words", 0.0),
    ],
)
def test_rouge_l(pred, ref, expected):
    assert em.rouge_l(pred, ref) == pytest.approx(expected)


def test_embedding_cosine_orders_meaning():
    ref = "Refunds are paid within thirty days of the request."
    preds = [
        ref,  # identical → 1
        "You get your money back within 30 days after asking.",  # paraphrase
        "The office cafeteria opens at eight in the morning.",  # unrelated
        "",  # empty: no evidence of an answer
    ]
    same, para, other, empty = em.embedding_cosines(preds, [ref] * 4)
    assert same == pytest.approx(1.0, abs=1e-5)
    assert para > 0.5 > other  # meaning, not words: the paraphrase shares almost none
    assert empty == 0.0
    assert em.embedding_cosines([], []) == []


def test_item_scores_and_means():
    questions = ["What is the capital of France?", "Who sat?"]
    items = em.item_scores(["Paris", "the cat"], ["paris", "the cat sat"], questions)
    assert [it["exact_match"] for it in items] == [1.0, 0.0]
    assert [it["key_term_recall"] for it in items] == [1.0, 1.0]  # "sat" is in the question
    assert items[1]["rouge_l"] == pytest.approx(0.8)
    assert set(items[0]) == set(em.REFERENCE_METRICS)
    means = em.mean_scores(
        [{"a": 1.0, "b": None}, {"a": 0.0, "b": None}], ("a", "b")
    )  # b never measured → None, not 0
    assert means == {"a": 0.5, "b": None}
    with pytest.raises(ValueError, match="2 predictions for 1"):
        em.item_scores(["a", "b"], ["a"], ["q"])
