"""Accessibility of the built site, to RGAA / WCAG 2.1 AA.

Done when: axe-core, run in headless Chromium on every kind of page of a
demo-like site (home, search page empty and with results, current and archived
fiche, organisme page, organismes list, publier, 404), finds no serious or
critical violation, colour contrast included; every page says ``lang="fr"``;
every focusable element is reached by Tab and shows a visible focus
indicator; the skip link comes first and moves focus to ``main``; the search
works from the keyboard alone, down to a result's "Copier la référence" button;
no page scrolls sideways at 320 CSS px (reflow).

axe-core is an npm package pinned in ``package.json`` and installed into
``node_modules/`` by ``make install``; the test fails, never skips, without it.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest

from catalogue.build import BuildOptions, build
from catalogue.catalog import is_archived
from catalogue.generate import generate
from catalogue.settings import Settings
from catalogue.sources import Record, read_sources

from browser import browser, page, serve, wait_for_results  # noqa: F401

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = Path(__file__).resolve().parent / "data" / "lheo"
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
TODAY = dt.date(2026, 11, 29)
WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
BLOCKING = {"serious", "critical"}
MOBILE = {"width": 390, "height": 844}
# WCAG 1.4.10 (reflow): readable at 320 CSS px, i.e. 1280 px zoomed to 400 %, without scrolling sideways.
NARROW = {"width": 320, "height": 640}

PAGES = [
    "accueil",
    "recherche",
    "recherche-resultats",
    "fiche",
    "fiche-archivee",
    "organisme",
    "organismes",
    "publier",
    "donnees",
    "404",
]

# The focused element, described for the assertions; null when focus is on no element.
FOCUSED = """() => {
  const e = document.activeElement;
  if (!e || e === document.body || e === document.documentElement) return null;
  const s = getComputedStyle(e);
  const r = e.getBoundingClientRect();
  return {
    index: Array.prototype.indexOf.call(document.querySelectorAll('*'), e),
    tag: e.tagName.toLowerCase(), id: e.id, classes: e.className,
    text: (e.getAttribute('aria-label') || e.textContent || e.value || '').trim().slice(0, 60),
    href: e.getAttribute('href'),
    outline: s.outlineStyle, outlineWidth: parseFloat(s.outlineWidth) || 0, boxShadow: s.boxShadow,
    width: r.width, height: r.height, top: r.top + window.scrollY, left: r.left + window.scrollX,
    hidden: !!e.closest('[hidden]'),
    inMain: !!e.closest('main'), item: e.closest('li') && e.closest('li').dataset.ref || null
  };
}"""

# Every element a keyboard user should be able to reach: rendered, enabled, in the tab order.
TABBABLE = """() => {
  const selector = 'a[href], button, input, select, textarea, summary, [tabindex]';
  const all = document.querySelectorAll('*');
  return Array.from(document.querySelectorAll(selector)).filter(e => {
    if (e.disabled || e.tabIndex < 0 || e.closest('[hidden], [inert]')) return false;
    if (e.type === 'hidden') return false;
    const s = getComputedStyle(e);
    if (s.visibility === 'hidden' || s.display === 'none') return false;
    const r = e.getBoundingClientRect();
    // The skip link sits off screen until focused: still tabbable.
    return r.width > 0 && r.height > 0 || e.classList.contains('skip-link');
  }).map(e => ({index: Array.prototype.indexOf.call(all, e), tag: e.tagName.toLowerCase(),
                text: (e.getAttribute('aria-label') || e.textContent || '').trim().slice(0, 60)}));
}"""


@dataclass(frozen=True)
class Demo:
    base: str
    site: Path
    current: str  # Ref of a current formation with sessions
    archived: str  # Ref of an archived formation
    siret: str  # the current formation's organisme
    query: str  # a search query that finds the current formation

    def path(self, name: str) -> str:
        return {
            "accueil": "/",
            "recherche": "/recherche/",
            "recherche-resultats": "/recherche/?q=" + quote(self.query),
            "fiche": f"/formations/{self.current}.html",
            "fiche-archivee": f"/formations/{self.archived}.html",
            "organisme": f"/organismes/{self.siret}.html",
            "organismes": "/organismes/",
            "publier": "/publier/",
            "donnees": "/donnees/",
            # http.server answers an unknown path with its own page, not ours.
            "404": "/404.html",
        }[name]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The two real samples plus 20 generated formations, built with every sink and served."""
    root = tmp_path_factory.mktemp("a11y")
    content = root / "content"
    content.mkdir()
    for sample in sorted(SAMPLES.glob("*.xml")):
        shutil.copy(sample, content / sample.name)
    generate(content / "generated.xml", 20, seed=1)
    report = build(BuildOptions(content=(content,), build_dir=root / "build", today=TODAY), Settings())
    assert report.errors == [], report.errors
    formations = [item.formation for item in read_sources([content]) if isinstance(item, Record)]
    current = [f for f in formations if f.sessions and not is_archived(f, TODAY)]
    archived = [f for f in formations if is_archived(f, TODAY)]
    assert current and archived, "the demo content needs current and archived formations"
    # The richest current fiche: the one with the most to read and to tab through.
    fiche = max(current, key=lambda f: (len(f.sessions), bool(f.objectif_formation), bool(f.contenu_formation)))
    with serve(root / "build" / "site") as base:
        yield Demo(
            base=base,
            site=root / "build" / "site",
            current=fiche.numero,
            archived=archived[0].numero,
            siret=fiche.organisme_formation_responsable.siret_organisme_formation,
            query=fiche.intitule_formation,
        )


def axe_source() -> str:
    if not AXE.is_file():
        pytest.fail(
            f"axe-core introuvable ({AXE.relative_to(ROOT)}) : lancez `make install`, "
            "qui l'installe avec `npm ci` depuis package-lock.json",
            pytrace=False,
        )
    return AXE.read_text(encoding="utf-8")


def open_page(page, demo: Demo, name: str) -> None:  # noqa: F811
    """Load a page and wait until its scripts are done (search results shown)."""
    page.goto(demo.base + demo.path(name))
    page.wait_for_load_state("networkidle")
    if name == "recherche-resultats":
        refs = wait_for_results(page, demo.query)
        assert demo.current in refs, (demo.query, refs)


def run_axe(page) -> dict:  # noqa: F811
    # Evaluated rather than added as a <script>: a Content-Security-Policy cannot block it.
    page.evaluate(axe_source())
    return page.evaluate(
        """tags => axe.run(document, {runOnly: {type: 'tag', values: tags}, resultTypes: ['violations', 'incomplete']})
        .then(r => ({
          violations: r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
            nodes: v.nodes.map(n => ({target: n.target.join(' '), summary: n.failureSummary}))})),
          ran: r.passes.concat(r.violations, r.incomplete).map(v => v.id)
        }))""",
        WCAG_TAGS,
    )


def describe(violations: list[dict]) -> str:
    lines = []
    for v in violations:
        lines.append(f"[{v['impact']}] {v['id']}: {v['help']}")
        for node in v["nodes"]:
            lines.append(f"    {node['target']}\n        {node['summary']}".replace("\n  ", "\n          "))
    return "\n".join(lines)


def has_focus_indicator(focused: dict) -> bool:
    outline = focused["outline"] != "none" and focused["outlineWidth"] > 0
    return outline or focused["boxShadow"] != "none"


@pytest.mark.parametrize("viewport", ["bureau", "mobile"])
@pytest.mark.parametrize("name", PAGES)
def test_axe_finds_no_serious_violation(page, demo, name, viewport):  # noqa: F811
    if viewport == "mobile":
        page.set_viewport_size(MOBILE)
    open_page(page, demo, name)
    assert page.get_attribute("html", "lang") == "fr"
    result = run_axe(page)
    blocking = [v for v in result["violations"] if v["impact"] in BLOCKING]
    assert not blocking, f"{demo.path(name)} ({viewport}):\n{describe(result['violations'])}"
    # Contrast is checked, not merely skipped for want of text.
    assert "color-contrast" in result["ran"]
    assert page.errors == []


def tab_through(page, limit: int = 400) -> list[dict]:  # noqa: F811
    """Press Tab from the top of the page until focus leaves the page or comes back; what it reached."""
    reached: list[dict] = []
    seen: set[int] = set()
    for _ in range(limit):
        page.keyboard.press("Tab")
        focused = page.evaluate(FOCUSED)
        if focused is None or focused["index"] in seen:
            return reached
        seen.add(focused["index"])
        reached.append(focused)
    raise AssertionError(f"Tab never left the page after {limit} presses: a keyboard trap?")


@pytest.mark.parametrize("name", PAGES)
def test_tab_reaches_every_control_with_a_visible_focus(page, demo, name):  # noqa: F811
    open_page(page, demo, name)
    tabbable = page.evaluate(TABBABLE)
    reached = tab_through(page)
    missed = {e["index"] for e in tabbable} - {e["index"] for e in reached}
    assert not missed, [e for e in tabbable if e["index"] in missed]
    assert reached[0]["classes"] == "skip-link", reached[0]
    # A control inside [hidden] that Tab reaches is one a stylesheet shows by mistake.
    shown_hidden = [e for e in reached if e["hidden"]]
    assert not shown_hidden, json.dumps(shown_hidden, ensure_ascii=False, indent=1)
    invisible = [e for e in reached if not has_focus_indicator(e) or e["width"] == 0 or e["height"] == 0]
    assert not invisible, json.dumps(invisible, ensure_ascii=False, indent=1)


def test_skip_link_comes_first_and_moves_focus_to_main(page, demo):  # noqa: F811
    open_page(page, demo, "fiche")
    page.keyboard.press("Tab")
    skip = page.evaluate(FOCUSED)
    assert skip["tag"] == "a" and skip["href"] == "#contenu" and skip["text"] == "Aller au contenu"
    # Shown on screen once focused.
    assert skip["top"] >= 0 and skip["height"] > 0 and has_focus_indicator(skip)
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.tagName") == "MAIN"
    page.keyboard.press("Tab")
    assert page.evaluate(FOCUSED)["inMain"], "Tab after the skip link stays in the header"


def test_search_with_the_keyboard_alone(page, demo):  # noqa: F811
    open_page(page, demo, "recherche")
    for _ in range(20):
        page.keyboard.press("Tab")
        focused = page.evaluate(FOCUSED)
        assert has_focus_indicator(focused), focused
        if focused["id"] == "recherche-q":
            break
    else:
        raise AssertionError("Tab never reaches the search input")

    page.keyboard.type(demo.query)
    refs = wait_for_results(page, demo.query)
    assert refs and demo.current in refs

    first = refs[0]
    for _ in range(20):
        page.keyboard.press("Tab")
        focused = page.evaluate(FOCUSED)
        assert has_focus_indicator(focused), focused
        if focused["tag"] == "a" and focused["item"] is not None:
            break
    else:
        raise AssertionError("Tab never reaches the results")
    assert focused["item"] == first and focused["href"] == f"/formations/{first}.html"

    page.keyboard.press("Tab")
    button = page.evaluate(FOCUSED)
    assert button["tag"] == "button" and button["item"] == first, button
    assert button["text"] == f"Copier la référence {first}" and has_focus_indicator(button)
    page.keyboard.press("Enter")
    # Copied or not (the clipboard may be refused), the outcome is announced with the Ref.
    page.wait_for_function("ref => document.querySelector('.copy-status').textContent.includes(ref)", arg=first)

    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/formations/{first}.html")
    assert page.errors == []


def overflow(page) -> dict:  # noqa: F811
    """How far the page scrolls sideways, and the widest elements that stick out of the viewport."""
    return page.evaluate(
        """() => {
          const width = document.documentElement.clientWidth;
          const sticks = e => !e.closest('.table-wrap') &&
            (e.getBoundingClientRect().right > width + 0.5 || e.scrollWidth > e.clientWidth + 1);
          // The innermost culprits: an overflowing element none of whose children overflows.
          const out = Array.from(document.querySelectorAll('body *'))
            .filter(e => sticks(e) && !Array.from(e.querySelectorAll('*')).some(sticks))
            .map(e => e.tagName.toLowerCase() + (e.className ? '.' + e.className : '') + ': '
                      + (e.textContent || '').trim().slice(0, 50));
          return {scroll: document.documentElement.scrollWidth - width, out: out.slice(0, 5)};
        }"""
    )


@pytest.mark.parametrize("name", PAGES)
def test_page_reflows_at_320_px(page, demo, name):  # noqa: F811
    page.set_viewport_size(NARROW)
    open_page(page, demo, name)
    found = overflow(page)
    assert found["scroll"] <= 0, found


def test_every_fiche_reflows_at_320_px(page, demo):  # noqa: F811
    page.set_viewport_size(NARROW)
    fiches = sorted(p.stem for p in (demo.site / "formations").glob("*.html"))
    assert len(fiches) >= 20
    wide = {}
    for ref in fiches:
        page.goto(f"{demo.base}/formations/{ref}.html")
        found = overflow(page)
        if found["scroll"] > 0:
            wide[ref] = found
    assert not wide, json.dumps(wide, ensure_ascii=False, indent=1)
