"""Headless Chromium for the tests, and a plain static HTTP server for a built site.

Debian's ``chromium`` (``/usr/bin/chromium``) driven by playwright. The tests
that need it fail, with a message saying how to install it, when it is
missing: they never skip. Import the fixtures into a test module::

    from browser import browser, page, static_site  # noqa: F401
"""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import socketserver
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

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
]
MISSING = (
    f"chromium introuvable ({CHROMIUM}) : installez-le (apt-get install chromium, ce que fait "
    "`make test`) ou donnez son chemin dans CATALOGUE_CHROMIUM"
)


@contextmanager
def launch() -> Iterator[object]:
    """A headless Chromium with a fresh profile, closed on exit."""
    from playwright.sync_api import sync_playwright

    if not (Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK)):
        pytest.fail(MISSING, pytrace=False)
    profile = tempfile.mkdtemp(prefix="catalogue-chromium-")
    try:
        with sync_playwright() as playwright:
            context = playwright.chromium.launch_persistent_context(
                profile, executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
            )
            try:
                yield context
            finally:
                context.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args) -> None:  # noqa: A002
        pass


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


@contextmanager
def serve(root: Path) -> Iterator[str]:
    """Serve ``root`` as plain static files on 127.0.0.1 (a free port); yields the base URL."""
    handler = functools.partial(_QuietHandler, directory=str(Path(root).resolve()))
    server = _Server(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """One Chromium context per test module (pages are cheap, launches are not)."""
    with launch() as context:
        yield context


@pytest.fixture
def page(browser) -> Iterator[object]:
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.errors = errors
    try:
        yield page
    finally:
        page.close()


# --------------------------------------------------------------------------
# Built sites for the search tests
# --------------------------------------------------------------------------

SEARCH_SINKS = ["site", "static-search"]


def build_site(content: list[Path], build_dir: Path, sinks: list[str] = SEARCH_SINKS, today=None) -> Path:
    """Build ``content`` into ``build_dir`` with ``sinks``; returns ``build_dir``."""
    import datetime as dt

    from catalogue import build as build_module
    from catalogue.build import BuildOptions, build
    from catalogue.settings import Settings

    if not build_module.SINKS:
        build_module._load_sinks()
    options = BuildOptions(content=tuple(content), build_dir=build_dir, today=today or dt.date(2026, 11, 29))
    report = build(options, Settings(), sinks=sinks)
    assert report.errors == [], report.errors
    return build_dir


def wait_for_results(page, query: str, timeout: float = 10_000) -> list[str]:
    """Wait until the search page has answered ``query``; the Refs it lists, in order."""
    page.wait_for_function(
        "q => { const f = document.querySelector('form[data-recherche]');"
        " return f.getAttribute('data-etat') === 'pret' && f.getAttribute('data-requete') === q.trim(); }",
        arg=query,
        timeout=timeout,
    )
    return page.eval_on_selector_all("#recherche-resultats > li", "items => items.map(i => i.dataset.ref)")


def search_on_page(page, query: str, include_archived: bool = False) -> list[str]:
    """Submit ``query`` in the search form (as Enter does) and return the Refs listed."""
    page.fill("#recherche-q", query)
    if page.is_checked("#recherche-archives") != include_archived:
        page.set_checked("#recherche-archives", include_archived)
    page.press("#recherche-q", "Enter")
    return wait_for_results(page, query)
