"""The index sink's shortcuts give what the plain chain gives."""

import pytest

from catalogue.search import index
from catalogue.search.analysis import normalise_number


@pytest.mark.parametrize(
    "number",
    ["15_AF_0000910001", "15_af_0000910001", "ref : 15_AF_1", "RÉF:15_AF_1", "Référence: 12", "RNCP 1234", "A\nB",
     "a|b|c", "12 345 678 00012", "ÉTÉ-1", "X\u00a0Y", "AB/CD.12-3", "ß1", "ﬁ1"],
)
def test_normal_number_shortcut(number):
    # What the shortcut takes as already normal must be what normalise_number() leaves unchanged.
    if index._NORMAL_NUMBER.fullmatch(number):
        assert normalise_number(number) == number


def test_vocabulary_of_matches_the_rule():
    words = {"abc", "abcd", "électricité", "ab12", "1234", "rouge", "vert", "ca", "électricien"}
    expected = {w for w in words if len(w) >= index.VOCABULARY_MIN_LENGTH and w.isalpha()}
    assert index.vocabulary_of(set(words)) == expected
    # Judged once: asked again (and with the limit reached), the same answer.
    assert index.vocabulary_of(set(words)) == expected
    saved = index._JUDGED_LIMIT
    index._JUDGED_LIMIT = 1
    try:
        assert index.vocabulary_of({"rouge", "bleu", "zz"}) == {"rouge", "bleu"}
        assert index.vocabulary_of(set(words)) == expected
    finally:
        index._JUDGED_LIMIT = saved


def test_length_bytes_table():
    from whoosh.util.numeric import length_to_byte

    assert index._LENGTH_BYTES == [length_to_byte(n) for n in range(len(index._LENGTH_BYTES))]
