"""The site sink in an incremental build (links to the previous build, memo of the listing pages) and its workers."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import itertools
import multiprocessing
import os
import threading
from pathlib import Path
from typing import Callable, Optional

import pytest

import catalogue.build as build_module
import catalogue.render as render
from catalogue.build import BuildOptions, PreviousBuild, SinkContext, build, published_build
from catalogue.catalog import Catalog, Entry, Place, summarize
from catalogue.lheo_export import write_lheo
from catalogue.model import Adresse, Formation, Statut
from catalogue.problems import Origin
from catalogue.regions import geo
from catalogue.render import Site, SiteSink
from catalogue.settings import Settings
from factories import (
    ADRESSE_MONTPELLIER,
    ADRESSE_TOULOUSE,
    ADRESSE_TOURS,
    SIRET_TOULOUSE,
    SIRET_VEIGNE,
    action,
    make_formation,
    organisme,
    session,
)

TODAY = dt.date(2026, 11, 29)
SIRET_GONE = "13002802600016"  # an organisme whose only formation is deleted
SIRET_NEW = "35600000000006"  # an organisme that appears


def entry_of(formation: Formation, today: dt.date = TODAY, line: int = 1) -> Entry:
    return summarize(
        formation, origin=Origin("a.xml", line), statut=Statut.VALIDEE, today=today, settings=Settings(), geo=geo()
    )


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def digest(root: Path) -> dict[str, str]:
    return {name: hashlib.sha256(data).hexdigest() for name, data in tree(root).items()}


def same_file(a: Path, b: Path) -> bool:
    return os.stat(a).st_ino == os.stat(b).st_ino


# --------------------------------------------------------------------------
# The catalogue before and after: additions, changes, deletions
# --------------------------------------------------------------------------


def before() -> list[Formation]:
    return [
        # Toulouse's smallest Ref carries the address its page shows; it is deleted later.
        make_formation(numero="15_AF_0001", org=organisme(adresse=ADRESSE_MONTPELLIER)),
        make_formation(numero="15_AF_0002", intitule="Comptabilité", datemaj="20250601",
                       actions=[action(sessions=[session("20250105", "20250630")])]),
        make_formation(numero="15_AF_0003", intitule="Soudeur"),
        make_formation(numero="15_AF_0004", intitule="Plombier"),
        make_formation(numero="07_AF_0005", intitule="Agent de restauration",
                       org=organisme(siret=SIRET_VEIGNE, nom="AFPA de Veigné", adresse=ADRESSE_TOURS),
                       actions=[action("07_A1", lieux=[ADRESSE_TOURS])]),
        make_formation(numero="07_AF_0006", intitule="Cuisinier",
                       org=organisme(siret=SIRET_VEIGNE, nom="AFPA de Veigné", adresse=ADRESSE_TOURS),
                       actions=[action("07_A1", lieux=[ADRESSE_TOURS])]),
        make_formation(numero="15_AF_0007", intitule="Seule de son organisme",
                       org=organisme(siret=SIRET_GONE, nom="Organisme qui part")),
        make_formation(numero="15_AF_0008", intitule="Menuisier"),
    ]


def after() -> list[Formation]:
    formations = {f.numero: f for f in before()}
    del formations["15_AF_0001"]  # Toulouse's page now shows 15_AF_0002's address
    del formations["15_AF_0007"]  # its organisme disappears
    formations["15_AF_0003"] = make_formation(numero="15_AF_0003", intitule="Soudeur TIG")  # changed
    # Moves from Veigné to a new organisme: both organisme pages change.
    formations["07_AF_0006"] = make_formation(
        numero="07_AF_0006", intitule="Cuisinier",
        org=organisme(siret=SIRET_NEW, nom="Zénith formation", adresse=ADRESSE_TOURS),
        actions=[action("07_A1", lieux=[ADRESSE_TOURS])],
    )
    formations["15_AF_0009"] = make_formation(numero="15_AF_0009", intitule="Électricien")  # added
    return list(formations.values())


UNCHANGED = {"15_AF_0002", "15_AF_0004", "07_AF_0005", "15_AF_0008"}
CHANGED = {"15_AF_0003", "07_AF_0006", "15_AF_0009"}


# --------------------------------------------------------------------------
# Driving the sink as a build would
# --------------------------------------------------------------------------


def sink_build(
    staging: Path,
    formations: list[Formation],
    previous: Optional[PreviousBuild] = None,
    unchanged: frozenset[str] = frozenset(),
    **options,
) -> Path:
    """Feed a SiteSink: add() every formation, or keep() those in ``unchanged``; return the staging folder."""
    staging.mkdir(parents=True)
    sink = SiteSink(SinkContext(staging, Settings(), TODAY, geo(), previous), **options)
    entries = []
    for formation in formations:
        entry = entry_of(formation)
        if formation.numero in unchanged:
            sink.keep(entry)
        else:
            sink.add(formation, entry)
        entries.append(entry)
    sink.finish(Catalog.of(entries, TODAY))
    return staging


def incremental(tmp_path: Path, **options) -> tuple[Path, Path, Path]:
    """The previous build, the incremental one after it, and a full build of the same final input."""
    first = sink_build(tmp_path / "first", before(), **options)
    refs = frozenset(f.numero for f in before())
    second = sink_build(tmp_path / "second", after(), PreviousBuild(first, refs), frozenset(UNCHANGED), **options)
    full = sink_build(tmp_path / "full", after(), **options)
    return first, second, full


def test_incremental_site_is_a_full_builds_byte_for_byte(tmp_path):
    first, second, full = incremental(tmp_path)
    assert digest(second / "site") == digest(full / "site")
    site = second / "site"
    assert not (site / "formations" / "15_AF_0001.html").exists() and not (site / "formations" / "15_AF_0007.html").exists()
    assert not (site / "organismes" / f"{SIRET_GONE}.html").exists() and (site / "organismes" / f"{SIRET_NEW}.html").is_file()
    # The deleted smallest Ref's address is gone from Toulouse's page, the next Ref's shown.
    toulouse = (site / "organismes" / f"{SIRET_TOULOUSE}.html").read_text()
    assert "Montpellier" in (first / "site" / "organismes" / f"{SIRET_TOULOUSE}.html").read_text()
    assert "Montpellier" not in toulouse and "5 allées Antonio Machado" in toulouse


def test_unchanged_fiches_are_links_to_the_previous_build_and_changed_ones_new_files(tmp_path):
    first, second, _ = incremental(tmp_path)
    for ref in UNCHANGED:
        assert same_file(first / "site" / "formations" / f"{ref}.html", second / "site" / "formations" / f"{ref}.html"), ref
    for ref in CHANGED - {"15_AF_0009"}:
        assert not same_file(first / "site" / "formations" / f"{ref}.html", second / "site" / "formations" / f"{ref}.html"), ref


def test_only_the_listing_pages_that_changed_are_written(tmp_path):
    first, second, _ = incremental(tmp_path)
    old, new = first / "site", second / "site"
    linked = {name for name in tree(new) if (old / name).exists() and same_file(old / name, new / name)}
    written = set(tree(new)) - linked
    assert {"publier/index.html", "404.html", "robots.txt", "static/catalogue.css"} <= linked
    # Pages whose content differs were written...
    differ = {name for name, data in tree(new).items() if not (old / name).exists() or (old / name).read_bytes() != data}
    assert differ <= written
    assert {f"organismes/{SIRET_TOULOUSE}.html", f"organismes/{SIRET_VEIGNE}.html",
            f"organismes/{SIRET_NEW}.html", "index.html", "sitemaps/sitemap-1.xml"} <= differ
    # ...and only those, besides the changed fiches (whose bytes may happen to be the same).
    assert written - differ <= {f"formations/{ref}.html" for ref in CHANGED}


def test_an_unchanged_catalogue_is_all_links(tmp_path):
    formations = before()
    first = sink_build(tmp_path / "first", formations)
    refs = frozenset(f.numero for f in formations)
    second = sink_build(tmp_path / "second", formations, PreviousBuild(first, refs), refs)
    names = tree(second / "site")
    assert names.keys() == tree(first / "site").keys()
    assert [n for n in names if not same_file(first / "site" / n, second / "site" / n)] == []


def test_a_full_build_links_nothing_but_its_spare_folders(tmp_path):
    """A full build's pages are its own files; the fiches and organismes folders have a spare copy of links
    outside the site, for the next build to take over."""
    first = sink_build(tmp_path / "first", before())
    spare = first / render.CACHE_DIR / render.SPARE_DIR
    for path in (first / "site").rglob("*"):
        if path.is_file():
            name = path.relative_to(first / "site")
            if name.parts[0] in render.TAKEN_OVER:
                assert os.stat(path).st_nlink == 2 and same_file(path, spare / name), name
            else:
                assert os.stat(path).st_nlink == 1, name
    assert {p.relative_to(spare) for p in spare.rglob("*") if p.is_file()} == {
        p.relative_to(first / "site") for name in render.TAKEN_OVER for p in (first / "site" / name).rglob("*") if p.is_file()
    }


def test_the_cache_is_outside_the_site(tmp_path):
    first = sink_build(tmp_path / "first", before())
    assert (first / render.CACHE_DIR / render.CACHE_FILE).is_file()
    assert not [p for p in (first / "site").rglob("*") if "cache" in p.name]


@pytest.mark.parametrize("damage", ["missing", "not json", "other shape"])
def test_keep_without_the_previous_cache_is_a_missing_file_of_the_previous_build(tmp_path, damage):
    # build.py rebuilds in full when a file of the published build is missing.
    first = sink_build(tmp_path / "first", before())
    cache = first / render.CACHE_DIR / render.CACHE_FILE
    cache.unlink()
    if damage != "missing":
        cache.write_text("{" if damage == "not json" else '{"version": 1, "refs": []}')
    sink = SiteSink(SinkContext(tmp_path / "second", Settings(), TODAY, geo(), PreviousBuild(first, frozenset())))
    with pytest.raises(FileNotFoundError) as excinfo:
        sink.keep(entry_of(before()[1]))
    assert Path(excinfo.value.filename).is_relative_to(first)


def test_other_settings_mean_no_listing_page_reused(tmp_path):
    first = sink_build(tmp_path / "first", before())
    staging = tmp_path / "second"
    staging.mkdir()
    settings = Settings(site_name="Un autre catalogue")
    sink = SiteSink(SinkContext(staging, settings, TODAY, geo(), PreviousBuild(first, frozenset())))
    formations = before()
    for formation in formations:
        sink.add(formation, entry_of(formation))
    sink.finish(Catalog.of([entry_of(f) for f in formations], TODAY))
    assert "Un autre catalogue" in (staging / "site" / "publier" / "index.html").read_text()
    assert not same_file(first / "site" / "404.html", staging / "site" / "404.html")


# --------------------------------------------------------------------------
# Through the build: the same, with the build deciding what is unchanged
# --------------------------------------------------------------------------


def write(path: Path, formations) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_lheo(formations, path)


def run(content: Path, build_dir: Path, today: dt.date = TODAY):
    return build(BuildOptions(content=(content,), build_dir=build_dir, today=today), Settings(), sinks=["site"])


def test_incremental_build_of_the_site_equals_a_full_build(tmp_path):
    content = tmp_path / "content"
    write(content / "a.xml", before())
    run(content, tmp_path / "inc")
    previous = published_build(tmp_path / "inc")
    write(content / "a.xml", after())
    report = run(content, tmp_path / "inc")
    run(content, tmp_path / "full")
    assert report.incremental and report.reused == len(UNCHANGED)
    assert digest(tmp_path / "inc" / "site") == digest(tmp_path / "full" / "site")
    for ref in UNCHANGED:
        assert same_file(previous / "site" / "formations" / f"{ref}.html",
                         tmp_path / "inc" / "site" / "formations" / f"{ref}.html")


# --------------------------------------------------------------------------
# Memo keys: whatever changes a page changes its key
# --------------------------------------------------------------------------


def variants(entry: Entry) -> dict[str, Entry]:
    """The entry with each of its fields changed in turn."""
    result = {}
    for item in dataclasses.fields(Entry):
        value = getattr(entry, item.name)
        if item.name == "origin":
            changed = Origin("b.xml", 99)
        elif item.name == "places":
            changed = (Place("Albi", "81000", "81", "76"),) + value
        elif item.name == "statut":
            changed = Statut.PROPOSEE
        elif isinstance(value, bool):
            changed = not value
        elif item.name == "datemaj":
            changed = "20200101"
        elif isinstance(value, str) or value is None:
            changed = (value or "") + "9"
        elif isinstance(value, tuple):
            changed = value + (value[0] if value else "9",)
        else:
            raise AssertionError(f"no variant for Entry.{item.name}: add one")
        result[item.name] = dataclasses.replace(entry, **{item.name: changed})
    return result


def organisme_page(site: Site, entries: list[Entry], address: str) -> tuple[str, tuple]:
    summary = Catalog.of(entries, TODAY).organismes()[entries[0].siret]
    return site.organisme(summary, render._adresse(address)), site.organisme_inputs(summary, address)


def letter_pages(site: Site, entries: list[Entry]) -> list[tuple[str, tuple]]:
    organismes = Catalog.of(entries, TODAY).organismes()
    letters = site.letters(organismes.values())
    pages = [(site.organismes_page(letters, None, 1, len(organismes)), Site.organismes_page_inputs(letters, None, 1, len(organismes)))]
    for letter in letters:
        pages.append((site.organismes_page(letters, letter, 1, len(organismes)),
                      Site.organismes_page_inputs(letters, letter, 1, len(organismes))))
    return pages


def test_no_change_of_an_entry_alters_a_listing_page_but_not_its_key():
    site = Site(Settings(), TODAY, geo())
    base = [entry_of(f) for f in before() if f.organisme_formation_responsable.siret_organisme_formation == SIRET_TOULOUSE]
    address = Adresse.model_validate(ADRESSE_TOULOUSE).model_dump_json()
    page, key = organisme_page(site, base, address)
    listing = letter_pages(site, base)
    archived = dataclasses.replace(base[0], ref="15_AF_0099", archived=True)
    lists = {f"Entry.{name}": [variant] + base[1:] for name, variant in variants(base[0]).items()}
    lists.update({"one more archived formation": base + [archived], "one formation less": base[1:]})
    shown = set()
    for name, entries in lists.items():
        other_page, other_key = organisme_page(site, entries, address)
        if other_page != page:
            shown.add(name)
            assert other_key != key, f"{name} changes the organisme page but not its memo key"
        for (html, inputs), (other_html, other_inputs) in zip(listing, letter_pages(site, entries)):
            if other_html != html:
                assert other_inputs != inputs, f"{name} changes a list of organismes but not its memo key"
    assert {"Entry.ref", "Entry.intitule", "Entry.archived", "Entry.places"} <= shown  # the variants reach the page
    # The line of a formation in its file is not on the page: moving it must not make its page new.
    assert organisme_page(site, [variants(base[0])["origin"]] + base[1:], address) == (page, key)
    other_address = Adresse.model_validate(ADRESSE_MONTPELLIER).model_dump_json()
    assert organisme_page(site, base, other_address)[1] != key


def test_an_organisme_changing_letter_changes_the_keys_of_the_lists_it_leaves_and_joins():
    site = Site(Settings(), TODAY, geo())
    formations = before()[:6] + [make_formation(numero="15_AF_0010", org=organisme(siret=SIRET_GONE, nom="Alpha"))]
    entries = [entry_of(f) for f in formations]
    renamed = [dataclasses.replace(e, organisme="Uranus") if e.siret == SIRET_GONE else e for e in entries]
    before_pages, after_pages = letter_pages(site, entries), letter_pages(site, renamed)
    assert before_pages[0][0] != after_pages[0][0]  # the index page: A (2) becomes A (1), U (1) becomes U (2)
    assert before_pages[0][1] != after_pages[0][1]


@pytest.mark.parametrize("adresse", [ADRESSE_TOULOUSE, ADRESSE_MONTPELLIER, ADRESSE_TOURS, {"ville": "Albi"}])
def test_the_cached_address_is_the_address(adresse):
    value = Adresse.model_validate(adresse)
    assert render._adresse(value.model_dump_json()) == value
    assert render._adresse(render.NO_ADDRESS) is None


# --------------------------------------------------------------------------
# The fiche workers
# --------------------------------------------------------------------------


def many(count: int) -> list[Formation]:
    return [make_formation(numero=f"15_AF_{i:04d}", intitule=f"Formation numéro {i}") for i in range(count)]


@pytest.fixture
def small_batches(monkeypatch):
    """Batches of 2 fiches, so that a handful of formations goes through the workers: every batch, even when
    the workers are behind (one test lets the build's process render some itself)."""
    monkeypatch.setattr(render, "FICHE_BATCH", 2)
    monkeypatch.setattr(render._FichePool, "full", lambda self: False)
    pools = []
    original = render._FichePool.__init__

    def spy(self, *args, **kwargs):
        pools.append(self)
        original(self, *args, **kwargs)

    monkeypatch.setattr(render._FichePool, "__init__", spy)
    return pools


def our_children(before: set) -> list:
    return [p for p in multiprocessing.active_children() if p.pid not in before]


def test_parallel_fiches_are_the_serial_ones(tmp_path, small_batches):
    formations = many(9)
    serial = sink_build(tmp_path / "serial", formations, workers=0)
    assert small_batches == []
    for workers in (1, 2):
        parallel = sink_build(tmp_path / f"parallel-{workers}", formations, workers=workers)
        assert tree(parallel / "site") == tree(serial / "site")
    assert len(small_batches) == 2


def test_batches_the_workers_have_no_room_for_are_rendered_by_the_build_itself(tmp_path, small_batches, monkeypatch):
    """While the workers are behind, the build renders the next batch itself rather than wait: the same pages."""
    formations = many(9)
    serial = sink_build(tmp_path / "serial", formations, workers=0)
    sent, here = [], []
    submit, render_fiches = render._FichePool.submit, render._render_fiches
    turns = itertools.cycle([True, False])  # every other batch, from the second
    monkeypatch.setattr(render._FichePool, "full", lambda self: next(turns))
    monkeypatch.setattr(render._FichePool, "submit", lambda self, batch: sent.append(batch) or submit(self, batch))
    monkeypatch.setattr(render, "_render_fiches", lambda batch, site=None: here.append(batch) or render_fiches(batch, site))
    parallel = sink_build(tmp_path / "parallel", formations, workers=1)
    assert tree(parallel / "site") == tree(serial / "site")
    assert len(sent) == 3 and len(here) == 2  # 9 fiches: batches 1, 3, 5 (the last, of one) sent; 2 and 4 here


def test_parallel_incremental_build_is_a_full_builds(tmp_path, small_batches):
    _, second, full = incremental(tmp_path, workers=2)
    assert small_batches  # the first build went through the workers
    assert digest(second / "site") == digest(full / "site")


def in_thread(function: Callable[[], None], timeout: float = 60) -> BaseException | None:
    """Run ``function``; fail the test if it hangs; return what it raised."""
    raised: list[BaseException] = []

    def target():
        try:
            function()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            raised.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), "the build hangs"
    return raised[0] if raised else None


def test_an_error_in_a_worker_is_raised_by_the_build(tmp_path, small_batches, monkeypatch):
    fiche = Site.fiche

    def failing(self, formation, entry):
        if entry.ref == "15_AF_0005":
            raise ValueError("gabarit cassé")
        return fiche(self, formation, entry)

    monkeypatch.setattr(Site, "fiche", failing)  # before the fork: the workers inherit it
    existing = {p.pid for p in multiprocessing.active_children()}
    error = in_thread(lambda: sink_build(tmp_path / "b", many(12), workers=2))
    assert isinstance(error, ValueError) and "gabarit cassé" in str(error)
    assert any("15_AF_0005" in note for note in getattr(error, "__notes__", []))
    assert small_batches and our_children(existing) == []


def test_a_worker_that_dies_fails_the_build(tmp_path, small_batches, monkeypatch):
    fiche = Site.fiche

    def dying(self, formation, entry):
        if entry.ref == "15_AF_0003":
            os._exit(3)
        return fiche(self, formation, entry)

    monkeypatch.setattr(Site, "fiche", dying)
    existing = {p.pid for p in multiprocessing.active_children()}
    error = in_thread(lambda: sink_build(tmp_path / "b", many(12), workers=2))
    assert isinstance(error, RuntimeError) and "arrêté brutalement" in str(error)
    assert our_children(existing) == []


def test_abort_stops_the_workers(tmp_path, small_batches):
    existing = {p.pid for p in multiprocessing.active_children()}
    (tmp_path / "b").mkdir()
    sink = SiteSink(SinkContext(tmp_path / "b", Settings(), TODAY, geo()), workers=2)
    for formation in many(6):
        sink.add(formation, entry_of(formation))
    assert len(our_children(existing)) == 2
    sink.abort()
    assert our_children(existing) == []


def test_a_builds_workers_are_niced(tmp_path, small_batches, monkeypatch):
    # They leave a core to the build's own process, which feeds them (build.CHILD_NICENESS).
    fiche = Site.fiche
    ours = os.nice(0)

    def noting(self, formation, entry):
        return fiche(self, formation, entry).replace("</body>", f"<!-- nice {os.nice(0)} --></body>")

    monkeypatch.setattr(Site, "fiche", noting)
    content = tmp_path / "content"
    write(content / "a.xml", many(4))
    run(content, tmp_path / "build")
    assert small_batches  # rendered by the workers
    expected = min(19, ours + build_module.CHILD_NICENESS)
    for page in (tmp_path / "build" / "site" / "formations").glob("*.html"):
        assert f"<!-- nice {expected} -->" in page.read_text(encoding="utf-8")


def test_workers_do_not_hold_the_build_lock(tmp_path, small_batches, monkeypatch):
    # build.py's at-fork hook closes the lock in children, so that a killed build frees it at once.
    fiche = Site.fiche
    build_process = os.getpid()  # holds the lock, and renders a batch itself when the workers are behind

    def checking(self, formation, entry):
        for fd in os.listdir("/proc/self/fd") if os.getpid() != build_process else ():
            try:
                target = os.readlink(f"/proc/self/fd/{fd}")
            except OSError:
                continue
            if target.endswith("/.lock"):
                raise AssertionError(f"a worker holds {target}")
        return fiche(self, formation, entry)

    monkeypatch.setattr(Site, "fiche", checking)
    content = tmp_path / "content"
    write(content / "a.xml", many(8))
    report = run(content, tmp_path / "build")
    assert report.published == 8 and small_batches


# --------------------------------------------------------------------------
# Organisme pages: keyed again only when one of their formations changed, rendered on the workers
# --------------------------------------------------------------------------


@pytest.fixture
def keyed(monkeypatch) -> list[str]:
    """The SIRETs whose organisme page had its inputs made (its memo key computed)."""
    sirets: list[str] = []
    inputs = Site.organisme_inputs

    def spy(summary, adresse_json):
        sirets.append(summary.siret)
        return inputs(summary, adresse_json)

    monkeypatch.setattr(Site, "organisme_inputs", staticmethod(spy))
    return sirets


def test_an_organisme_whose_formations_were_all_kept_is_not_keyed_again(tmp_path, keyed):
    formations = before()
    first = sink_build(tmp_path / "first", formations)
    assert sorted(set(keyed)) == sorted({SIRET_TOULOUSE, SIRET_VEIGNE, SIRET_GONE})
    keyed.clear()
    refs = frozenset(f.numero for f in formations)
    changed = [f.model_copy(update={"intitule_formation": "Cuisinier de collectivité"}) if f.numero == "07_AF_0006" else f
               for f in formations]
    second = sink_build(tmp_path / "second", changed, PreviousBuild(first, refs), refs - {"07_AF_0006"})
    assert keyed == [SIRET_VEIGNE]
    assert same_file(first / "site" / "organismes" / f"{SIRET_TOULOUSE}.html", second / "site" / "organismes" / f"{SIRET_TOULOUSE}.html")
    assert "Cuisinier de collectivité" in (second / "site" / "organismes" / f"{SIRET_VEIGNE}.html").read_text()
    full = sink_build(tmp_path / "full", changed)
    assert digest(second / "site") == digest(full / "site")


def test_an_organisme_that_lost_a_formation_is_keyed_again(tmp_path, keyed):
    # Its other formations are all kept: only their count tells that its page changes.
    first = sink_build(tmp_path / "first", before())
    keyed.clear()
    refs = frozenset(f.numero for f in before())
    formations = [f for f in before() if f.numero != "15_AF_0004"]
    second = sink_build(tmp_path / "second", formations, PreviousBuild(first, refs), refs)
    assert keyed == [SIRET_TOULOUSE]
    assert "15_AF_0004" not in (second / "site" / "organismes" / f"{SIRET_TOULOUSE}.html").read_text()
    assert digest(second / "site") == digest(sink_build(tmp_path / "full", formations) / "site")


def siret(number: int) -> str:
    """A valid SIRET (Luhn key) ending the 13 digits ``1300280260NNN``."""
    body = f"1300280260{number:03d}"
    for key in "0123456789":
        digits = [int(c) for c in body + key]
        if sum(d if i % 2 == 0 else (d * 2 - 9 if d > 4 else d * 2) for i, d in enumerate(reversed(digits))) % 10 == 0:
            return body + key
    raise AssertionError(body)


def organismes(count: int) -> list[Formation]:
    """``count`` formations, each of its own organisme."""
    return [
        make_formation(numero=f"15_AF_{i:04d}", intitule=f"Formation numéro {i}",
                       org=organisme(siret=siret(i), nom=f"Organisme {i}"))
        for i in range(count)
    ]


@pytest.fixture
def rendered_by(monkeypatch, tmp_path) -> Callable[[], list[tuple[int, str]]]:
    """(process id, SIRET) of every organisme page rendered, whichever process rendered it."""
    log = tmp_path / "rendered"
    page = Site.organisme

    def spy(self, summary, adresse=None):
        with open(log, "a") as out:
            out.write(f"{os.getpid()} {summary.siret}\n")
        return page(self, summary, adresse)

    monkeypatch.setattr(Site, "organisme", spy)  # before the fork: the workers inherit it
    monkeypatch.setattr(render, "ORGANISME_BATCH", 1)
    monkeypatch.setattr(render, "ORGANISMES_FOR_WORKERS", 1)

    def read() -> list[tuple[int, str]]:
        lines = log.read_text().split() if log.exists() else []
        return [(int(pid), siret) for pid, siret in zip(lines[::2], lines[1::2])]

    return read


def test_organisme_pages_rendered_by_the_workers_are_the_serial_ones(tmp_path, monkeypatch, rendered_by):
    formations = organismes(12)
    serial = sink_build(tmp_path / "serial", formations, workers=0)
    assert {pid for pid, _ in rendered_by()} == {os.getpid()}
    listing = SiteSink._listing_pages

    def after_a_worker_started(self, *args):
        # The build takes back the batches no worker started: wait until one did, so that both render pages.
        deadline = dt.datetime.now() + dt.timedelta(seconds=30)
        while not any(pid != os.getpid() for pid, _ in rendered_by()) and dt.datetime.now() < deadline:
            threading.Event().wait(0.01)
        return listing(self, *args)

    monkeypatch.setattr(SiteSink, "_listing_pages", after_a_worker_started)
    (tmp_path / "rendered").unlink()
    parallel = sink_build(tmp_path / "parallel", formations, workers=1)  # no fiche batch: started for the pages
    assert tree(parallel / "site") == tree(serial / "site")
    pages = rendered_by()
    assert sorted(siret for _, siret in pages) == sorted(f.organisme_formation_responsable.siret_organisme_formation
                                                          for f in formations)  # each page once
    assert len({pid for pid, _ in pages} - {os.getpid()}) == 1


def test_an_error_in_an_organisme_page_on_a_worker_is_raised_by_the_build(tmp_path, monkeypatch, rendered_by):
    page = Site.organisme

    def failing(self, summary, adresse=None):
        if summary.siret == siret(5):
            raise ValueError("gabarit cassé")
        return page(self, summary, adresse)

    monkeypatch.setattr(Site, "organisme", failing)
    existing = {p.pid for p in multiprocessing.active_children()}
    error = in_thread(lambda: sink_build(tmp_path / "b", organismes(12), workers=1))
    assert isinstance(error, ValueError) and "gabarit cassé" in str(error)
    assert any(siret(5) in note for note in getattr(error, "__notes__", []))
    assert our_children(existing) == []


# --------------------------------------------------------------------------
# Listing pages, home and sitemaps keyed from what changed: the same keys as from the whole catalogue
# --------------------------------------------------------------------------

ENDED = [session(debut="20240101", fin="20240601")]


def version(changes: dict[int, dict], count: int = 14) -> list[Formation]:
    """``count`` formations over five organismes, with ``changes`` (by number) to their factory's arguments;
    a number whose change is None is left out."""
    formations = []
    for i in list(range(count)) + sorted(n for n in changes if n >= count):
        change = changes.get(i, {})
        if change is None:
            continue
        owner = change.get("owner", i % 5)
        fields = {
            "numero": f"15_AF_{i:04d}",
            "intitule": change.get("intitule", f"Formation numéro {i}"),
            "datemaj": change.get("datemaj", f"202610{10 + i:02d}"),
            "org": organisme(siret=siret(owner), nom=change.get("nom", f"Organisme {owner}")),
            "actions": [action(sessions=change.get("sessions"), lieux=[change.get("lieu", ADRESSE_TOULOUSE if i % 2 else ADRESSE_TOURS)])],
        }
        formations.append(make_formation(**fields))
    return formations


STEPS = [
    {},
    {1: {"intitule": "Soudeur"}},  # one title: its fiche and organisme page only
    {1: {"intitule": "Soudeur"}, 3: {"datemaj": "20261120"}},  # into the latest, a lastmod
    {1: {"intitule": "Soudeur"}, 3: {"datemaj": "20261120"}, 5: {"lieu": ADRESSE_MONTPELLIER}},  # another région
    {1: {"intitule": "Soudeur"}, 3: {"datemaj": "20261120"}, 6: {"sessions": ENDED}},  # archived
    {3: {"datemaj": "20261120"}, 7: {"owner": 3}},  # to another organisme
    {3: {"datemaj": "20261120"}, 7: {"owner": 3}, 2: {"nom": "Autre nom"}},  # an organisme renamed
    {3: {"datemaj": "20261120"}, 13: None},  # the latest one removed
    {3: {"datemaj": "20261120"}, 13: None, 20: {"owner": 7}},  # a new formation, a new organisme
    {3: {"datemaj": "20261120"}, 13: None, 20: {"owner": 7, "intitule": "Maçon"}},
    {3: {"datemaj": "20261121"}, 13: None, 20: {"owner": 7, "intitule": "Maçon"}, 11: {"datemaj": "20261001"}},
]


@pytest.mark.parametrize("touched_share", [0.25, 1.0])
def test_listing_pages_from_what_changed_are_the_full_builds(tmp_path, monkeypatch, touched_share):
    """Each step rebuilt from the one before equals a full build, and notes the very keys, rows and home
    figures that keying every page from the whole catalogue gives (render._SHORTCUTS off); with the
    organismes touched grouped alone (share 1.0), or all grouped once more than one in four is touched."""
    monkeypatch.setattr(render, "ORGANISMES_PER_PAGE", 2)
    monkeypatch.setattr(render, "TOUCHED_SHARE", touched_share)
    workers = 0
    options = {"sitemap_max_urls": 4, "workers": workers}
    previous, formations_before = None, None
    for number, changes in enumerate(STEPS):
        formations = version(changes)
        unchanged = frozenset()
        if previous is not None:
            dumps = {f.numero: f.model_dump() for f in formations_before}
            unchanged = frozenset(f.numero for f in formations if dumps.get(f.numero) == f.model_dump())
        context = PreviousBuild(previous, frozenset(f.numero for f in formations_before)) if previous else None
        with monkeypatch.context() as patch:
            patch.setattr(render, "_SHORTCUTS", False)
            slow = sink_build(tmp_path / f"slow{number}", formations, context, unchanged, **options)
        fast = sink_build(tmp_path / f"step{number}", formations, context, unchanged, **options)
        full = sink_build(tmp_path / f"full{number}", formations, **options)
        assert digest(fast / "site") == digest(full / "site"), number
        assert digest(slow / "site") == digest(full / "site"), number
        state, expected = render._load_state(fast), render._load_state(slow)
        for part in ("pages", "rows", "home", "listing", "refs"):
            assert state[part] == expected[part], (number, part)
        previous, formations_before = fast, formations


def test_one_changed_title_rewrites_no_listing_page(tmp_path, monkeypatch):
    """A title changed: the lists of organismes and every sitemap are linked, not keyed from their inputs, and
    the catalogue is not grouped by organisme."""
    monkeypatch.setattr(render, "ORGANISMES_PER_PAGE", 2)
    first = sink_build(tmp_path / "first", version({}), sitemap_max_urls=4)
    made: list[str] = []
    inputs, urls = Site.organismes_page_inputs, Site.sitemap_urls
    monkeypatch.setattr(Site, "organismes_page_inputs", staticmethod(lambda *a: made.append("list") or inputs(*a)))
    monkeypatch.setattr(Site, "sitemap_urls", lambda self, *a: made.append("sitemap") or urls(self, *a))
    group = Catalog._group_organismes
    monkeypatch.setattr(Catalog, "_group_organismes", lambda self: made.append("grouped") or group(self))
    formations = version({1: {"intitule": "Soudeur"}})
    refs = frozenset(f.numero for f in formations)
    second = sink_build(tmp_path / "second", formations, PreviousBuild(first, refs), refs - {"15_AF_0001"},
                        sitemap_max_urls=4)
    assert made == []
    listing = [n for n in tree(second / "site") if render._is_listing(n) or n.startswith("sitemaps/")]
    assert len(listing) > 6 and all(same_file(first / "site" / n, second / "site" / n) for n in listing)
    # A lastmod changed: only the sitemap holding it is made again.
    formations = version({1: {"intitule": "Soudeur", "datemaj": "20261012"}})  # not its organisme's latest
    third = sink_build(tmp_path / "third", formations, PreviousBuild(second, refs), refs - {"15_AF_0001"},
                       sitemap_max_urls=4)
    assert made == ["sitemap"]
    assert digest(third / "site") == digest(sink_build(tmp_path / "full", formations, sitemap_max_urls=4) / "site")


def test_the_address_table_is_made_anew_once_it_doubled(tmp_path):
    """Each build adds the addresses it meets to the previous build's table; once the table doubled, the
    addresses no formation has any more are dropped, and the pages are the same."""
    formations = organismes(3)
    previous = sink_build(tmp_path / "0", formations)
    sizes = []
    for number in range(1, 40):
        moved = [make_formation(numero=f"15_AF_{i:04d}", intitule=f"Formation numéro {i}",
                                org=organisme(siret=siret(i), nom=f"Organisme {i}",
                                              adresse={**ADRESSE_TOURS, "lignes": [f"{number} rue {i}"]}))
                 for i in range(3)]
        refs = frozenset(f.numero for f in moved)
        previous = sink_build(tmp_path / str(number), moved, PreviousBuild(previous, refs))
        state = render._load_state(previous)
        sizes.append(len(state["addresses"]))
        assert {state["addresses"][render._address_of(facts)] for facts in state["refs"].values()} == {
            f.organisme_formation_responsable.coordonnees_organisme.adresse.model_dump_json() for f in moved
        }
    assert max(sizes) <= 2 * 3 + 64 + 3 and sizes[-1] < max(sizes)  # made anew
    assert digest(previous / "site") == digest(sink_build(tmp_path / "full", moved) / "site")


def test_files_of_a_folder_taken_over_are_put_aside_in_the_older_build_not_unlinked(tmp_path):
    from catalogue.render import _Recycled

    folder = tmp_path / "older" / "site" / "formations"
    folder.mkdir(parents=True)
    for name in ("a.html", "b.html"):
        (folder / name).write_text(name)
    inode = (folder / "a.html").stat().st_ino
    stale = tmp_path / "older" / ".stale" / "formations"
    recycled = _Recycled({"a.html", "b.html"}, set(), str(stale))
    recycled.discard(str(folder / "a.html"), "a.html")
    assert not (folder / "a.html").exists()
    assert (stale / "a.html").stat().st_ino == inode  # the same file, renamed: its last link not removed here
    _Recycled({"b.html"}, set()).discard(str(folder / "b.html"), "b.html")  # no older build: unlinked
    assert not (folder / "b.html").exists() and sorted(p.name for p in stale.iterdir()) == ["a.html"]
