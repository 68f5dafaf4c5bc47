"""The French analysis chain shared by the Whoosh index, the static shards and the query."""

from __future__ import annotations

import math

import pytest

from catalogue.search.analysis import (
    FIELD_BOOSTS,
    STOP_WORDS,
    analyse,
    bm25,
    fold,
    fold_terms,
    folding_analyzer,
    idf,
    normalise_number,
    round_score,
    stem,
    stemming_analyzer,
    stored_length,
)

# The same word typed with and without its accents.
ACCENT_PAIRS = [
    ("électricité", "electricite"),
    ("comptabilité", "comptabilite"),
    ("sécurité", "securite"),
    ("employé", "employe"),
    ("créée", "creee"),
    ("gérées", "gerees"),
    ("préparée", "preparee"),
    ("cuisinière", "cuisiniere"),
    ("infirmière", "infirmiere"),
    ("qualité", "qualite"),
    ("hôtellerie", "hotellerie"),
    ("pâtisserie", "patisserie"),
    ("secrétaire", "secretaire"),
    ("télécommunications", "telecommunications"),
]


def test_electricien_forms_meet():
    assert analyse("electriciens") == analyse("Électricien") == analyse("électricien") == ["electricien"]


def test_comptabilite_forms_meet():
    assert analyse("comptabilite") == analyse("comptabilité")
    assert analyse("COMPTABILITÉ") == analyse("comptabilite")


def test_folding_before_stemming_makes_accent_pairs_meet():
    folded_first = sum(stem(fold(a)) == stem(fold(b)) for a, b in ACCENT_PAIRS)
    stemmed_first = sum(fold(stem(a)) == fold(stem(b)) for a, b in ACCENT_PAIRS)
    assert folded_first == len(ACCENT_PAIRS)
    # The reverse order loses pairs: the stemmer strips é-endings only when accented.
    assert stemmed_first < folded_first
    assert all(analyse(a) == analyse(b) for a, b in ACCENT_PAIRS)


def test_stop_words_dropped():
    assert analyse("les leurs cette ils elles plus") == []
    assert fold_terms("Les métiers de la cuisine pour tous") == ["metiers", "cuisine", "tous"]
    # Folded list: "où" and "été" are caught after folding.
    assert analyse("où") == []
    assert {"les", "leurs", "cette", "ils", "elles", "plus", "qu", "l", "d"} <= STOP_WORDS


def test_elisions_and_hyphens_split():
    assert analyse("l'électricien") == ["electricien"]
    assert fold_terms("qu'aujourd'hui") == ["aujourd", "hui"]
    assert fold_terms("Agent-e d'entretien") == ["agent", "entretien"]


def test_ligatures_and_compatibility_forms_folded():
    assert fold_terms("Œuvre cœur") == ["oeuvre", "coeur"]
    assert fold_terms("ﬁnance") == ["finance"]  # NFKC turns the ligature into "fi"
    assert fold_terms("Straße") == ["strasse"]


def test_numbers_kept_short_tokens_dropped():
    assert analyse("CAP 2024 niveau 3") == ["cap", "2024", "niveau"]
    assert analyse("x") == []
    assert analyse("") == [] and analyse(None) == []


def test_underscore_splits_words():
    assert fold_terms("15_AF_0000910001") == ["15", "af", "0000910001"]


def test_whoosh_analyzers_give_the_chain_terms():
    text = "Les électriciens du bâtiment : préparation à l'habilitation"
    assert [t.text for t in stemming_analyzer()(text)] == analyse(text)
    assert [t.text for t in folding_analyzer()(text)] == fold_terms(text)
    positions = [t.pos for t in stemming_analyzer()(text, positions=True)]
    assert positions == list(range(len(analyse(text))))


def test_normalise_number():
    assert normalise_number(" 123 456 789 00012 ") == "12345678900012"
    assert normalise_number("15_af_0000910001") == "15_AF_0000910001"
    assert normalise_number("rncp 12345") == "RNCP12345"


def test_field_boosts_favour_titles():
    assert FIELD_BOOSTS["intitule"] > FIELD_BOOSTS["organisme"] > FIELD_BOOSTS["texte"]
    assert set(FIELD_BOOSTS) == {"intitule", "organisme", "ville", "texte"}


def test_bm25_and_idf_formulas():
    assert idf(100, 9) == pytest.approx(math.log(10) + 1)
    # tf=1 in a field of average length: idf * (K1 + 1) / (1 + K1)
    assert bm25(1, 10, 10, 2.0) == pytest.approx(2.0)
    # longer than average weighs less, more occurrences weigh more
    assert bm25(1, 20, 10, 2.0) < bm25(1, 10, 10, 2.0) < bm25(2, 10, 10, 2.0)


def test_stored_length_is_whooshs_byte_approximation():
    assert [stored_length(n) for n in range(1, 10)] == list(range(1, 10))
    assert stored_length(1000) != 1000 and abs(stored_length(1000) - 1000) < 100


def test_round_score():
    assert round_score(12.34567) == 12.35
    assert round_score(0.000123456) == 0.0001235
    assert round_score(0.0) == 0.0
