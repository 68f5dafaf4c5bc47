"""Screenshots of the demo catalogue for the README: home, search results, a fiche.

Builds ``content/`` into a temporary folder on a fixed day (so that the same
formations are current), serves the site as plain static files on 127.0.0.1
and photographs three pages, 1280 CSS px wide, in headless Chromium::

    .venv/bin/python tools/screenshots.py            # writes docs/screenshots/*.png

The fiche shown is the first search result that is current and has sessions,
objectives and a content; ``--fiche REF`` picks another.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import http.server
import os
import sys
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from catalogue.build import BuildOptions, build  # noqa: E402
from catalogue.catalog import is_archived  # noqa: E402
from catalogue.settings import load_settings  # noqa: E402
from catalogue.sources import Record, read_sources  # noqa: E402

TODAY = dt.date(2026, 11, 29)
QUERY = "comptable"
WIDTH = 1280
HEIGHT = 900  # the home and search shots: one screenful
FICHE_MAX_HEIGHT = 2400
CHROMIUM = os.environ.get("CATALOGUE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]


# Where to cut a long fiche: under the last section (or session box) that fits whole.
CROP = """limit => {
  const full = document.documentElement.scrollHeight;
  if (full <= limit) return full;
  const bottoms = Array.from(document.querySelectorAll('main section, main .action'))
    .map(e => e.getBoundingClientRect().bottom + window.scrollY + 24)
    .filter(b => b <= limit);
  return Math.ceil(bottoms.length ? Math.max(...bottoms) : limit);
}"""


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args) -> None:  # noqa: A002
        pass


@contextmanager
def serve(root: Path) -> Iterator[str]:
    """Serve ``root`` on 127.0.0.1 (a free port); yields the base URL."""
    handler = functools.partial(_QuietHandler, directory=str(root.resolve()))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def showcase_refs(content: list[Path], today: dt.date) -> set[str]:
    """Refs worth showing as a fiche: current, with sessions, objectives and a content."""
    return {
        item.formation.numero
        for item in read_sources(content)
        if isinstance(item, Record)
        and item.formation.sessions
        and item.formation.objectif_formation
        and item.formation.contenu_formation
        and not is_archived(item.formation, today)
    }


def wait_for_results(page, query: str) -> list[str]:
    page.wait_for_function(
        "q => { const f = document.querySelector('form[data-recherche]');"
        " return f.getAttribute('data-etat') === 'pret' && f.getAttribute('data-requete') === q; }",
        arg=query.strip(),
        timeout=15_000,
    )
    return page.eval_on_selector_all("#recherche-resultats > li", "items => items.map(i => i.dataset.ref)")


def take(base: str, out: Path, query: str, showcase: set[str], fiche: Optional[str]) -> str:
    """Photograph the three pages into ``out``; returns the Ref of the fiche shown."""
    from urllib.parse import quote

    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": WIDTH, "height": HEIGHT}, device_scale_factor=1)
            page.goto(base + "/")
            page.wait_for_load_state("networkidle")
            page.screenshot(path=str(out / "accueil.png"))

            page.goto(f"{base}/recherche/?q={quote(query)}")
            refs = wait_for_results(page, query)
            if not refs:
                sys.exit(f"« {query} » ne trouve aucune formation dans le catalogue de démonstration")
            page.screenshot(path=str(out / "recherche.png"))

            if fiche is None:
                fiche = next((ref for ref in refs if ref in showcase), None) or min(showcase)
            page.goto(f"{base}/formations/{fiche}.html")
            page.wait_for_load_state("networkidle")
            height = page.evaluate(CROP, FICHE_MAX_HEIGHT)
            page.screenshot(
                path=str(out / "fiche.png"), full_page=True, clip={"x": 0, "y": 0, "width": WIDTH, "height": height}
            )
        finally:
            browser.close()
    return fiche


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--content", type=Path, action="append", help="défaut : content/")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    parser.add_argument("--query", default=QUERY, help=f"recherche photographiée (défaut : {QUERY})")
    parser.add_argument("--fiche", help="Ref de la fiche photographiée (défaut : choisie parmi les résultats)")
    args = parser.parse_args(argv)
    content = args.content or [ROOT / "content"]
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="catalogue-screenshots-") as tmp:
        build_dir = Path(tmp) / "build"
        report = build(BuildOptions(content=tuple(content), build_dir=build_dir, today=TODAY), load_settings())
        if report.errors:
            sys.exit(f"le build du catalogue de démonstration a échoué : {report.errors[0]}")
        with serve(build_dir / "site") as base:
            fiche = take(base, args.out, args.query, showcase_refs(content, TODAY), args.fiche)
    for name in ("accueil", "recherche", "fiche"):
        path = args.out / f"{name}.png"
        print(f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}  {path.stat().st_size // 1024} Ko")
    print(f"fiche : {fiche} ; recherche : « {args.query} »")


if __name__ == "__main__":
    main()
