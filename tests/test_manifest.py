"""The build manifest: its outcomes read on a thread of their own, and what happens when they cannot be read."""

from __future__ import annotations

import os
import threading

import pytest

from catalogue import build as build_module
from catalogue import incremental
from catalogue.build import published_build
from catalogue.incremental import Manifest, ManifestUnreadable
from catalogue.settings import Settings

from test_incremental import formations, recorder, run, write  # noqa: F401  (recorder: a fixture)


def test_the_manifest_outcomes_are_read_while_the_build_goes_on(tmp_path, recorder, monkeypatch):
    content = write(tmp_path / "content" / "a.xml", formations(3))
    run(content, tmp_path / "build")
    folder = published_build(tmp_path / "build")
    key = build_module.build_key(Settings(), ["recorder"])
    release, reading = threading.Event(), threading.Event()
    load = incremental._load_outcomes

    def slow(path):
        reading.set()
        assert release.wait(10)
        return load(path)

    monkeypatch.setattr(incremental, "_load_outcomes", slow)
    manifest = Manifest.open(folder, key)
    assert sorted(manifest.published) == ["15_AF_0000", "15_AF_0001", "15_AF_0002"]
    assert not reading.is_set()  # not before the build asks
    manifest.read_in_background()
    assert reading.wait(10)  # returned while the outcomes are still being read
    release.set()
    assert len(manifest.outcomes) == 3


def test_the_published_build_is_checked_before_the_outcomes_are_read(tmp_path, recorder, monkeypatch):
    """Listing its fiches while the thread unpickles would wait for the GIL after every name."""
    content = write(tmp_path / "content" / "a.xml", formations(3))
    run(content, tmp_path / "build")
    events = []
    intact, read = build_module._intact, Manifest.read_in_background
    monkeypatch.setattr(build_module, "_intact", lambda *args: events.append("intact") or intact(*args))
    monkeypatch.setattr(Manifest, "read_in_background", lambda self: events.append("read") or read(self))
    write(content, formations(3, changed={1: "Changée"}))
    assert run(content, tmp_path / "build").incremental
    assert events == ["intact", "read"]


def test_outcomes_unreadable_on_the_thread_mean_a_full_build(tmp_path, recorder):
    content = write(tmp_path / "content" / "a.xml", formations(3))
    run(content, tmp_path / "build")
    folder = published_build(tmp_path / "build")
    key = build_module.build_key(Settings(), ["recorder"])
    for bucket in (folder / ".cache" / "build").glob("outcomes-*.pickle"):
        bucket.write_bytes(b"not a pickle")
    manifest = Manifest.open(folder, key)
    assert manifest is not None  # the key and the Refs were readable
    with pytest.raises(ManifestUnreadable):
        manifest.outcomes
    report = run(content, tmp_path / "build")
    assert not report.incremental and report.published == 3


def _outcome_files(folder):
    return sorted((folder / ".cache" / "build").glob("outcomes-*.pickle"))


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
    gone, added = incremental._load(second / ".cache" / "build" / incremental.CHANGES_NAME)
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
    gone, added = incremental._load(folder / ".cache" / "build" / incremental.CHANGES_NAME)
    assert (gone, added) == ([], {})
