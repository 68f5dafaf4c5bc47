"""Incremental builds: what is reused, what is redone, and that the result is a full build's."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import shutil
from pathlib import Path

import pytest

from catalogue import build as build_module
from catalogue.build import BUILD_GC_THRESHOLD, SINKS, BuildOptions, build, published_build
from catalogue.incremental import BUCKETS, Manifest, link_file, link_tree, valid_until
from catalogue.lheo_export import write_lheo
from catalogue.settings import Settings

from factories import action, make_formation, organisme, session

TODAY = dt.date(2026, 11, 29)
OTHER_SIRET = "13002802600016"


class Recorder:
    """A sink that remembers what the build gave it."""

    calls: list[tuple[str, str]] = []

    def __init__(self, context):
        self.context = context
        Recorder.previous = context.previous

    def add(self, formation, entry):
        Recorder.calls.append(("add", entry.ref))

    def keep(self, entry):
        Recorder.calls.append(("keep", entry.ref))

    def finish(self, catalog):
        Recorder.finished = [e.ref for e in catalog.entries]


@pytest.fixture
def recorder(monkeypatch):
    monkeypatch.setitem(SINKS, "recorder", Recorder)
    Recorder.calls = []
    return Recorder


def formations(count: int, changed: dict | None = None) -> list:
    changed = changed or {}
    return [
        make_formation(numero=f"15_AF_{i:04d}", intitule=changed.get(i, f"Formation numéro {i}"))
        for i in range(count)
    ]


def write(path: Path, items) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_lheo(items, path)
    return path


def run(content: Path, build_dir: Path, sinks=("recorder",), today=TODAY, **kwargs):
    options = BuildOptions(content=(content,), build_dir=build_dir, today=today, **kwargs)
    return build(options, Settings(), sinks=list(sinks) if sinks is not None else None)


def calls(recorder) -> dict[str, list[str]]:
    result: dict[str, list[str]] = {"add": [], "keep": []}
    for kind, ref in recorder.calls:
        result[kind].append(ref)
    recorder.calls = []
    return result


# --------------------------------------------------------------------------
# What is reused
# --------------------------------------------------------------------------


def test_a_second_build_of_the_same_input_writes_nothing(tmp_path, recorder):
    content = write(tmp_path / "content" / "a.xml", formations(5))
    first = run(content, tmp_path / "build")
    assert not first.incremental and first.rendered == 5
    assert calls(recorder)["add"] == [f"15_AF_{i:04d}" for i in range(5)]
    published = published_build(tmp_path / "build")
    second = run(content, tmp_path / "build")
    assert second.incremental and second.unchanged and second.reused == 5 and second.rendered == 0
    assert calls(recorder) == {"add": [], "keep": []}  # the sinks were not even opened
    assert published_build(tmp_path / "build") == published
    assert [p.name for p in (tmp_path / "build" / ".builds").iterdir()] == [published.name]
    assert second.published == 5 and second.read == 5


def test_the_collector_runs_less_often_during_a_build_only(tmp_path, recorder, monkeypatch):
    import gc

    seen = []
    monkeypatch.setattr(recorder, "add", lambda self, formation, entry: seen.append(gc.get_threshold()[0]), raising=False)
    before = gc.get_threshold()
    run(write(tmp_path / "content" / "a.xml", formations(2)), tmp_path / "build")
    assert seen == [BUILD_GC_THRESHOLD] * 2 and BUILD_GC_THRESHOLD > before[0]
    assert gc.get_threshold() == before


def test_a_build_where_nothing_changed_does_not_load_the_communes(tmp_path, recorder):
    from catalogue.regions import geo

    content = write(tmp_path / "content" / "a.xml", formations(3))
    run(content, tmp_path / "build")
    geo.cache_clear()
    assert run(content, tmp_path / "build").unchanged
    assert geo.cache_info().currsize == 0  # 37,000 communes: a third of a second for nothing


def test_unchanged_formations_before_the_first_change_are_kept(tmp_path, recorder):
    content = write(tmp_path / "content" / "a.xml", formations(5))
    run(content, tmp_path / "build")
    calls(recorder)
    write(content, formations(5, changed={4: "La dernière a changé"}))
    report = run(content, tmp_path / "build")
    assert not report.unchanged
    assert recorder.previous is not None and recorder.previous.refs == {f"15_AF_{i:04d}" for i in range(5)}
    assert calls(recorder) == {"add": ["15_AF_0004"], "keep": [f"15_AF_{i:04d}" for i in range(4)]}


def test_a_removed_formation_alone_is_a_change(tmp_path, recorder):
    content = write(tmp_path / "content" / "a.xml", formations(3))
    run(content, tmp_path / "build")
    calls(recorder)
    write(content, formations(2))
    report = run(content, tmp_path / "build")
    assert not report.unchanged and report.removed == 1
    assert calls(recorder)["keep"] == ["15_AF_0000", "15_AF_0001"]
    assert recorder.finished == ["15_AF_0000", "15_AF_0001"]


def test_only_the_changed_formation_is_given_whole(tmp_path, recorder):
    content = write(tmp_path / "content" / "a.xml", formations(5))
    run(content, tmp_path / "build")
    calls(recorder)
    write(content, formations(5, changed={2: "Formation entièrement nouvelle"}))
    report = run(content, tmp_path / "build")
    seen = calls(recorder)
    assert seen["add"] == ["15_AF_0002"]
    assert seen["keep"] == ["15_AF_0000", "15_AF_0001", "15_AF_0003", "15_AF_0004"]
    assert (report.rendered, report.reused, report.removed) == (1, 4, 0)


def test_removed_and_added_formations(tmp_path, recorder):
    content = write(tmp_path / "content" / "a.xml", formations(4))
    run(content, tmp_path / "build")
    calls(recorder)
    items = formations(4)[1:] + [make_formation(numero="15_AF_9999", intitule="Arrivée")]
    write(content, items)
    report = run(content, tmp_path / "build")
    assert calls(recorder)["add"] == ["15_AF_9999"]
    assert report.removed == 1
    assert "15_AF_0000" not in recorder.finished and "15_AF_9999" in recorder.finished


def test_a_formation_moved_down_the_file_keeps_its_problems_at_their_new_line(tmp_path, recorder):
    # A place of training outside the Carif-Oref's région gives a warning, cached with its line.
    far = make_formation(numero="15_AF_0100", intitule="Loin", actions=[action(lieux=[{
        "lignes": ["1 rue"], "codepostal": "37000", "ville": "Tours", "departement": "37", "region": "24"}])])
    content = write(tmp_path / "content" / "a.xml", [far])
    first = run(content, tmp_path / "build")
    before = [w for w in first.warnings if w.numero == "15_AF_0100"]
    assert before, "the fixture must give a warning"
    calls(recorder)
    write(content, formations(3) + [far])
    second = run(content, tmp_path / "build")
    assert calls(recorder)["keep"] == ["15_AF_0100"]
    after = [w for w in second.warnings if w.numero == "15_AF_0100"]
    assert [w.message for w in after] == [w.message for w in before]
    full = run(content, tmp_path / "full", full=True)
    assert after == [w for w in full.warnings if w.numero == "15_AF_0100"]
    assert after[0].origin.line > before[0].origin.line


def test_a_session_ending_makes_the_formation_be_redone(tmp_path, recorder):
    ending = make_formation(numero="15_AF_0007", actions=[action(sessions=[session("20260101", "20261215")])])
    content = write(tmp_path / "content" / "a.xml", formations(2) + [ending])
    run(content, tmp_path / "build")
    calls(recorder)
    same_day = run(content, tmp_path / "build", today=dt.date(2026, 12, 15))
    assert calls(recorder)["add"] == [] and same_day.archived == 0
    next_day = run(content, tmp_path / "build", today=dt.date(2026, 12, 16))
    assert calls(recorder)["add"] == ["15_AF_0007"]
    assert next_day.archived == 1


def test_valid_until_is_the_day_after_the_next_end():
    formation = make_formation(actions=[action(sessions=[session("20260101", "20261215"), session("20260101", "202703" + "00")])])
    assert valid_until(formation, TODAY) == dt.date(2026, 12, 16)
    assert valid_until(formation, dt.date(2026, 12, 16)) == dt.date(2027, 4, 1)  # AAAAMM00 ends with its month
    assert valid_until(formation, dt.date(2027, 4, 1)) is None


def test_other_settings_mean_a_full_build(tmp_path, recorder):
    content = write(tmp_path / "content" / "a.xml", formations(3))
    run(content, tmp_path / "build")
    calls(recorder)
    options = BuildOptions(content=(content,), build_dir=tmp_path / "build", today=TODAY)
    report = build(options, Settings(site_name="Un autre catalogue"), sinks=["recorder"])
    assert not report.incremental and len(calls(recorder)["add"]) == 3


def test_full_option_and_a_sink_without_keep_mean_a_full_build(tmp_path, recorder, monkeypatch):
    content = write(tmp_path / "content" / "a.xml", formations(3))
    run(content, tmp_path / "build")
    assert not run(content, tmp_path / "build", full=True).incremental

    class NoKeep:  # a sink of before incremental builds
        def __init__(self, context):
            pass

        def add(self, formation, entry):
            pass

        def finish(self, catalog):
            pass

    monkeypatch.setitem(SINKS, "nokeep", NoKeep)
    run(content, tmp_path / "build", sinks=("recorder", "nokeep"))
    assert not run(content, tmp_path / "build", sinks=("recorder", "nokeep")).incremental


def test_an_unreadable_manifest_means_a_full_build(tmp_path, recorder):
    content = write(tmp_path / "content" / "a.xml", formations(3))
    run(content, tmp_path / "build")
    bucket = next((published_build(tmp_path / "build") / ".cache" / "build").glob("outcomes-*.marshal"))
    bucket.write_bytes(b"not a marshal")
    assert not run(content, tmp_path / "build").incremental


def test_a_damaged_previous_build_is_rebuilt_in_full(tmp_path):
    content = write(tmp_path / "content" / "a.xml", formations(3))
    run(content, tmp_path / "build", sinks=None)
    first = published_build(tmp_path / "build")
    for page in (first / "site" / "formations").glob("*.html"):
        page.unlink()  # someone cleaned the published folder by hand
    report = run(content, tmp_path / "build", sinks=None)
    assert not report.incremental and report.rendered == 3
    assert (tmp_path / "build" / "site" / "formations" / "15_AF_0001.html").is_file()


# --------------------------------------------------------------------------
# The result is a full build's
# --------------------------------------------------------------------------


def tree_digest(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_incremental_build_equals_full_build_after_additions_changes_and_deletions(tmp_path):
    content = tmp_path / "content"
    base = formations(12)
    base.append(make_formation(numero="15_AF_0500", intitule="Seule de son organisme",
                               org=organisme(siret=OTHER_SIRET, nom="Organisme qui part")))
    write(content / "a.xml", base[:7])
    write(content / "b.xml", base[7:])
    run(content, tmp_path / "inc", sinks=None)
    # Changes: one intitule, one removal (the only formation of its organisme), one addition,
    # one formation whose session ends by the new day, and one moved to the other file.
    changed = formations(12, changed={3: "Technicien de maintenance industrielle"})
    changed[5] = make_formation(numero="15_AF_0005", actions=[action(sessions=[session("20260101", "20261201")])])
    changed.append(make_formation(numero="15_AF_0777", intitule="Nouvelle formation de soudeur"))
    write(content / "a.xml", changed[:6] + changed[12:])
    write(content / "b.xml", changed[6:12])
    later = dt.date(2026, 12, 2)
    incremental = run(content, tmp_path / "inc", sinks=None, today=later)
    full = run(content, tmp_path / "full", sinks=None, today=later)
    assert incremental.incremental and incremental.reused > 0
    assert incremental.removed == 1
    assert not full.incremental
    inc_tree = tree_digest(tmp_path / "inc" / "site")
    full_tree = tree_digest(tmp_path / "full" / "site")
    assert inc_tree.keys() == full_tree.keys()
    assert {name for name in inc_tree if inc_tree[name] != full_tree[name]} == set()
    assert not (tmp_path / "inc" / "site" / "organismes" / f"{OTHER_SIRET}.html").exists()


# --------------------------------------------------------------------------
# Links and pruning
# --------------------------------------------------------------------------


def test_link_file_shares_the_bytes_and_link_tree_the_folders(tmp_path):
    source = tmp_path / "a" / "x" / "f.txt"
    source.parent.mkdir(parents=True)
    source.write_text("contenu")
    link_file(source, tmp_path / "b" / "deep" / "f.txt")
    assert os.path.samefile(source, tmp_path / "b" / "deep" / "f.txt")
    assert link_tree(tmp_path / "a", tmp_path / "c") == 1
    assert os.path.samefile(source, tmp_path / "c" / "x" / "f.txt")


def test_old_builds_go_to_the_trash_and_are_deleted_in_the_background(tmp_path, recorder):
    content = write(tmp_path / "content" / "a.xml", formations(2))
    for count in range(2, 6):
        write(content, formations(count))
        run(content, tmp_path / "build")
    builds = sorted(p.name for p in (tmp_path / "build" / ".builds").iterdir())
    assert len(builds) == build_module.KEEP_BUILDS
    assert published_build(tmp_path / "build").name == builds[-1]
    trash = tmp_path / "build" / build_module.TRASH_DIR
    for _ in range(100):  # the deleting process runs on its own
        if not trash.exists() or not any(trash.iterdir()):
            break
        import time

        time.sleep(0.05)
    assert not trash.exists() or not any(trash.iterdir())


def test_manifest_records_what_was_published(tmp_path, recorder):
    content = write(tmp_path / "content" / "a.xml", formations(3))
    run(content, tmp_path / "build")
    folder = published_build(tmp_path / "build")
    key = build_module.build_key(Settings(), ["recorder"])
    manifest = Manifest.load(folder, key)
    assert manifest is not None and sorted(manifest.published) == ["15_AF_0000", "15_AF_0001", "15_AF_0002"]
    assert Manifest.load(folder, "another key") is None
    shutil.rmtree(folder / ".cache")
    assert Manifest.load(folder, key) is None


def test_the_cli_summary_says_what_was_reused(tmp_path):
    from click.testing import CliRunner

    from catalogue.cli import main

    content = write(tmp_path / "content" / "a.xml", formations(3))
    args = ["build", "--content", str(content), "--build", str(tmp_path / "build"), "--today", TODAY.isoformat()]
    first = CliRunner().invoke(main, args)
    assert first.exit_code == 0, first.output
    assert "Build complet : 3 formation(s) rendue(s)" in first.output
    again = CliRunner().invoke(main, args)
    assert "Rien n'a changé depuis le build publié" in again.output
    write(content, formations(3, changed={1: "Autre intitulé"}))
    changed = CliRunner().invoke(main, args)
    assert "Build incrémental : 1 formation(s) rendue(s), 2 reprise(s)" in changed.output
    full = CliRunner().invoke(main, args + ["--full"])
    assert "Build complet : 3 formation(s) rendue(s)" in full.output
    quiet = CliRunner().invoke(main, args + ["--full", "--quiet"])
    assert quiet.exit_code == 0 and quiet.output == ""


def test_templates_compiled_by_a_build_are_not_compiled_again(tmp_path, monkeypatch):
    from jinja2 import Environment, FileSystemLoader

    content = tmp_path / "content"
    write(content / "a.xml", formations(3))
    run(content, tmp_path / "build", sinks=None)
    assert any((tmp_path / "build" / ".templates").iterdir())
    compiled = []
    original = Environment.compile
    monkeypatch.setattr(Environment, "compile", lambda self, *a, **k: compiled.append(a) or original(self, *a, **k))
    write(content / "a.xml", formations(3, changed={1: "Soudeur"}))
    assert not run(content, tmp_path / "build", sinks=None).unchanged
    assert compiled == []
    # A template whose source changed is compiled again, not taken from the cache.
    source = FileSystemLoader.get_source
    monkeypatch.setattr(FileSystemLoader, "get_source",
                        lambda self, env, name: (source(self, env, name)[0] + "\n", None, lambda: True))
    write(content / "a.xml", formations(3, changed={1: "Soudeur", 2: "Maçon"}))
    run(content, tmp_path / "build", sinks=None, full=True)
    assert compiled



def test_a_rebuild_takes_over_the_fiches_of_the_build_before_the_published_one(tmp_path):
    """The third build and later take the fiches folder of the build before the published one (no link per fiche)
    and fix what changed since: the result is still a full build's, and the published build is never touched."""
    content = tmp_path / "content"
    builds = tmp_path / "inc" / ".builds"
    write(content / "a.xml", formations(8))
    run(content, tmp_path / "inc", sinks=None)
    versions = [
        formations(8, changed={1: "Soudeur"}),  # the second build links every fiche
        formations(8, changed={1: "Soudeur", 2: "Maçon"})[:7] + [make_formation(numero="15_AF_0900")],
        formations(8, changed={2: "Maçon", 5: "Couvreur"})[:6],
        formations(8, changed={2: "Maçon", 5: "Couvreur"})[:6],  # nothing changed: no new build
        formations(8),
    ]
    for number, items in enumerate(versions):
        oldest = sorted(builds.iterdir())[0]
        folder = (oldest / "site" / "formations").stat().st_ino
        published = published_build(tmp_path / "inc")
        before = tree_digest(published / "site")
        write(content / "a.xml", items)
        report = run(content, tmp_path / "inc", sinks=None)
        assert tree_digest(published / "site") == before  # the published build stays as it was
        full = run(content, tmp_path / f"full{number}", sinks=None)
        assert tree_digest(published_build(tmp_path / "inc") / "site") == tree_digest(published_build(tmp_path / f"full{number}") / "site")
        if number >= 1 and not report.unchanged:  # the oldest build's folder, taken over
            assert (published_build(tmp_path / "inc") / "site" / "formations").stat().st_ino == folder
        assert report.incremental and not full.incremental


def test_fiches_are_linked_when_the_listing_inodes_cannot_be_trusted(tmp_path, monkeypatch):
    """A file system whose listing gives other inodes than stat (an overlay without xino): no folder is
    taken over, every fiche is linked, and the result is a full build's."""
    import os

    from catalogue import render

    folder = tmp_path / "listed"
    folder.mkdir()
    (folder / "a.html").write_text("a")
    assert render._inodes(str(folder)) == {"a.html": (folder / "a.html").stat().st_ino}
    real = os.scandir

    class Entry:
        def __init__(self, entry):
            self._entry, self.name, self.path = entry, entry.name, entry.path

        def is_dir(self, **kwargs):
            return self._entry.is_dir(**kwargs)

        def inode(self):
            return self._entry.inode() + 1  # not the file's own

        def stat(self, **kwargs):
            return self._entry.stat(**kwargs)

    class Listing:
        def __init__(self, path):
            self._listing = real(path)

        def __enter__(self):
            return (Entry(e) for e in self._listing)

        def __exit__(self, *exc):
            self._listing.close()

    with monkeypatch.context() as patch:
        patch.setattr(os, "scandir", Listing)
        assert render._inodes(str(folder)) is None

    monkeypatch.setattr(render, "_inodes", lambda folder: None)
    content = tmp_path / "content"
    for changed in ({}, {1: "Soudeur"}, {1: "Soudeur", 2: "Maçon"}):
        if (tmp_path / "inc").exists():  # the fiches folder the third build would take over
            taken = (sorted((tmp_path / "inc" / ".builds").iterdir())[0] / "site" / "formations").stat().st_ino
        write(content / "a.xml", formations(4, changed=changed))
        run(content, tmp_path / "inc", sinks=None)
    published = published_build(tmp_path / "inc")
    assert (published / "site" / "formations").stat().st_ino != taken
    run(content, tmp_path / "full", sinks=None)
    assert tree_digest(published / "site") == tree_digest(published_build(tmp_path / "full") / "site")


def test_the_first_rebuild_takes_over_the_full_builds_spare_folders(tmp_path):
    """A full build leaves hard links of its fiches and organisme pages outside its site; the first rebuild,
    which has no build before the published one, takes them over instead of linking every file."""
    from catalogue import render

    content = tmp_path / "content"
    write(content / "a.xml", formations(8) + [make_formation(numero="15_AF_0100", org=organisme(siret=OTHER_SIRET))])
    run(content, tmp_path / "inc", sinks=None)
    full_build = published_build(tmp_path / "inc")
    spare = full_build / render.CACHE_DIR / render.SPARE_DIR
    folders = {name: (spare / name).stat().st_ino for name in render.TAKEN_OVER}
    assert {p.name for p in (spare / "formations").iterdir()} == {p.name for p in (full_build / "site" / "formations").iterdir()}
    before = tree_digest(full_build / "site")
    write(content / "a.xml", formations(8, changed={1: "Soudeur"}) + [make_formation(numero="15_AF_0200")])
    report = run(content, tmp_path / "inc", sinks=None)
    assert report.incremental and tree_digest(full_build / "site") == before  # the published build untouched
    rebuilt = published_build(tmp_path / "inc") / "site"
    assert {name: (rebuilt / name).stat().st_ino for name in render.TAKEN_OVER} == folders
    assert not (spare / "formations").exists()
    for ref in ("15_AF_0000", "15_AF_0002"):  # unchanged: the full build's very files
        assert (rebuilt / "formations" / f"{ref}.html").stat().st_ino == (full_build / "site" / "formations" / f"{ref}.html").stat().st_ino
    assert not (rebuilt / "organismes" / f"{OTHER_SIRET}.html").exists()  # its only formation left
    run(content, tmp_path / "full", sinks=None)
    assert tree_digest(rebuilt) == tree_digest(published_build(tmp_path / "full") / "site")


def test_a_rebuild_failing_after_taking_over_the_spare_leaves_the_published_site_as_it_was(tmp_path, monkeypatch):
    from catalogue import render

    content = tmp_path / "content"
    write(content / "a.xml", formations(6))
    run(content, tmp_path / "inc", sinks=None)
    published = published_build(tmp_path / "inc")
    before = tree_digest(published / "site")
    write(content / "a.xml", formations(6, changed={2: "Maçon"}))
    with monkeypatch.context() as patch:
        patch.setattr(render.SiteSink, "_save_state", lambda self, *a: (_ for _ in ()).throw(RuntimeError("tué")))
        with pytest.raises(RuntimeError, match="tué"):
            run(content, tmp_path / "inc", sinks=None)
    assert published_build(tmp_path / "inc") == published and tree_digest(published / "site") == before
    assert not (published / render.CACHE_DIR / render.SPARE_DIR / "formations").exists()  # gone with the failed build
    run(content, tmp_path / "inc", sinks=None)  # every fiche linked, as without a spare
    run(content, tmp_path / "full", sinks=None)
    assert tree_digest(published_build(tmp_path / "inc") / "site") == tree_digest(published_build(tmp_path / "full") / "site")
    assert tree_digest(published / "site") == before
