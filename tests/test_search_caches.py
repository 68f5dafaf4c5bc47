"""The analysis chain's caches give what the chain gives without them."""

from __future__ import annotations

import random

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
    monkeypatch.setattr(analysis, "_short", {})
    monkeypatch.setattr(analysis, "_recent", {})
    for _ in range(3):  # learnt, then answered from the caches (emptied as they fill)
        for text in texts:
            expected = uncached(text)
            assert analyse_both(text) == expected
            assert (tuple(fold_terms(text)), tuple(analyse(text))) == expected
    assert 0 < len(analysis._short) <= 5
    assert len(analysis._recent) <= analysis._RECENT_LIMIT
    assert analyse_both("") == ((), ()) and analyse(None) == []
