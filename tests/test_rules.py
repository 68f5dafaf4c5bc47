"""The publication rules of the seed document, on formations built inline."""

import datetime as dt

import pytest
from pydantic import ValidationError

from catalogue.catalog import is_archived, next_session_start, summarize
from catalogue.model import PartialDate, Statut
from catalogue.problems import Origin, Severity
from catalogue.regions import geo
from catalogue.rules import DuplicateFinder, check_formation, is_published, normalise_title
from catalogue.settings import Settings

from factories import (
    ADRESSE_MONTPELLIER,
    ADRESSE_TOULOUSE,
    ADRESSE_TOURS,
    SIRET_VEIGNE,
    action,
    formation_data,
    make_formation,
    organisme,
    session,
)

TODAY = dt.date(2026, 11, 29)


def entry_of(formation, statut=Statut.VALIDEE, path="f.xml"):
    return summarize(formation, origin=Origin(path, 3), statut=statut, today=TODAY, settings=Settings(), geo=geo())


# -- published only when validated -----------------------------------------


@pytest.mark.parametrize("statut", list(Statut))
def test_only_validated_formations_are_published(statut):
    assert is_published(statut) is (statut is Statut.VALIDEE)


# -- archived when the last session has ended --------------------------------


def test_archived_when_every_session_has_ended():
    old = make_formation(actions=[action(sessions=[session("20250101", "20250630"), session("20250901", "20261128")])])
    assert is_archived(old, TODAY)


def test_not_archived_while_one_session_has_not_ended():
    f = make_formation(actions=[action(sessions=[session("20250101", "20250630"), session("20261101", "20261129")])])
    assert not is_archived(f, TODAY)  # ends today: still open today


def test_new_dates_bring_an_archived_formation_back_with_the_same_ref():
    data = formation_data(actions=[action(sessions=[session("20240101", "20240630")])])
    archived = make_formation(**{k: v for k, v in data.items() if k not in ("numero", "intitule_formation", "actions", "datemaj")},
                              numero=data["numero"], actions=data["actions"])
    assert is_archived(archived, TODAY)
    data["actions"][0]["sessions"].append(session("20270105", "20270605", numero="S2"))
    revived = make_formation(numero=data["numero"], actions=data["actions"])
    assert not is_archived(revived, TODAY)
    assert entry_of(revived).ref == entry_of(archived).ref


def test_unknown_end_never_archives():
    f = make_formation(actions=[action(sessions=[session("20200101", "99999999")])])
    assert not is_archived(f, TODAY)


def test_month_only_end_counts_until_the_last_day_of_that_month():
    f = make_formation(actions=[action(sessions=[session("20260100", "20261100")])])
    assert not is_archived(f, dt.date(2026, 11, 30))
    assert is_archived(f, dt.date(2026, 12, 1))


def test_next_session_is_the_earliest_not_ended():
    f = make_formation(
        actions=[action(sessions=[session("20250101", "20250630", "a"), session("20270301", "20270630", "b"), session("20261201", "20270130", "c")])]
    )
    assert next_session_start(f, TODAY) == "20261201"


# -- the model refuses what cannot be right -----------------------------------


@pytest.mark.parametrize("debut,fin", [("20181345", "20190101"), ("20180230", "20180301"), ("2018011", "20180301")])
def test_impossible_dates_are_refused(debut, fin):
    with pytest.raises(ValidationError):
        make_formation(actions=[action(sessions=[session(debut, fin)])])


def test_a_session_that_ends_before_it_starts_is_refused():
    with pytest.raises(ValidationError, match="précède le début"):
        make_formation(actions=[action(sessions=[session("20270101", "20261231")])])


@pytest.mark.parametrize("siret", ["1931138340038", "193113834003891", "19311383400388", "abcdefghijklmn"])
def test_bad_siret_is_refused(siret):
    with pytest.raises(ValidationError, match="SIRET"):
        make_formation(org=organisme(siret=siret))


def test_siret_with_spaces_is_read():
    f = make_formation(org=organisme(siret="193 113 834 00389"))
    assert f.organisme_formation_responsable.siret_organisme_formation == "19311383400389"


@pytest.mark.parametrize("field,value", [("numero", ""), ("numero", "../x"), ("numero", "a/b"), ("numero", "x" * 200), ("intitule_formation", "  "), ("intitule_formation", "-")])
def test_formation_without_numero_or_title_is_refused(field, value):
    data = formation_data()
    data[field] = value
    with pytest.raises(ValidationError):
        make_formation(**{k: v for k, v in data.items() if k not in ("intitule_formation",)}, intitule=data["intitule_formation"])


def test_partial_dates_read_as_months_and_years():
    assert PartialDate.parse("20260300").french() == "03/2026"
    assert PartialDate.parse("20260000").latest() == dt.date(2026, 12, 31)
    assert PartialDate.parse("00000000") is None and PartialDate.parse("99999999") is None


# -- a session outside the premises needs its own address ---------------------


def test_a_place_of_training_without_address_is_refused():
    with pytest.raises(ValidationError, match="hors des locaux"):
        make_formation(actions=[action(lieux=[{"lignes": ["Salle polyvalente"], "ville": "Toulouse"}])])


def test_without_place_of_training_the_organisme_premises_are_used():
    f = make_formation(actions=[action(lieux=[])])
    assert [p.ville for p in entry_of(f).places] == ["Toulouse"]


# -- the Carif-Oref is the one of the place of training -----------------------


def test_training_in_the_carif_region_has_no_warning():
    f = make_formation(numero="15_AF_1")  # Occitanie Carif, Toulouse (pre-2016 code 73)
    assert list(check_formation(f, entry_of(f), Settings(), geo())) == []


def test_training_in_another_region_is_reported_with_both_regions():
    f = make_formation(numero="07_10", actions=[action(lieux=[ADRESSE_MONTPELLIER])])
    (problem,) = check_formation(f, entry_of(f), Settings(), geo())
    assert problem.severity is Severity.WARNING
    assert problem.numero == "07_10"
    assert "Occitanie (76)" in problem.message and "Centre-Val de Loire (24)" in problem.message


def test_head_office_elsewhere_does_not_matter():
    # Organisme in Tours (Centre), training in Toulouse, Occitanie Carif: fine.
    f = make_formation(numero="15_X", org=organisme(siret=SIRET_VEIGNE, adresse=ADRESSE_TOURS))
    assert list(check_formation(f, entry_of(f), Settings(), geo())) == []


def test_unknown_carif_prefix_is_a_warning():
    f = make_formation(numero="99_X")
    (problem,) = check_formation(f, entry_of(f), Settings(), geo())
    assert problem.severity is Severity.WARNING and "99" in problem.message


def test_unknown_postal_code_of_a_place_is_an_error():
    bad = dict(ADRESSE_TOULOUSE, codepostal="31999", code_insee_commune=None)
    f = make_formation(actions=[action(lieux=[bad])])
    (problem,) = check_formation(f, entry_of(f), Settings(), geo())
    assert problem.is_error and problem.field.endswith("codepostal") and "31999" in problem.message


def test_placeholder_postal_code_is_unknown_not_an_error():
    f = make_formation(org=organisme(adresse=dict(ADRESSE_TOULOUSE, codepostal="00000")))
    assert f.organisme_formation_responsable.coordonnees_organisme.adresse.codepostal is None


# -- probable duplicates -------------------------------------------------------


def test_probable_duplicates_same_organisme_title_and_place():
    finder = DuplicateFinder()
    a = make_formation(numero="15_A", intitule="Électricien d'équipement du bâtiment")
    b = make_formation(numero="15_B", intitule="ELECTRICIEN  d’équipement du batiment !")
    c = make_formation(numero="15_C", intitule="Électricien d'équipement du bâtiment", actions=[action(lieux=[ADRESSE_MONTPELLIER])])
    for f in (a, b, c):
        finder.add(entry_of(f))
    (problem,) = finder.problems()
    assert problem.numero == "15_B" and "15_A" in problem.message and problem.severity is Severity.WARNING


def test_same_title_other_organisme_is_not_a_duplicate():
    finder = DuplicateFinder()
    finder.add(entry_of(make_formation(numero="15_A")))
    finder.add(entry_of(make_formation(numero="15_B", org=organisme(siret=SIRET_VEIGNE))))
    assert list(finder.problems()) == []


def test_normalised_title():
    assert normalise_title("  Électricien d’équipement -- du BÂTIMENT ") == "electricien d equipement du batiment"


def test_many_copies_give_one_warning_each_not_one_per_pair():
    finder = DuplicateFinder()
    base = make_formation()
    entry = entry_of(base)
    import dataclasses

    for i in range(2000):
        finder.add(dataclasses.replace(entry, ref=f"15_AF_{i:05d}"))
    problems = list(finder.problems())
    assert len(problems) == 1999
    assert all("15_AF_00000" in p.message for p in problems)
