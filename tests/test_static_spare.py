"""The full build's spare folder of the static search: what the first rebuild takes over.

A full build links the files of the subfolders of its search folder, and those of its cache,
into ``.cache/static-search/spare/`` (never served). The first rebuild after it, which has no
build before the published one to take over, takes that spare over instead of linking every
file one by one: it gives a full build's bytes all the same, and never touches the published build.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from catalogue.lheo_export import write_lheo
from catalogue.search import static
from catalogue.search.static import CACHE_DIR, SITE_DIR

from factories import make_formation
from test_static_incremental import catalogue, retitled, run_build, tree


def files_of(folder: Path) -> dict[str, tuple[int, bytes]]:
    """Every file under ``folder``: its inode and bytes."""
    return {p.relative_to(folder).as_posix(): (p.stat().st_ino, p.read_bytes()) for p in folder.rglob("*") if p.is_file()}


def published(build_dir: Path) -> Path:
    return (build_dir / "current").resolve()


def spare_of(folder: Path) -> Path:
    return folder / CACHE_DIR / static.SPARE_DIR


@pytest.fixture
def linked(monkeypatch) -> list[int]:
    """The number of files each _link_all call linked."""
    counts: list[int] = []
    original = static._link_all

    def link_all(source, target, names):
        counts.append(len(names))
        return original(source, target, names)

    monkeypatch.setattr(static, "_link_all", link_all)
    return counts


def full_build(tmp_path: Path, items) -> tuple[Path, Path]:
    content = tmp_path / "content"
    content.mkdir(exist_ok=True)
    write_lheo(items, content / "a.xml")
    build_dir = tmp_path / "build"
    run_build(content, build_dir)
    return content, build_dir


def same_as_full(tmp_path: Path, content: Path, folder: Path, name: str) -> None:
    run_build(content, tmp_path / name, full=True)
    assert tree(folder) == tree(published(tmp_path / name))


def test_a_full_build_links_its_search_and_cache_files_into_its_spare(tmp_path):
    _, build_dir = full_build(tmp_path, catalogue())
    first = published(build_dir)
    spare = spare_of(first)
    search = first / "site" / SITE_DIR
    wanted = {p.relative_to(search).as_posix() for p in search.rglob("*") if p.is_file() and p.parent != search}
    assert wanted and {p.relative_to(spare / SITE_DIR).as_posix() for p in (spare / SITE_DIR).rglob("*") if p.is_file()} == wanted
    for name in wanted:
        assert os.path.samefile(spare / SITE_DIR / name, search / name)
        assert os.stat(search / name).st_nlink == 2
    for name in ("index.html", "manifest.json", static.SCRIPT):  # rewritten by every build: no spare
        assert os.stat(search / name).st_nlink == 1
    cache = first / CACHE_DIR
    cached = {p.relative_to(cache).as_posix() for sub in ("records", "terms") for p in (cache / sub).iterdir()}
    assert cached and {p.relative_to(spare / "cache").as_posix() for p in (spare / "cache").rglob("*") if p.is_file()} == cached
    assert all(os.path.samefile(spare / "cache" / name, cache / name) for name in cached)


def test_the_first_rebuild_takes_the_spare_over_and_gives_a_full_builds_bytes(tmp_path, linked):
    items = catalogue()
    content, build_dir = full_build(tmp_path, items)
    first = published(build_dir)
    spare = spare_of(first)
    folders = [(spare / sub).stat().st_ino for sub in (SITE_DIR, "cache")]
    site_before, cache_before = files_of(first / "site"), files_of(first / CACHE_DIR)
    total = len(tree(first))

    write_lheo([retitled(f, f.intitule_formation + " bis") if i == 25 else f for i, f in enumerate(items)], content / "a.xml")
    linked.clear()
    report = run_build(content, build_dir)
    second = published(build_dir)
    assert report.incremental and second != first
    # The spare folders became the rebuild's search folder and cache: a few files linked, not every one.
    assert [(second / "site" / SITE_DIR).stat().st_ino, (second / CACHE_DIR).stat().st_ino] == folders
    assert sum(linked) < 10 < total, linked
    # The published build is as it was, but for its spare, gone.
    assert files_of(first / "site") == site_before
    assert {n: v for n, v in cache_before.items() if not n.startswith(static.SPARE_DIR + "/")} == files_of(first / CACHE_DIR)
    assert not list(spare.rglob("*")) or not any(p.is_file() for p in spare.rglob("*"))
    # Unchanged files are the published build's very files; the rebuild has no spare of its own.
    search, before = second / "site" / SITE_DIR, first / "site" / SITE_DIR
    kept = [n for n in tree(second) if (before / n).exists() and os.path.samefile(search / n, before / n)]
    assert len(kept) > total - 15
    assert not spare_of(second).exists()
    same_as_full(tmp_path, content, second, "full1")

    # The second rebuild takes over the full build's folders, as before.
    folder = before.stat().st_ino
    write_lheo([retitled(f, "Maçon coffreur") if i == 3 else f for i, f in enumerate(items)], content / "a.xml")
    linked.clear()
    run_build(content, build_dir)
    third = published(build_dir)
    assert (third / "site" / SITE_DIR).stat().st_ino == folder
    assert sum(linked) < 20, linked
    same_as_full(tmp_path, content, third, "full2")


def test_formations_added_and_removed_in_the_first_rebuild(tmp_path):
    items = catalogue()
    content, build_dir = full_build(tmp_path, items)
    first = published(build_dir)
    site_before = files_of(first / "site")
    added = make_formation(numero="15_AF_0000000900", intitule="Soudeur tuyauteur", certifications=[{"code_rncp": "RNCP30001"}])
    write_lheo([f for i, f in enumerate(items) if i != 7] + [added], content / "a.xml")
    run_build(content, build_dir)
    assert files_of(first / "site") == site_before
    same_as_full(tmp_path, content, published(build_dir), "full")


def test_a_spare_short_of_files_or_holding_others(tmp_path, linked):
    """A spare's file that is not the published build's very file is replaced, a missing one linked."""
    items = catalogue()
    content, build_dir = full_build(tmp_path, items)
    first = published(build_dir)
    spare = spare_of(first) / SITE_DIR
    names = sorted(p.relative_to(spare).as_posix() for p in spare.rglob("*") if p.is_file())
    for name in names[:3]:
        (spare / name).unlink()
    for name in names[3:6]:
        (spare / name).unlink()
        (spare / name).write_text("autre chose")
    (spare / names[6]).with_name("orphelin.json").write_text("{}")
    for name in sorted(p.relative_to(spare_of(first) / "cache").as_posix() for p in (spare_of(first) / "cache").rglob("*")
                       if p.is_file())[:2]:
        (spare_of(first) / "cache" / name).unlink()
    site_before = files_of(first / "site")
    write_lheo([retitled(f, f.intitule_formation + " bis") if i == 25 else f for i, f in enumerate(items)], content / "a.xml")
    linked.clear()
    run_build(content, build_dir)
    second = published(build_dir)
    assert files_of(first / "site") == site_before
    assert 8 <= sum(linked) < 25, linked
    search = second / "site" / SITE_DIR
    for name in names[:6]:
        assert os.path.samefile(search / name, first / "site" / SITE_DIR / name) or name in tree(second)
    assert not (search / names[6]).with_name("orphelin.json").exists()
    same_as_full(tmp_path, content, second, "full")


def test_a_first_rebuild_failing_after_taking_the_spare_over(tmp_path, monkeypatch):
    items = catalogue()
    content, build_dir = full_build(tmp_path, items)
    first = published(build_dir)
    site_before = files_of(first / "site")
    cache_before = {n: v for n, v in files_of(first / CACHE_DIR).items() if not n.startswith(static.SPARE_DIR + "/")}
    write_lheo([retitled(f, f.intitule_formation + " bis") if i == 25 else f for i, f in enumerate(items)], content / "a.xml")
    with monkeypatch.context() as patch:
        def fail(*args, **kwargs):
            raise RuntimeError("tué")

        patch.setattr(static, "_write_manifest_and_page", fail)
        with pytest.raises(RuntimeError, match="tué"):
            run_build(content, build_dir)
    assert published(build_dir) == first
    assert files_of(first / "site") == site_before
    assert {n: v for n, v in files_of(first / CACHE_DIR).items() if not n.startswith(static.SPARE_DIR + "/")} == cache_before
    run_build(content, build_dir)  # without a spare: every file linked
    second = published(build_dir)
    assert second != first and files_of(first / "site") == site_before
    same_as_full(tmp_path, content, second, "full")
