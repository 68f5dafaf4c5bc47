"""The search function shared by the CLI and the API, on a small index built through the sink."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
from pathlib import Path
from typing import Iterable, Optional

import pytest
from pydantic import ValidationError
from whoosh.query import And, Or, Term

from catalogue.build import BuildOptions, SinkContext, build
from catalogue.catalog import Catalog, summarize
from catalogue.lheo_export import write_lheo
from catalogue.model import Formation, Statut
from catalogue.problems import Origin
from catalogue.regions import geo
from catalogue.search import analysis
from catalogue.search.analysis import FIELD_BOOSTS, RoundedBM25F, analyse, average_length, bm25, field_texts, idf, stored_length
from catalogue.search.index import index_sink, open_index, ref_without_prefix
from catalogue.search.query import (
    MAX_QUERY_TERMS,
    IndexMissing,
    SearchError,
    SearchParams,
    _scores,
    format_results_text,
    search,
)
from catalogue.settings import Settings
from factories import (
    ADRESSE_MONTPELLIER,
    ADRESSE_TOURS,
    SIRET_TOULOUSE,
    SIRET_VEIGNE,
    action,
    make_formation,
    organisme,
    session,
)

TODAY = dt.date(2026, 3, 1)

ELECTRICIEN = "15_AF_0000910001"
COMPTA = "15_AF_0000910002"
CUISINE = "07_AF_0000000003"
ARCHIVEE = "15_AF_0000910004"
MENTION = "15_AF_0000910005"
PAIE = "15_AF_0000910006"


def catalogue_formations() -> list[Formation]:
    """Six formations, each there for some test below."""
    return [
        make_formation(
            numero=ELECTRICIEN,
            intitule="Électricien d'équipement du bâtiment",
            certifiante=True,
            certifications=[{"code_rncp": "RNCP12345"}],
            actions=[
                action(
                    numero="15_SE_0000111",
                    sessions=[dict(session(numero="15_SS_0000222"), eligibilite_cpf=[{"numero": "248"}])],
                    organismes_financeurs=[{"code_financeur": "10"}],
                )
            ],
        ),
        make_formation(
            numero=COMPTA,
            intitule="Comptabilité et gestion",
            objectif_formation="Tenir la comptabilité d'une petite entreprise.",
            actions=[
                action(
                    numero="15_SE_0000333",
                    sessions=[session(debut="20270201", fin="20270630", numero="15_SS_0000444")],
                    lieux=[ADRESSE_MONTPELLIER],
                    modalites_enseignement=2,
                    entrees_sorties_permanentes=True,
                )
            ],
        ),
        make_formation(
            numero=CUISINE,
            intitule="Cuisine et restauration",
            objectif_formation="Préparer les plats d'un restaurant traditionnel.",
            org=organisme(SIRET_VEIGNE, "Lycée hôtelier de Tours", ADRESSE_TOURS),
            actions=[action(numero="07_SE_1", lieux=[ADRESSE_TOURS], organismes_financeurs=[{"code_financeur": "5"}])],
        ),
        make_formation(
            numero=ARCHIVEE,
            intitule="Électricité : habilitation électrique",
            actions=[action(numero="15_SE_0000555", sessions=[session(debut="20240101", fin="20240301", numero="S5")])],
        ),
        make_formation(
            numero=MENTION,
            intitule="Remise à niveau en mathématiques",
            objectif_formation="Préparer l'entrée en formation d'électricien (voir 15_AF_0000910001).",
            actions=[action(numero="15_SE_0000666", sessions=[session(numero="S6")])],
        ),
        make_formation(
            numero=PAIE,
            intitule="Gestion de la paie",
            objectif_formation="Établir les bulletins.",
            actions=[action(numero="15_SE_0000777", sessions=[session(numero="S7")])],
        ),
    ]


def publish(build_dir: Path, formations: Iterable[Formation], site: Optional[dict[str, str]] = None, today=TODAY) -> Path:
    """Run the "index" sink into a fresh folder and publish it like a build (BUILD/current, index, site)."""
    builds = build_dir / ".builds"
    builds.mkdir(parents=True, exist_ok=True)
    staging = builds / f"{len(list(builds.iterdir())):03d}"
    (staging / "site").mkdir(parents=True)
    context = SinkContext(staging, Settings(), today, geo())
    sink = index_sink(context)
    entries = []
    for i, formation in enumerate(formations):
        entry = summarize(
            formation, origin=Origin("test.yaml", i + 1), statut=Statut.VALIDEE,
            today=today, settings=context.settings, geo=context.geo,
        )
        entries.append(entry)
        sink.add(formation, entry)
    sink.finish(Catalog.of(entries, today))
    for name, text in (site or {}).items():
        path = staging / "site" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    for name in ("site", "index"):
        link = build_dir / name
        if not link.is_symlink():
            link.symlink_to(Path("current") / name)
    tmp = build_dir / ".current.tmp"
    tmp.symlink_to(staging.relative_to(build_dir))
    os.replace(tmp, build_dir / "current")
    return staging


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    build_dir = tmp_path_factory.mktemp("search") / "build"
    publish(build_dir, catalogue_formations())
    return build_dir


def refs(build_dir: Path, q: str = "", **params) -> list[str]:
    return [r.ref for r in search(build_dir, SearchParams(q=q, **params)).results]


# -- number lookup -------------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        ELECTRICIEN,
        ELECTRICIEN.lower(),
        "AF_0000910001",
        "0000910001",
        "15_SE_0000111",  # action
        "15_SS_0000222",  # session
        f"{ELECTRICIEN}|15_SE_0000111|15_SS_0000222",  # Pôle emploi composite
        f"{ELECTRICIEN}|15_SE_0000111",
        "RNCP12345",
        "12345",  # a bare number of ≤ 6 digits is also tried as RNCP
        f"Ref : {ELECTRICIEN}",  # as copied from the bottom of a fiche
        f"réf.:{ELECTRICIEN}".replace(".", ""),
    ],
)
def test_numbers_find_their_formation(built, query):
    response = search(built, SearchParams(q=query))
    assert response.results[0].ref == ELECTRICIEN
    assert response.results[0].match == "numero" and response.results[0].score is None


@pytest.mark.parametrize("query", [SIRET_TOULOUSE, "193 113 834 00389", "193.113.834.00389"])
def test_siret_finds_all_its_formations_in_ref_order(built, query):
    response = search(built, SearchParams(q=query))
    numero_hits = [r.ref for r in response.results if r.match == "numero"]
    assert numero_hits == sorted([ELECTRICIEN, COMPTA, MENTION, PAIE, ARCHIVEE])  # archived ones too: a number always finds


def test_an_archived_formation_is_found_by_its_ref_and_flagged(built):
    response = search(built, SearchParams(q=ARCHIVEE))
    assert [(r.ref, r.archived, r.match) for r in response.results[:1]] == [(ARCHIVEE, True, "numero")]
    assert search(built, SearchParams(q="habilitation électrique")).results == []  # but not by its words


def test_known_number_comes_first_then_text_matches(built):
    # MENTION's text quotes the Ref: it follows, as a text match.
    response = search(built, SearchParams(q=ELECTRICIEN))
    assert [(r.ref, r.match) for r in response.results] == [(ELECTRICIEN, "numero"), (MENTION, "texte")]
    assert response.total == 2


def test_ref_without_prefix():
    assert ref_without_prefix("15_AF_0000910001") == ["AF_0000910001", "0000910001"]
    assert ref_without_prefix("14_AF_X_1") == ["AF_X_1", "X_1"]
    assert ref_without_prefix("15_0000910001") == ["0000910001"]
    assert ref_without_prefix("ABC") == []


# -- text ------------------------------------------------------------------------


@pytest.mark.parametrize("query", ["électricien", "electriciens", "ÉLECTRICIEN"])
def test_french_analysis_in_search(built, query):
    assert refs(built, query)[0] == ELECTRICIEN


def test_comptabilite_without_accent(built):
    assert refs(built, "comptabilite") == [COMPTA]


def test_and_semantics(built):
    assert refs(built, "électricien bâtiment") == [ELECTRICIEN]
    assert refs(built, "électricien comptabilité") == []


def test_title_weighs_more_than_description(built):
    # Both mention "électricien"; only ELECTRICIEN has it in its title.
    assert refs(built, "electricien") == [ELECTRICIEN, MENTION]


def test_organisme_and_town_are_searched(built):
    assert refs(built, "lycée hôtelier") == [CUISINE]
    assert refs(built, "tours") == [CUISINE]
    assert refs(built, "montpellier") == [COMPTA]


def test_stop_words_only_finds_nothing(built):
    assert search(built, SearchParams(q="les de la")).total == 0


def test_results_carry_the_keys_of_the_contract(built):
    hit = search(built, SearchParams(q="cuisine")).results[0]
    assert hit.model_dump() == {
        "ref": CUISINE,
        "intitule": "Cuisine et restauration",
        "organisme": "Lycée hôtelier de Tours",
        "ville": "Tours",
        "codepostal": "37000",
        "url": f"/formations/{CUISINE}.html",
        "archived": False,
        "datemaj": "02/11/2026",
        "score": hit.score,
        "match": "texte",
    }
    assert hit.score > 0


# -- spelling tolerance -----------------------------------------------------------


def test_typo_in_long_word_is_tolerated(built):
    assert refs(built, "restauraton") == [CUISINE]
    assert refs(built, "electricen")[0] == ELECTRICIEN
    assert refs(built, "comptabilitee") == [COMPTA]  # 13 letters: two edits allowed


def test_typo_in_four_letter_word_is_not_fuzzed(built):
    assert refs(built, "paie") == [PAIE]
    assert refs(built, "paix") == []


def test_first_letter_must_match(built):
    assert refs(built, "cuisine") == [CUISINE]
    assert refs(built, "buisine") == []


def test_exact_match_wins_over_fuzzy(built):
    # "gestion" matches exactly: no near words are added.
    assert set(refs(built, "gestion")) == {COMPTA, PAIE}


# -- filters ------------------------------------------------------------------------


def test_archived_left_out_unless_asked(built):
    assert ARCHIVEE not in refs(built, "électricité")
    response = search(built, SearchParams(q="habilitation électrique", include_archived=True))
    assert [(r.ref, r.archived) for r in response.results] == [(ARCHIVEE, True)]
    assert ARCHIVEE in refs(built, SIRET_TOULOUSE, include_archived=True)


@pytest.mark.parametrize(
    "params, expected",
    [
        ({"region": "24"}, [CUISINE]),
        ({"departement": "34"}, [COMPTA]),
        ({"certifiante": True}, [ELECTRICIEN]),
        ({"cpf": True}, [ELECTRICIEN]),
        ({"distance": True}, [COMPTA]),
        ({"esp": True}, [COMPTA]),
        ({"financeur": "5"}, [CUISINE]),
        ({"debut_apres": dt.date(2027, 1, 1)}, [COMPTA]),
        ({"near": "Montpellier", "rayon_km": 10}, [COMPTA]),
        ({"near": "34000", "rayon_km": 10}, [COMPTA]),
        ({"near": "toulouse", "rayon_km": 300}, [ELECTRICIEN, COMPTA, MENTION, PAIE]),
        ({"near": "Toulouse"}, [ELECTRICIEN, MENTION, PAIE]),  # 30 km by default
    ],
)
def test_filters(built, params, expected):
    assert sorted(refs(built, **params)) == sorted(expected)


def test_filter_false_and_combined_with_text(built):
    assert CUISINE in refs(built, certifiante=False)
    assert ELECTRICIEN not in refs(built, certifiante=False)
    assert refs(built, "électricien", region="24") == []
    assert refs(built, "cuisine", region="24") == [CUISINE]


def test_filters_apply_to_numbers(built):
    assert refs(built, SIRET_TOULOUSE, departement="34") == [COMPTA]


def test_unknown_town_is_a_clear_error(built):
    with pytest.raises(SearchError, match="ville inconnue"):
        search(built, SearchParams(near="Trifouilly-les-Oies"))


def test_empty_query_browses_in_ref_order(built):
    response = search(built, SearchParams())
    assert [r.ref for r in response.results] == sorted([CUISINE, ELECTRICIEN, COMPTA, MENTION, PAIE])


def test_paging(built):
    every = refs(built, SIRET_TOULOUSE, limit=100)
    assert refs(built, SIRET_TOULOUSE, limit=2, offset=1) == every[1:3]
    assert search(built, SearchParams(q=SIRET_TOULOUSE, limit=1)).total == len(every)


# -- user input ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "query, expected",
    [
        ('"cuisine"', [CUISINE]),
        ("cuisine*", [CUISINE]),
        ("(cuisine)", [CUISINE]),
        ("cuisine\x00", [CUISINE]),
        ("'cuisine'", [CUISINE]),
        ("intitule:cuisine", []),  # "intitule" is a word like any other, and no formation has it
        ("cuisine OR gestion", []),  # "or" is a word too: AND of cuisine, or, gestion
        ("*", []),
        ("AND", []),
        ("?", []),
        ("\x00", []),
        ("%s", []),
        ("{{7*7}}", []),
    ],
)
def test_query_syntax_is_plain_words(built, query, expected):
    assert refs(built, query) == expected


def test_long_query_is_refused():
    with pytest.raises(ValidationError):
        SearchParams(q="a" * 100_000)


def test_too_many_words_is_refused(built):
    with pytest.raises(SearchError, match="trop longue"):
        search(built, SearchParams(q=" ".join(f"mot{i}" for i in range(MAX_QUERY_TERMS + 1))))


@pytest.mark.parametrize(
    "params",
    [{"limit": 0}, {"limit": 101}, {"offset": -1}, {"certifiante": "peut-être"}, {"region": "x"}, {"rayon_km": 5}],
)
def test_bad_parameters_are_refused(params):
    with pytest.raises(ValidationError):
        SearchParams(**params)


def test_french_yes_no():
    assert SearchParams(cpf="oui").cpf is True and SearchParams(cpf="non").cpf is False


def test_no_index_yet(tmp_path):
    with pytest.raises(IndexMissing):
        search(tmp_path, SearchParams(q="x"))


# -- scores -----------------------------------------------------------------------------


def test_scores_equal_whooshs_bm25f_and_the_formula(built):
    """The engine's scores, Whoosh's BM25F with query-time boosts, and analysis.bm25 agree to 1e-6."""
    index = open_index(built)
    searcher = index.ix.searcher(weighting=RoundedBM25F())
    formations = {f.numero: f for f in catalogue_formations()}
    entries = {
        f.numero: summarize(f, origin=Origin("t", 1), statut=Statut.VALIDEE, today=TODAY, settings=Settings(), geo=geo())
        for f in formations.values()
    }
    texts = {ref: {k: analyse(v) for k, v in field_texts(formations[ref], entries[ref]).items()} for ref in formations}
    n_docs = len(texts)
    for query in ["électricien", "gestion", "électricien formation", "tours cuisine"]:
        terms = list(dict.fromkeys(analyse(query)))
        whoosh_query = And([Or([Term(f, t, boost=b) for f, b in FIELD_BOOSTS.items()]) for t in terms])
        expected = {hit.docnum: hit.score for hit in searcher.search(whoosh_query, limit=None)}
        ours = _scores(index, [[t] for t in terms], None, frozenset())
        assert expected and ours.keys() == expected.keys()
        for docnum, score in expected.items():
            assert ours[docnum] == pytest.approx(score, abs=1e-6)
            # What a static index computes from the texts alone:
            ref = index.refs()[docnum]
            formula = 0.0
            for term in terms:
                for field, boost in FIELD_BOOSTS.items():
                    tf = texts[ref][field].count(term)
                    if tf:
                        df = sum(term in t[field] for t in texts.values())
                        avg = average_length(sum(len(t[field]) for t in texts.values()), n_docs)
                        formula += boost * bm25(tf, stored_length(len(texts[ref][field])), avg, idf(n_docs, df))
            assert formula == pytest.approx(score, abs=1e-6)


def test_ties_broken_by_ref(tmp_path):
    same = [make_formation(numero=f"15_AF_00000{i}", intitule="Soudure à l'arc") for i in (3, 1, 2)]
    publish(tmp_path / "b", same)
    response = search(tmp_path / "b", SearchParams(q="soudure"))
    assert [r.ref for r in response.results] == ["15_AF_000001", "15_AF_000002", "15_AF_000003"]
    assert len({r.score for r in response.results}) == 1


# -- builds -------------------------------------------------------------------------------


def test_new_build_is_picked_up(tmp_path):
    build_dir = tmp_path / "build"
    publish(build_dir, [make_formation(numero="15_AF_1", intitule="Cuisine")])
    assert refs(build_dir, "cuisine") == ["15_AF_1"]
    publish(build_dir, [make_formation(numero="15_AF_2", intitule="Cuisine collective")])
    assert refs(build_dir, "cuisine") == ["15_AF_2"]


def test_through_the_build(tmp_path):
    """The sink registered as "index" in a real build of an LHEO file."""
    content = tmp_path / "content"
    content.mkdir()
    write_lheo(catalogue_formations()[:3], content / "offre.xml", "2.3")
    build(BuildOptions(content=(content,), build_dir=tmp_path / "build", today=TODAY), Settings(), sinks=["index"])
    assert refs(tmp_path / "build", "restauration") == [CUISINE]
    assert refs(tmp_path / "build", "0000910002") == [COMPTA]
    assert open_index(tmp_path / "build").formation_json(CUISINE)["intitule_formation"] == "Cuisine et restauration"


def test_formation_json_is_stored(built):
    index = open_index(built)
    data = index.formation_json(COMPTA)
    assert data["numero"] == COMPTA
    assert data["actions"][0]["sessions"][0]["periode"]["debut"] == "20270201"
    assert index.formation_json("15_AF_inconnue") is None


def test_format_results_text(built):
    text = format_results_text(search(built, SearchParams(q=SIRET_TOULOUSE, include_archived=True)))
    lines = text.splitlines()
    assert lines[0].startswith("5 formations trouvées")
    assert any(ARCHIVEE in line and line.endswith("(archivée)") for line in lines)
    assert f"{ELECTRICIEN}  Électricien d'équipement du bâtiment — UT2J FC — 31500 Toulouse" in lines
    assert format_results_text(search(built, SearchParams(q="introuvable"))) == "Aucune formation trouvée."


def test_analysis_module_is_the_one_used(built):
    # The index holds the chain's stems: "électricien" is indexed as analyse() says.
    searcher = open_index(built).searcher()
    assert searcher.doc_frequency("intitule", analysis.analyse("Électricien")[0]) == 1


def test_failed_build_stops_the_writer_processes(tmp_path):
    """A build that raises before finish() must not leave Whoosh's writer processes waiting (Python would hang at exit)."""
    import gc

    from catalogue.search import index as index_module

    context = SinkContext(tmp_path, Settings(), TODAY, geo())
    sink = index_module.IndexSink(context)
    formation = make_formation()
    entry = summarize(formation, origin=Origin("t", 1), statut=Statut.VALIDEE, today=TODAY, settings=Settings(), geo=geo())
    for i in range(250):  # more than one batch: the writer processes start
        sink.add(formation.model_copy(update={"numero": f"15_AF_{i}"}), dataclasses.replace(entry, ref=f"15_AF_{i}"))
    tasks = list(getattr(sink.writer, "tasks", []))
    assert index_module.WRITER_PROCS == 1 or (tasks and all(t.is_alive() for t in tasks))
    del sink
    gc.collect()
    assert not any(t.is_alive() for t in tasks)


def test_scores_on_several_segments(tmp_path, monkeypatch):
    """Several segments (several writer processes, segments closed as they fill): global docnums, the jump to
    candidates, Whoosh's scores."""
    from catalogue.search import index as index_module

    # Segments of 100 documents: several whichever writer process takes the batches (a loaded machine
    # may let one take them all).
    monkeypatch.setattr(index_module, "SEGMENT_DOCS", 100)
    base = make_formation()
    formations = [
        base.model_copy(update={
            "numero": f"15_AF_{i:04d}",
            "intitule_formation": "Cuisine pâtisserie" if i % 50 == 7 else f"Cuisine {'traditionnelle ' * (i % 3)}",
        })
        for i in range(320)
    ]
    publish(tmp_path / "b", formations)
    index = open_index(tmp_path / "b")
    searcher = index.ix.searcher(weighting=RoundedBM25F())
    assert len(searcher.reader().leaf_readers()) > 1
    for query, count in [("cuisine pâtisserie", 7), ("cuisine", 320), ("traditionnelle cuisine", 208)]:
        terms = analyse(query)
        whoosh_query = And([Or([Term(f, t, boost=b) for f, b in FIELD_BOOSTS.items()]) for t in terms])
        expected = {hit.docnum: hit.score for hit in searcher.search(whoosh_query, limit=None)}
        ours = _scores(index, [[t] for t in terms], None, frozenset())
        assert len(ours) == count and ours.keys() == expected.keys()
        assert all(ours[d] == pytest.approx(s, abs=1e-6) for d, s in expected.items())
    assert refs(tmp_path / "b", "patisserie", limit=100) == [f"15_AF_{i:04d}" for i in range(320) if i % 50 == 7]
