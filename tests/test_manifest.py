"""The build manifest: its outcomes read when first needed, written and read back whole, and what happens when they
cannot be read."""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import fields, replace

import pytest

from catalogue import build as build_module
from catalogue import incremental
from catalogue.build import published_build
from catalogue.catalog import Entry, Place
from catalogue.incremental import Manifest, ManifestUnreadable
from catalogue.model import Statut
from catalogue.problems import Origin, Problem, Severity
from catalogue.settings import Settings

from test_incremental import formations, recorder, run, write  # noqa: F401  (recorder: a fixture)


def test_the_manifest_outcomes_are_read_only_when_needed(tmp_path, recorder, monkeypatch):
    content = write(tmp_path / "content" / "a.xml", formations(3))
    run(content, tmp_path / "build")
    folder = published_build(tmp_path / "build")
    key = build_module.build_key(Settings(), ["recorder"])
    reads = []
    load = incremental._load_outcomes
    monkeypatch.setattr(incremental, "_load_outcomes", lambda path: reads.append(path) or load(path))
    manifest = Manifest.open(folder, key)
    assert sorted(manifest.published) == ["15_AF_0000", "15_AF_0001", "15_AF_0002"] and reads == []
    assert len(manifest.outcomes) == 3 and len(manifest.outcomes) == 3
    assert len(reads) == 1


def test_outcomes_unreadable_when_first_needed_mean_a_full_build(tmp_path, recorder):
    content = write(tmp_path / "content" / "a.xml", formations(3))
    run(content, tmp_path / "build")
    folder = published_build(tmp_path / "build")
    key = build_module.build_key(Settings(), ["recorder"])
    for bucket in (folder / ".cache" / "build").glob("outcomes-*.marshal"):
        bucket.write_bytes(b"not a marshal")
    manifest = Manifest.open(folder, key)
    assert manifest is not None  # the key and the Refs were readable
    with pytest.raises(ManifestUnreadable):
        manifest.outcomes
    report = run(content, tmp_path / "build")
    assert not report.incremental and report.published == 3


def _outcome_files(folder):
    return sorted((folder / ".cache" / "build").glob("outcomes-*.marshal"))


def test_a_rebuild_links_the_outcomes_and_writes_only_the_changes(tmp_path, recorder):
    content = write(tmp_path / "content" / "a.xml", formations(40))
    run(content, tmp_path / "build")
    first = published_build(tmp_path / "build")
    write(content, formations(40, changed={7: "Changée"}))
    run(content, tmp_path / "build")
    second = published_build(tmp_path / "build")
    key = build_module.build_key(Settings(), ["recorder"])
    buckets = [b for b in _outcome_files(second) if b.name != incremental.CHANGES_NAME]
    assert len(buckets) == incremental.BUCKETS
    assert all(os.path.samefile(b, first / ".cache" / "build" / b.name) for b in buckets)
    added, gone = incremental._load_outcomes_file(second / ".cache" / "build" / incremental.CHANGES_NAME)
    assert len(gone) == 1 and [o.numero for o in added.values()] == ["15_AF_0007"]
    manifest = Manifest.load(second, key)
    assert len(manifest.outcomes) == 40 and gone[0] not in manifest.outcomes
    before = Manifest.load(first, key).outcomes
    assert manifest.outcomes == {digest: o for digest, o in before.items() if digest not in gone} | added
    assert not any(digest in Manifest.load(first, key).outcomes for digest in added)


def test_changes_beyond_their_share_make_a_new_base(tmp_path, recorder):
    content = write(tmp_path / "content" / "a.xml", formations(40))
    run(content, tmp_path / "build")
    key = build_module.build_key(Settings(), ["recorder"])
    base_inodes = [os.stat(_outcome_files(published_build(tmp_path / "build"))[0]).st_ino]
    # Each build changes one more formation than the last from the first input: changes from the base
    # grow by two (one outcome gone, one added) until they pass 10 % of 40 outcomes.
    for count in range(1, 5):
        write(content, formations(40, changed={n: f"Changée {count}" for n in range(count)}))
        run(content, tmp_path / "build")
        folder = published_build(tmp_path / "build")
        base_inodes.append(os.stat(_outcome_files(folder)[0]).st_ino)
        manifest = Manifest.load(folder, key)
        assert len(manifest.outcomes) == 40
        assert {o.entry.intitule for o in manifest.outcomes.values() if o.numero == "15_AF_0000"} == {f"Changée {count}"}
    # 1 and 2 changed: 2 and 4 changes, the base linked; 3 changed: 6 changes, a new base; 4 changed (three
    # of them anew): 8 changes from that base, another one.
    assert base_inodes[0] == base_inodes[1] == base_inodes[2]
    assert len(set(base_inodes[2:])) == 3
    added, gone = incremental._load_outcomes_file(folder / ".cache" / "build" / incremental.CHANGES_NAME)
    assert (gone, added) == ([], {})


def _every_field_set() -> list[incremental.Outcome]:
    """Outcomes whose every field holds a value other than its default, as a build can make them."""
    origin = Origin("content/a.xml", 12)
    place = Place("Toulouse", "31000", "31", "76", 43.6, 1.44)
    entry = Entry(
        ref="15_AF_0000910001", intitule="Soudeur <b>&amp;</b> tuyauteur", datemaj="20261020", siret="12345678901234",
        organisme="UT2J FC", raison_sociale="Université", places=(place, Place("Albi", "81000", "81", "76")),
        archived=True, statut=Statut.VALIDEE, origin=Origin("content/a.xml", 13), carif="15", certifiante=True,
        eligible_cpf=True, a_distance=True, entrees_sorties_permanentes=True, financeurs=("2", "10"),
        rncp=("RNCP1",), action_numeros=("A1",), session_numeros=("S1", "S2"), action_sessions=(("A1", "S1"),),
        debuts=("20270101",), prochaine_session="20270101", motif_refus="doublon",
    )
    problems = (Problem(origin, "15_AF_0000910001", "action[1]/session[1]", "ancienne", Severity.WARNING),
                Problem(Origin("content/a.xml", 14), "15_AF_0000910001", "intitule", "vide"))
    full = incremental.Outcome(
        b"d" * 16, "15_AF_0000910001", origin, problems[1:], problems, Statut.REFUSEE, "doublon", entry,
        title_key="soudeur tuyauteur", since=dt.date(2026, 11, 29), until=dt.date(2027, 1, 2),
    )
    same_origin = replace(full, digest=b"e" * 16, entry=replace(entry, origin=origin, places=(place,)), until=None)
    refused = incremental.Outcome(b"f" * 16, "-", origin, problems[1:], since=dt.date(2026, 11, 29))
    # Equal, yet not the same value: neither place may come back as the other.
    zeros = [replace(full, digest=bytes([n]) * 16, entry=replace(entry, places=(Place("Nulle", "00000", None, None, 0.0, lon),)))
             for n, lon in ((1, 0.0), (2, -0.0))]
    return [full, same_origin, refused, *zeros]


def test_the_outcomes_are_written_and_read_back_whole(tmp_path):
    """Every field of an outcome and of its entry survives the manifest's rows (a field added later without
    them following fails here: marshal refuses a value it does not know, or it comes back different)."""
    outcomes = _every_field_set()
    for value in (outcomes[0], outcomes[0].entry):
        assert [f.name for f in fields(value) if getattr(value, f.name) == f.default] == []
    incremental._dump_outcomes(tmp_path / "rows", outcomes, gone=[b"g" * 16])
    read, gone = incremental._load_outcomes_file(tmp_path / "rows")
    assert gone == [b"g" * 16]
    assert list(read.values()) == outcomes and list(read) == [o.digest for o in outcomes]
    again = read[b"e" * 16]
    assert again.entry.origin is again.origin  # written once, one object again
    assert read[b"d" * 16].entry.places[0] is again.entry.places[0]  # a place shared by formations is made once
    assert [str(read[bytes([n]) * 16].entry.places[0].longitude) for n in (1, 2)] == ["0.0", "-0.0"]
