"""The search page in headless Chromium, on the demo site served as plain static files.

Done when: typing a Ref, then a title, in the search page of a built demo site
gives the right fiche first, and its link opens that fiche (``Ref : <ref>``).
The site is served by a bare ``http.server`` on 127.0.0.1: no API, no server
code, as on any static hosting.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import pytest

from catalogue.lheo_export import write_lheo

from browser import browser, build_site, page, search_on_page, serve, wait_for_results  # noqa: F401
from factories import action, make_formation, session

ROOT = Path(__file__).resolve().parent.parent
TODAY = dt.date(2026, 11, 29)
TITLE = "Vitrailliste en marqueterie de verre"
ARCHIVED_TITLE = "Enluminure et calligraphie médiévale"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The demo content (``content/``) plus two formations with words found nowhere else."""
    root = tmp_path_factory.mktemp("demo")
    extra = root / "extra"
    extra.mkdir()
    write_lheo(
        [
            make_formation(numero="15_AF_0000990001", intitule=TITLE),
            make_formation(
                numero="15_AF_0000990002",
                intitule=ARCHIVED_TITLE,
                actions=[action(numero="15_SE_0000990002", sessions=[session("20240101", "20240601")])],
            ),
        ],
        extra / "extra.xml",
    )
    build_dir = build_site([ROOT / "content", extra], root / "build", today=TODAY)
    with serve(build_dir / "site") as base:
        yield build_dir / "site", base


def demo_ref(site_dir: Path) -> str:
    """A Ref of the demo content (the middle formation, in Ref order)."""
    root = site_dir / "recherche"
    manifest = json.loads((root / "manifest.json").read_text())
    middle = manifest["n"] // 2
    return json.loads((root / "d" / f"{middle // manifest['docs']}.json").read_text())[middle % manifest["docs"]][0]


def test_type_a_ref_then_a_title_and_open_the_fiche(site, page):  # noqa: F811
    site_dir, base = site
    ref = demo_ref(site_dir)
    assert not ref.startswith("15_AF_00009900")
    page.goto(base + "/recherche/")
    assert page.title().startswith("Rechercher une formation")

    fetched: list[tuple[str, int]] = []
    page.on("requestfinished", lambda r: fetched.append((r.url, r.sizes()["responseBodySize"])))
    page.click("#recherche-q")
    page.keyboard.type(ref, delay=15)
    assert wait_for_results(page, ref)[0] == ref
    shards = [(url, size) for url, size in fetched if "/recherche/" in url]
    assert 1 <= len(shards) <= 2, shards
    assert sum(size for _, size in shards) <= 10_000
    first = page.locator("#recherche-resultats > li").first
    assert ref in first.inner_text() and "Copier la référence" in first.inner_text()

    page.fill("#recherche-q", "")
    page.keyboard.type(TITLE.lower(), delay=10)
    found = wait_for_results(page, TITLE.lower())
    assert found[0] == "15_AF_0000990001"
    assert "formation trouvée" in page.inner_text("#recherche-statut")
    page.click("#recherche-resultats > li >> nth=0 >> a")
    page.wait_for_url(re.compile(r"/formations/15_AF_0000990001\.html$"))
    assert "Ref : 15_AF_0000990001" in page.inner_text(".fiche-ref")
    assert page.errors == []


def test_a_ref_result_shows_its_facts_and_links_to_the_fiche(site, page):  # noqa: F811
    site_dir, base = site
    page.goto(base + "/recherche/?q=15_af_0000990001")
    assert wait_for_results(page, "15_af_0000990001") == ["15_AF_0000990001"]
    text = page.inner_text("#recherche-resultats > li")
    for part in (TITLE, "UT2J FC", "31500 Toulouse", "Ref : 15_AF_0000990001", "mise à jour le 02/11/2026"):
        assert part in text
    href = page.get_attribute("#recherche-resultats > li a", "href")
    assert href == "/formations/15_AF_0000990001.html"
    assert page.input_value("#recherche-q") == "15_af_0000990001"


def test_archived_formations_only_when_asked(site, page):  # noqa: F811
    _, base = site
    page.goto(base + "/recherche/")
    assert search_on_page(page, "calligraphie médiévale") == []
    assert "Aucune formation" in page.inner_text("#recherche-statut")
    assert search_on_page(page, "calligraphie médiévale", include_archived=True) == ["15_AF_0000990002"]
    assert "Archivée" in page.inner_text("#recherche-resultats > li")
    assert "archives=1" in page.url
    # An action numero leads to its (archived) formation too, when asked.
    assert search_on_page(page, "15_SE_0000990002", include_archived=True) == ["15_AF_0000990002"]


def test_the_last_word_being_typed_counts_as_a_prefix(site, page):  # noqa: F811
    _, base = site
    page.goto(base + "/recherche/")
    page.click("#recherche-q")
    page.keyboard.type("marqueterie vitr", delay=10)
    assert wait_for_results(page, "marqueterie vitr") == ["15_AF_0000990001"]
    assert "début de mot" in page.inner_text("#recherche-statut")
    # Submitted (Enter), the query is exact: "vitr" is no word of the catalogue.
    assert search_on_page(page, "marqueterie vitr") == []
    assert "début de mot" not in page.inner_text("#recherche-statut")


def test_a_misspelt_word_is_tolerated(site, page):  # noqa: F811
    _, base = site
    page.goto(base + "/recherche/")
    assert search_on_page(page, "marqeterie") == ["15_AF_0000990001"]
    assert "orthographe approchée" in page.inner_text("#recherche-statut")


def test_copy_button_copies_the_ref(site, browser, page):  # noqa: F811
    _, base = site
    browser.grant_permissions(["clipboard-read", "clipboard-write"], origin=base)
    page.goto(base + "/recherche/?q=15_AF_0000990001")
    wait_for_results(page, "15_AF_0000990001")
    page.click("#recherche-resultats > li button.copy-ref")
    page.wait_for_function("() => document.querySelector('.copy-status').textContent.includes('copiée')")
    assert page.evaluate("navigator.clipboard.readText()") == "15_AF_0000990001"


def test_page_is_accessible_and_keyboard_operable(site, page):  # noqa: F811
    _, base = site
    page.goto(base + "/recherche/")
    assert page.get_attribute("label[for=recherche-q]", "for") == "recherche-q"
    assert page.get_attribute("label[for=recherche-archives]", "for") == "recherche-archives"
    assert page.get_attribute("#recherche-statut", "aria-live") == "polite"
    assert page.get_attribute("form[data-recherche]", "action") == "/recherche/"
    # Keyboard only: type, Enter, Tab to the first result, Enter opens it.
    page.focus("#recherche-q")
    page.keyboard.type(TITLE, delay=5)
    page.keyboard.press("Enter")
    wait_for_results(page, TITLE)
    page.focus("#recherche-resultats > li a")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/formations/15_AF_0000990001\.html$"))


def test_more_results_on_demand(site, page):  # noqa: F811
    site_dir, base = site
    page.goto(base + "/recherche/")
    found = search_on_page(page, "formation")
    assert len(found) == 10
    assert page.is_visible("#recherche-plus")
    page.click("#recherche-plus")
    page.wait_for_function("() => document.querySelectorAll('#recherche-resultats > li').length > 10")
    refs = page.eval_on_selector_all("#recherche-resultats > li", "items => items.map(i => i.dataset.ref)")
    assert refs[:10] == found and len(set(refs)) == len(refs)
