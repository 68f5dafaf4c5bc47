"""The build manifest: its outcomes read on a thread of their own, and what happens when they cannot be read."""

from __future__ import annotations

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
    assert reading.wait(10)  # open() returned while the outcomes are still being read
    assert sorted(manifest.published) == ["15_AF_0000", "15_AF_0001", "15_AF_0002"]
    release.set()
    assert len(manifest.outcomes) == 3


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
