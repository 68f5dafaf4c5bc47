"""The analysis chain's caches give what the chain gives without them."""

from __future__ import annotations

import random
import unicodedata

from catalogue.search import analysis
from catalogue.search.analysis import analyse, analyse_both, fold_terms, fold, stem, words, STOP_WORDS


def uncached(text: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    folded = [fold(w) for w in words(text)]
    kept = [f for f in folded if f not in STOP_WORDS and len(f) >= 2]
    stems = [s for s in map(stem, kept) if len(s) >= 2]
    return tuple(kept), tuple(stems)


def test_short_and_long_texts_cached_and_forgotten(monkeypatch):
    rng = random.Random(3)
    vocabulary = ["Électricité", "cuisine", "l'eau", "PÂTISSERIE", "ﬁn", "2024", "Ζήτα", "de", "a", "œuvre", "x_y"]
    texts = [" ".join(rng.choice(vocabulary) for _ in range(rng.randint(0, 80))) for _ in range(60)]
    assert any(len(t) > analysis._SHORT_TEXT for t in texts) and any(len(t) <= analysis._SHORT_TEXT for t in texts)
    monkeypatch.setattr(analysis, "_SHORT_LIMIT", 5)
    monkeypatch.setattr(analysis, "_PIECE_LIMIT", 7)
    monkeypatch.setattr(analysis, "_piece_folded", {})
    monkeypatch.setattr(analysis, "_piece_stems", {})
    monkeypatch.setattr(analysis, "_short", {})
    monkeypatch.setattr(analysis, "_recent", {})
    for _ in range(3):  # learnt, then answered from the caches (emptied as they fill)
        for text in texts:
            expected = uncached(text)
            assert analyse_both(text) == expected
            assert (tuple(fold_terms(text)), tuple(analyse(text))) == expected
    assert 0 < len(analysis._short) <= 5
    assert 0 < len(analysis._piece_stems) == len(analysis._piece_folded)
    assert len(analysis._recent) <= analysis._RECENT_LIMIT
    assert analyse_both("") == ((), ()) and analyse(None) == []


def test_analyse_stems_is_analyse(monkeypatch):
    rng = random.Random(5)
    vocabulary = ["Électricité", "cuisine", "l'eau", "PÂTISSERIE", "ﬁn", "2024", "Ζήτα", "de", "a", "œuvre", "gérées"]
    texts = [" ".join(rng.choice(vocabulary) for _ in range(rng.randint(0, 120))) for _ in range(40)]
    monkeypatch.setattr(analysis, "_recent", {})
    for text in texts + texts[::-1]:
        assert analysis.analyse_stems(text) == uncached(text)[1]
        assert analysis.analyse_stems(text) == tuple(analyse(text))
    monkeypatch.setattr(analysis, "_folded_of", {})  # words not met yet: learnt
    monkeypatch.setattr(analysis, "_stem_of", {})
    monkeypatch.setattr(analysis, "_recent", {})
    assert analysis.analyse_stems(texts[-1] + " " * 300) == uncached(texts[-1])[1]
    assert analysis.analyse_stems(None) == () and analysis.analyse_stems("") == ()


def test_long_texts_are_the_words_of_their_pieces():
    """What analysing a long text piece by piece (split on blanks) rests on: a blank composes with
    nothing, NFKC and lowercasing carry nothing across it, and it is no word character."""
    blanks = [chr(c) for c in range(0x110000) if chr(c).isspace()]
    for c in range(0x110000):
        decomposition = unicodedata.decomposition(chr(c))
        if decomposition and not decomposition.startswith("<") and len(decomposition.split()) > 1:
            assert not any(chr(int(h, 16)).isspace() for h in decomposition.split()), hex(c)
    for blank in blanks:
        assert unicodedata.combining(blank) == 0
        assert all(ch.isspace() for ch in unicodedata.normalize("NFKC", blank).lower())
        for before in ["ΑΣ", "Σ", "ΑΣ\u0301"]:
            for after in ["Β", "\u0301Β", ""]:
                assert (before + blank + after).lower() == before.lower() + blank.lower() + after.lower()
    points = [chr(c) for c in range(0, 0x110000, 31) if not 0xD800 <= c <= 0xDFFF]
    points += list("ÉéœŒßİıΣς\u0301\u00a8\u2474ﬁ_'’-")
    for blank in blanks:
        for i, c in enumerate(points[:: 1 if blank in " \n" else 211]):
            for text in (c + blank + c, "e" + c + blank + "\u0301" + c, c + "\u0301" + blank + c + "Σ"):
                assert words(text) == [w for piece in text.split() for w in words(piece)], (hex(ord(blank)), hex(ord(c)))
                if i % 97 == 0:
                    long = (text + " ") * 40
                    assert analyse_both(long) == uncached(long)
