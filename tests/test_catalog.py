"""The Entry of a formation: what summarize() computes once, equal to the public helpers it stands for."""

from __future__ import annotations

import datetime as dt

import pytest
from factories import action, make_formation, session

from catalogue.catalog import _yyyymmdd, is_archived, next_session_start, summarize
from catalogue.model import PartialDate, Statut
from catalogue.problems import Origin
from catalogue.regions import geo
from catalogue.rules import normalise_title
from catalogue.settings import Settings

TODAY = dt.date(2026, 9, 1)


@pytest.mark.parametrize(
    "day", [dt.date(2026, 9, 1), dt.date(1000, 1, 1), dt.date(999, 12, 31), dt.date(1, 1, 1), dt.date(9998, 12, 31)]
)
def test_yyyymmdd_is_strftime(day):
    assert _yyyymmdd(day) == day.strftime("%Y%m%d")


def entry_of(formation):
    return summarize(formation, origin=Origin("x.xml", 1), statut=Statut.VALIDEE, today=TODAY, settings=Settings(), geo=geo())


@pytest.mark.parametrize(
    "periodes, archived, prochaine, debuts",
    [
        # one ended, one running, one not started, one without a start
        (
            [("20250101", "20250630"), ("20260801", "20261231"), ("20261001", None), (None, "20270101")],
            False,
            "00000000",
            ("20250101", "20260801", "20261001"),
        ),
        ([("20250101", "20250630"), ("20260301", "20260831")], True, None, ("20250101", "20260301")),
        ([("20260900", "20261000"), ("20260000", "20270000")], False, "20260000", ("20260101", "20260901")),
        ([("20261001", "20261130"), ("20261001", "20261231")], False, "20261001", ("20261001",)),
    ],
)
def test_sessions_summarised(periodes, archived, prochaine, debuts):
    sessions = [session(debut, fin, numero=f"S{i}") for i, (debut, fin) in enumerate(periodes)]
    half = len(sessions) // 2
    formation = make_formation(actions=[action("15_A1", sessions[:half]), action("15_A2", sessions[half:])])
    entry = entry_of(formation)
    assert entry.archived is archived is is_archived(formation, TODAY)
    assert entry.prochaine_session == prochaine == next_session_start(formation, TODAY)
    assert entry.debuts == debuts
    assert entry.session_numeros == tuple(s.numero for s in formation.sessions)
    assert entry.action_sessions == tuple((a.numero, s.numero) for a in formation.actions for s in a.sessions)


def test_debut_before_year_1000_is_written_as_strftime_writes_it():
    formation = make_formation(actions=[action(sessions=[session("09990101", "20270101")])])
    assert formation.sessions[0].periode.debut == PartialDate(999, 1, 1)
    assert entry_of(formation).debuts == (dt.date(999, 1, 1).strftime("%Y%m%d"),)


def test_normalise_title_is_remembered_and_right():
    normalise_title.cache_clear()
    title = "Électricien  d'équipement du BÂTIMENT !"
    assert normalise_title(title) == "electricien d equipement du batiment"
    assert normalise_title(title) == "electricien d equipement du batiment"
    assert normalise_title.cache_info().hits == 1


def test_flags_and_numbers_are_the_models():
    """summarize() walks the actions and sessions once for what the model's properties each walk again:
    over varied formations, the entry says what those properties say."""
    from catalogue.generate import generate_formations

    formations = list(generate_formations(400, seed=7))
    for flag in ("eligible_cpf", "a_distance", "entrees_sorties_permanentes"):
        assert {getattr(f, flag) for f in formations} == {True, False}, flag  # both cases seen
    for formation in formations:
        entry = entry_of(formation)
        assert entry.eligible_cpf is formation.eligible_cpf
        assert entry.a_distance is formation.a_distance
        assert entry.entrees_sorties_permanentes is formation.entrees_sorties_permanentes
        assert entry.financeurs == tuple(
            sorted({f.code_financeur for a in formation.actions for f in a.organismes_financeurs})
        )
        assert entry.action_numeros == tuple(a.numero for a in formation.actions if a.numero)
