"""The model's shortcuts for the read path give what the plain code gave."""

from __future__ import annotations

import copy
import pickle

import pytest
from pydantic import TypeAdapter

from catalogue.model import Flag, PartialDate, Periode


@pytest.mark.parametrize("parts", [(2026, 11, 2), (2026, 9, 0), (2026, 0, 0), (999, 1, 1), (1, 12, 31), (9998, 2, 28)])
def test_partial_date_text_is_its_lheo_form(parts):
    date = PartialDate(*parts)
    year, month, day = parts
    assert date.lheo() == date.text == f"{year:04d}{month:02d}{day:02d}"
    assert date == PartialDate(*parts) and hash(date) == hash(PartialDate(*parts))
    assert date != PartialDate(year - 1 or 2, month, day)
    assert repr(date) == f"PartialDate({date.text})"
    for again in (pickle.loads(pickle.dumps(date, pickle.HIGHEST_PROTOCOL)), copy.deepcopy(date)):
        assert (again.year, again.month, again.day, again.text) == (year, month, day, date.text)


def test_partial_date_serialises_as_before():
    periode = Periode(debut="20260900", fin="2026-10-12")
    assert periode.model_dump(mode="json") == {"debut": "20260900", "fin": "20261012"}
    assert periode.model_dump_json() == '{"debut":"20260900","fin":"20261012"}'
    assert Periode(debut="00000000").model_dump(mode="json") == {"debut": None, "fin": None}


def _folded_flag(value):
    """The flag's reading without its shortcut for ``0`` and ``1``."""
    if isinstance(value, str):
        folded = value.strip().lower()
        if folded in {"1", "oui", "true", "vrai"}:
            return True
        if folded in {"0", "non", "false", "faux"}:
            return False
    return value


@pytest.mark.parametrize(
    "value", ["0", "1", " 1 ", "0 ", "OUI", "non", "Vrai", "faux", "true", "2", "", "01", 0, 1, True, False, 1.0, None, "-"]
)
def test_flag_reads_as_before(value):
    adapter = TypeAdapter(Flag)
    reference = TypeAdapter(bool)
    try:
        expected = reference.validate_python(_folded_flag(value))
    except Exception as exc:  # noqa: BLE001 - the same refusal is what is checked
        with pytest.raises(type(exc)):
            adapter.validate_python(value)
    else:
        assert adapter.validate_python(value) is expected
