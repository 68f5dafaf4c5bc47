"""What a batch of fiches makes once of the objects its formations share (``Site.batch``, ``render._Shared``),
and the JSON-LD written as text: the same bytes as made anew, hostile values included."""

from __future__ import annotations

import pickle

import pytest
from pydantic import BaseModel, ConfigDict

from catalogue.model import Formation, ModalitesEnseignement
from catalogue.render import FicheEntry, _provider_json, _Shared, course_jsonld, course_jsonld_script, json_for_script
from catalogue.settings import Settings
from factories import ADRESSE_MONTPELLIER, ADRESSE_TOURS, SIRET_VEIGNE, action, make_formation, organisme, session
from test_render import entry_of, site

class Open(BaseModel):
    """A model with extra fields (LHEO models forbid them)."""

    model_config = ConfigDict(extra="allow")
    a: int = 1


HOSTILE = "</script><script>alert('x')</script> & \"quotes\" \u2028\u2029 <br /> é\u00a0ß \\ \t"


def hostile_organisme(nom: str = HOSTILE, siret: str = SIRET_VEIGNE) -> dict:
    data = organisme(siret=siret, nom=nom, adresse={**ADRESSE_TOURS, "lignes": [HOSTILE, "-", "a\nb"], "ville": HOSTILE})
    data["coordonnees_organisme"].update(
        nom=HOSTILE, telfixe=["+33 (0)5 <61>"], courriel="x@y.fr\"><b>", web=["https://ex.fr/?a=<b>&c", "javascript:x"]
    )
    data["contact_organisme"] = [{"nom": HOSTILE, "courriel": "contact@example.fr", "web": ["http://a.fr/\"x"]}]
    data["numero_activite"] = HOSTILE
    data["renseignements_specifiques"] = HOSTILE + "\nligne 2"
    return data


def formations() -> list[Formation]:
    """Formations with hostile text, missing fields, several actions and sessions, and none of some parts."""
    return [
        make_formation(),
        make_formation(
            numero="15_AF_0000000002",
            intitule=HOSTILE,
            org=hostile_organisme(),
            objectif_formation=None,
            contenu_formation=HOSTILE,
            contact_formation=[{"nom": HOSTILE, "lignes": [HOSTILE]}],
            certifications=[{"code_rncp": "RNCP37874"}, {"code_rncp": "12345"}],
            actions=[
                action(lieux=[], sessions=[session(numero="S-1.x_"), session(debut=None, fin="20270000", numero="S2")],
                       prix_total_ttc="0", nombre_heures_total=35, modalites_enseignement=ModalitesEnseignement.DISTANCE),
                action(numero="15_A2", lieux=[{**ADRESSE_MONTPELLIER, "ville": HOSTILE, "lignes": [HOSTILE]}, ADRESSE_TOURS],
                       sessions=[session(debut="20260900", fin=None, numero=None)], prix_total_ttc="1234.5"),
                action(numero="15_A3", lieux=[ADRESSE_MONTPELLIER], prix_total_ttc="1234.5",
                       modalites_enseignement=ModalitesEnseignement.MIXTE),
            ],
        ),
        make_formation(numero="15_AF_0000000003", objectif_formation="", contenu_formation=None,
                       org=organisme(adresse={"lignes": [], "ville": None}),
                       actions=[action(lieux=[], sessions=[session(debut=None, fin=None, numero=None)])]),
    ]


@pytest.mark.parametrize("position", range(3))
def test_jsonld_text_is_json_for_script_of_the_dicts(position: int) -> None:
    formation = formations()[position]
    settings = Settings()
    for entry in (entry_of(formation, settings), FicheEntry.of(entry_of(formation, settings))):
        canonical = f"https://example.fr/formations/{formation.numero}.html?<&>"
        for objectif in (None, "", HOSTILE):
            expected = json_for_script(course_jsonld(formation, entry, canonical, settings, objectif))
            assert course_jsonld_script(formation, entry, canonical, settings, objectif) == expected
            shared = _Shared()
            shared.entries = {}
            for _ in range(2):  # a miss, then the hits
                assert course_jsonld_script(formation, entry, canonical, settings, objectif, shared) == expected


def sharing(batch: list[Formation]) -> list[Formation]:
    """The batch's formations with one organisme object, and one contact, as the reader shares them."""
    first = batch[0]
    shared_org = first.organisme_formation_responsable
    return [first] + [
        f.model_copy(update={"organisme_formation_responsable": shared_org, "contact_formation": first.contact_formation})
        for f in batch[1:]
    ]


def test_a_batch_makes_the_same_pages_as_one_fiche_at_a_time() -> None:
    for batch in (sharing(formations()[::-1]), sharing(formations()[1:]), formations()):
        pairs = [(f, FicheEntry.of(entry_of(f))) for f in batch]
        alone = [site().fiche(f, e) for f, e in pairs]  # a new Site per page: nothing shared
        pages = site()
        sent = pickle.loads(pickle.dumps(pairs, protocol=pickle.HIGHEST_PROTOCOL))  # as a worker gets them
        for _ in range(2):
            with pages.batch():
                assert [pages.fiche(f, e) for f, e in sent] == alone
                assert [pages.fiche(f, e) for f, e in sent] == alone  # hits only
            assert [pages.fiche(f, e) for f, e in pairs] == alone  # outside a batch


def test_a_batch_makes_a_shared_object_once() -> None:
    batch = sharing([make_formation(numero=f"15_AF_000000000{n}", org=hostile_organisme()) for n in range(1, 4)])
    pages = site()
    made = []
    original = _Shared.get

    def counted(self: _Shared, kind, obj, make):
        return original(self, kind, obj, lambda o: made.append(kind) or make(o))

    _Shared.get = counted  # type: ignore[method-assign]
    try:
        with pages.batch():
            for f in batch:
                pages.fiche(f, entry_of(f))
    finally:
        _Shared.get = original  # type: ignore[method-assign]
    assert made.count("organisme_section") == 1
    # The organisme's contact once, each formation's own place once per formation (the factory's are not shared).
    assert made.count("contact_block") == 1 + len(batch)
    assert made.count(_provider_json) == 1
    assert pages.env.shared.entries is None  # nothing kept after the batch


def test_another_or_a_changed_object_is_made_anew() -> None:
    first, second = formations()[1], make_formation(numero="15_AF_0000000009", org=hostile_organisme(nom="Autre <o>"))
    pages = site()
    with pages.batch():
        one = pages.fiche(first, entry_of(first))
        other = pages.fiche(second, entry_of(second))
    assert "Autre &lt;o&gt;" in other and "Autre &lt;o&gt;" not in one
    assert other == site().fiche(second, entry_of(second))
    # An object changed between two batches (never within one): the next batch shows the change.
    entry = entry_of(first)
    with pages.batch():
        before = pages.fiche(first, entry)
    object.__setattr__(first.organisme_formation_responsable, "numero_activite", "11 75 <changé>")
    object.__setattr__(first.contact_formation[0], "nom", "Nom <changé>")
    with pages.batch():
        after = pages.fiche(first, entry)
    assert before == one and after != before
    assert "11 75 &lt;changé&gt;" in after and "Nom &lt;changé&gt;" in after
    assert after == site().fiche(first, entry)


def test_an_entry_holds_its_object() -> None:
    """An entry keeps its object alive: no other object of the batch can take its id."""
    shared = _Shared()
    shared.entries = {}
    key = object()
    assert shared.get("k", key, lambda o: "made") == "made"
    assert shared.get("k", key, lambda o: "again") == "made"
    other = object()
    assert shared.get("k", other, lambda o: "other") == "other"
    assert all(hit[0] is obj for (kind, ident), hit in shared.entries.items() for obj in (hit[0],) if id(obj) == ident)


def test_tidy_drops_the_blank_lines_as_the_plain_regex_does() -> None:
    import itertools
    import re

    from catalogue.render import tidy

    plain = re.compile(r"\n[ \t]*(?=\n)")
    for size in range(7):
        for chars in itertools.product("\n \tx\r", repeat=size):
            text = "".join(chars)
            assert tidy(text) == plain.sub("", text), repr(text)


def test_periods_known_by_value_are_those_made_anew() -> None:
    """action_views() reads a period's text and end from a table keyed by its dates' values."""
    import datetime as dt

    from catalogue.catalog import is_ended
    from catalogue.render import action_views, period_text

    dates = [None, "20260901", "20260900", "20260000", "20270630", "20250228", "20261231"]
    sessions = [session(debut=d, fin=f, numero=f"S{n}") for n, (d, f) in enumerate(
        (d, f) for d in dates for f in dates if not (d and f and f < d and f[:4] <= d[:4]))]
    formation = make_formation(actions=[action(sessions=sessions)])
    for today in (dt.date(2026, 1, 1), dt.date(2026, 11, 29), dt.date(2030, 1, 1)):
        for _ in range(2):  # made, then known
            (view,) = action_views(formation, today)
            for shown in view.sessions:
                assert shown.text == period_text(shown.session)
                assert shown.ended == is_ended(shown.session, today)


def test_each_formation_notes_its_own_organisme_address(tmp_path) -> None:
    """SiteSink.add() reuses the previous formation's address JSON while the address is the same object."""
    from catalogue import render
    from catalogue.model import Adresse
    from test_render import build_site

    one = make_formation(numero="15_AF_0000000001")
    shared = [one] + [
        make_formation(numero=f"15_AF_000000000{n}").model_copy(
            update={"organisme_formation_responsable": one.organisme_formation_responsable})
        for n in (2, 3)
    ]
    other = make_formation(numero="15_AF_0000000004", org=organisme(siret=SIRET_VEIGNE, adresse=ADRESSE_TOURS))
    bare = make_formation(numero="15_AF_0000000005", org={**organisme(), "coordonnees_organisme": None})
    formations = shared[:2] + [other, shared[2], bare, bare, other]
    build_site(tmp_path, formations, workers=0)
    state = render._load_state(tmp_path)
    for formation in formations:
        address = state["addresses"][render._address_of(state["refs"][formation.numero])]
        coordonnees = formation.organisme_formation_responsable.coordonnees_organisme
        expected = coordonnees.adresse if coordonnees else None
        assert render._adresse(address) == expected
        assert expected is None or Adresse.model_validate_json(address) == expected


def test_a_batch_pickled_for_a_worker_is_the_same_batch() -> None:
    """_dumps_batch() pickles models as their values: the worker gets equal models, as shared as they were."""
    from catalogue.render import _dumps_batch, _fiche_job

    batch = sharing(formations()[::-1])
    jobs = [_fiche_job(f"{f.numero}.html", None, f, entry_of(f)) for f in batch]
    sent = pickle.loads(_dumps_batch(jobs))
    plain = pickle.loads(pickle.dumps(jobs))
    for (path, spare, formation, entry), (_, _, expected, expected_entry) in zip(sent, plain):
        assert formation == expected and entry == expected_entry and type(entry) is FicheEntry
        assert formation.__dict__ == expected.__dict__
        assert formation.model_fields_set == expected.model_fields_set
        assert formation.organisme_formation_responsable.model_fields_set == (
            expected.organisme_formation_responsable.model_fields_set)
        assert site().fiche(formation, entry) == site().fiche(expected, expected_entry)
    organismes = {id(f.organisme_formation_responsable) for _, _, f, _ in sent}
    assert len(organismes) == 1  # still one object, as in the build's process

    odd = Open(a=2, b="<extra>")
    assert pickle.loads(_dumps_batch([odd])) == [odd]  # extra fields: pickled as pickle does
    assert pickle.loads(_dumps_batch([odd]))[0].b == "<extra>"
