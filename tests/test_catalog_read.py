"""summarize() makes its Entry and Places without their dataclass __init__: they must be the same objects."""

from __future__ import annotations

import dataclasses
import datetime as dt
import pickle

import pytest
from factories import action, make_formation, session

from catalogue.catalog import Entry, Place, summarize
from catalogue.model import Statut
from catalogue.problems import Origin
from catalogue.regions import geo
from catalogue.settings import Settings


def _same_as_init(made):
    """``made`` is what its class's ``__init__`` makes of its fields: every field set, nothing else."""
    fields = {f.name: getattr(made, f.name) for f in dataclasses.fields(made)}
    assert list(vars(made)) == list(fields)
    plain = type(made)(**fields)
    assert made == plain and hash(made) == hash(plain) and repr(made) == repr(plain)
    assert pickle.dumps(made, pickle.HIGHEST_PROTOCOL) == pickle.dumps(plain, pickle.HIGHEST_PROTOCOL)
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.ref = "autre"  # type: ignore[misc]


def test_summary_is_a_plain_frozen_entry():
    formation = make_formation(actions=[action("15_A1", [session("20260901", "20261231", numero="S1")])])
    entry = summarize(
        formation, origin=Origin("x.xml", 1), statut=Statut.VALIDEE, today=dt.date(2026, 9, 1), settings=Settings(), geo=geo()
    )
    assert type(entry) is Entry
    _same_as_init(entry)
    assert entry.places and all(type(p) is Place for p in entry.places)
    for place in entry.places:
        _same_as_init(place)
