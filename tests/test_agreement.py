"""The three ways in agree: the CLI, the API and the static page give the same top 5 Refs.

One build of the demo content (``content/``) with every sink; a shared set of
queries (a Ref and its short form, an action numero, a SIRET typed with spaces,
one- and two-word titles, a town); the CLI through click's runner, the API
through FastAPI's test client, the static page in headless Chromium on the site
served as plain files.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path

import pytest
from click.testing import CliRunner

from catalogue.cli import main
from catalogue.search.static import ShardReader

from browser import browser, build_site, page, search_on_page, serve  # noqa: F401

ROOT = Path(__file__).resolve().parent.parent
TODAY = dt.date(2026, 11, 29)
WORDS = ["anglais", "technicien", "titre professionnel", "agent de sécurité", "assistant comptable", "Aix-en-Provence"]


@pytest.fixture(scope="module")
def build_dir(tmp_path_factory) -> Path:
    return build_site([ROOT / "content"], tmp_path_factory.mktemp("agreement") / "build",
                      sinks=["site", "index", "static-search"], today=TODAY)


def number_queries(build_dir: Path) -> list[str]:
    """A Ref, its short form, an action numero of another formation, a SIRET with spaces, and an archived Ref."""
    root = build_dir / "site" / "recherche"
    rows = [row for path in sorted((root / "d").glob("*.json"), key=lambda p: int(p.stem))
            for row in json.loads(path.read_text())]
    current = [row[0] for row in rows if not row[5]]
    archived = [row[0] for row in rows if row[5]]
    ref = next(r for r in current[len(current) // 2:] if r.count("_") == 2)
    keys: dict[str, list] = {}
    for path in sorted((root / "n").glob("*.json")):
        if not path.name.startswith("g"):
            keys.update(json.loads(path.read_text())["k"])
    actions = sorted(k for k, codes in keys.items()
                     if k.count("|") == 1 and not k.startswith(ref + "|") and not any(c & 1 for c in codes))
    action_numero = actions[len(actions) // 3].split("|")[1]
    siret = sorted(k for k, codes in keys.items() if k.isdigit() and len(k) == 14)[0]
    spaced_siret = f"{siret[:3]} {siret[3:6]} {siret[6:9]} {siret[9:]}"
    # An archived formation's Ref still finds it, on every way in.
    return [ref, ref.split("_", 1)[1], action_numero, spaced_siret, archived[len(archived) // 2], f"Ref : {ref}"]


@pytest.fixture(scope="module")
def queries(build_dir) -> list[str]:
    return number_queries(build_dir) + WORDS


def cli_top5(build_dir: Path, query: str) -> list[str]:
    result = CliRunner().invoke(main, ["search", query, "--build", str(build_dir), "--json", "--limit", "5"])
    assert result.exit_code == 0, result.output
    return [hit["ref"] for hit in json.loads(result.output)]


def api_top5(build_dir: Path, query: str) -> list[str]:
    from fastapi.testclient import TestClient

    from catalogue.server import create_app

    with TestClient(create_app(build_dir)) as client:
        response = client.get("/api/search", params={"q": query, "limit": 5})
    assert response.status_code == 200, response.text
    return [hit["ref"] for hit in response.json()["results"]]


def test_cli_api_and_static_page_agree(build_dir, queries, page):  # noqa: F811
    assert len(queries) == 12
    with serve(build_dir / "site") as base:
        page.goto(base + "/recherche/")
        for query in queries:
            cli = cli_top5(build_dir, query)
            assert cli, f"the demo should answer {query!r}"
            assert api_top5(build_dir, query) == cli, query
            assert search_on_page(page, query)[:5] == cli, query
    assert page.errors == []


def test_the_result_objects_have_the_same_keys_and_values(build_dir, queries, page):  # noqa: F811
    """The page's result objects (CatalogueRecherche.results) carry the API's keys and values."""
    from fastapi.testclient import TestClient

    from catalogue.server import create_app

    query = queries[0]
    with TestClient(create_app(build_dir)) as client:
        api = client.get("/api/search", params={"q": query, "limit": 5}).json()["results"]
    with serve(build_dir / "site") as base:
        page.goto(base + "/recherche/")
        static = page.evaluate(
            """async (q) => {
                const R = CatalogueRecherche, shards = R.page.shards;
                const found = await R.search(shards, q, {includeArchived: false, need: 5});
                return R.results(shards, found, 0, 5);
            }""",
            query,
        )
    assert static == api


def test_python_model_of_the_page_agrees_too(build_dir, queries):
    """ShardReader (what the bench measures) reads the shards as the page does."""
    for query in queries:
        assert [r.ref for r in ShardReader(build_dir / "site").search(query, limit=5)] == cli_top5(build_dir, query)


def test_the_scores_are_the_same(build_dir):
    """The shards' scores are the query's: both use the rounded average lengths.

    To the 4 digits shown, give or take one on the last: the page sums term scores
    stored to 6 digits, the query sums exact ones (a length average left exact on one
    side moves them by more).
    """
    for query in WORDS:
        result = CliRunner().invoke(main, ["search", query, "--build", str(build_dir), "--json", "--limit", "20"])
        cli = {hit["ref"]: hit["score"] for hit in json.loads(result.output)}
        static = {r.ref: r.score for r in ShardReader(build_dir / "site").search(query, limit=20)}
        assert cli and len(static) == len(cli), query
        for ref in static.keys() & cli.keys():
            unit = 10 ** (math.floor(math.log10(cli[ref])) - 3)
            assert abs(static[ref] - cli[ref]) <= unit * 1.001, (query, ref, static[ref], cli[ref])
        assert len(static.keys() & cli.keys()) >= len(cli) - 2, query  # only ties at the 20th may differ
