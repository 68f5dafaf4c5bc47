"""The FastAPI server: the JSON API, the static site, security headers, new builds without restart."""

from __future__ import annotations

import asyncio
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from catalogue.server import CSP, SECURITY_HEADERS, create_app
from factories import make_formation
from test_search_query import COMPTA, CUISINE, ELECTRICIEN, catalogue_formations, publish

SITE = {
    "index.html": "<!doctype html><title>Accueil</title>",
    "404.html": "<!doctype html><title>Page introuvable</title>",
    f"formations/{ELECTRICIEN}.html": "<!doctype html><title>Électricien</title>",
    "organismes/a/index.html": "<!doctype html><title>Organismes en A</title>",
    "organismes/12345678900011.html": "<!doctype html><title>Organisme</title>",
    "static/app.js": "console.log(1);",
    "static/site.css": "body{}",
}


@pytest.fixture(scope="module")
def build_dir(tmp_path_factory) -> Path:
    build_dir = tmp_path_factory.mktemp("server") / "build"
    staging = publish(build_dir, catalogue_formations(), site=SITE)
    # Files one, two and three levels above the site: what a traversal would reach.
    for folder in (staging, staging.parent, build_dir):
        (folder / "secret.txt").write_text("secret")
    return build_dir


@pytest.fixture(scope="module")
def client(build_dir) -> TestClient:
    return TestClient(create_app(build_dir))


# -- API -------------------------------------------------------------------------


def test_search(client):
    response = client.get("/api/search", params={"q": "électricien bâtiment"})
    assert response.status_code == 200
    body = response.json()
    assert body["total"] == 1
    assert body["results"][0]["ref"] == ELECTRICIEN
    assert set(body["results"][0]) == {
        "ref", "intitule", "organisme", "ville", "codepostal", "url", "archived", "datemaj", "score", "match",
    }


def test_search_with_filters(client):
    body = client.get("/api/search", params={"q": "", "distance": "true", "esp": "oui", "departement": "34"}).json()
    assert [r["ref"] for r in body["results"]] == [COMPTA]
    body = client.get("/api/search", params={"near": "montpellier", "rayon_km": "5"}).json()
    assert [r["ref"] for r in body["results"]] == [COMPTA]
    body = client.get("/api/search", params={"region": "24", "financeur": "5"}).json()
    assert [r["ref"] for r in body["results"]] == [CUISINE]
    body = client.get("/api/search", params={"debut_apres": "2027-01-01"}).json()
    assert [r["ref"] for r in body["results"]] == [COMPTA]


def test_search_by_number(client):
    body = client.get("/api/search", params={"q": "193 113 834 00389", "limit": 2}).json()
    assert body["total"] == 5 and len(body["results"]) == 2  # four current, one archived: a SIRET finds all
    assert all(r["match"] == "numero" for r in body["results"])


@pytest.mark.parametrize(
    "params",
    [
        {"limit": "0"},
        {"debut_apres": "0"},  # pydantic alone reads 0 as 1970-01-01 (found by schemathesis)
        {"debut_apres": "20270101"},
        {"limit": "101"},
        {"limit": "beaucoup"},
        {"offset": "-1"},
        {"certifiante": "peut-être"},
        {"debut_apres": "demain"},
        {"region": "../../etc"},
        {"rayon_km": "10"},  # without near
        {"q": "x" * 501},
        {"regoin": "76"},  # unknown parameter
    ],
)
def test_bad_parameters_are_4xx_json(client, params):
    response = client.get("/api/search", params=params)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/json"
    assert response.json()["detail"]


def test_parameter_errors_are_in_french(client):
    detail = client.get("/api/search", params={"limit": "0", "certifiante": "peut-être"}).json()["detail"]
    messages = {d["msg"] for d in detail}
    assert "limit : doit être supérieur ou égal à 1" in messages
    assert "certifiante : oui ou non attendu (true/false, 1/0)" in messages
    detail = client.get("/api/search", params={"rayon_km": "5"}).json()["detail"]
    assert any("rayon_km demande une ville" in d["msg"] for d in detail)


def test_unknown_town_is_400(client):
    response = client.get("/api/search", params={"near": "Trifouilly"})
    assert response.status_code == 400
    assert "ville inconnue" in response.json()["detail"]


def test_too_many_words_is_400(client):
    response = client.get("/api/search", params={"q": " ".join(["mot"] * 30)})
    assert response.status_code == 400


def test_hostile_queries_answer_normally(client):
    for q in ['"cuisine" AND *', "intitule:x OR 1=1", "cuisine\x00", "<script>alert(1)</script>"]:
        response = client.get("/api/search", params={"q": q})
        assert response.status_code == 200, q
        assert response.headers["content-type"] == "application/json"


# -- under load: what must not wait ------------------------------------------------

#: Raw query strings: valid, refused, abusive (Whoosh syntax, NUL, odd Unicode, invalid UTF-8).
QUERY_STRINGS = [
    "q=%C3%A9lectricien+b%C3%A2timent", "q=", "q=comptable&limit=1&offset=0", "q=193+113+834+00389&limit=2",
    "near=montpellier&rayon_km=5", "region=24&financeur=5", "debut_apres=2027-01-01", "q=cuisine&q=compta",
    "q=%22cuisine+AND+*", "q=intitule%3Ax+OR+ref%3A%5Ba+TO+z%5D", "q=%00", "q=cui%00sine", "q=%ED%A0%80",
    "q=%FF%FE", "q=%E2%80%AEenisiuc+%F0%9F%8D%B3", "q=!!!+%3F%3F%3F", "q=" + "a" * 501, "limit=0",
    "limit=1000000000000", "offset=-1", "rayon_km=5", "near=Trifouilly", "q=" + "+".join(["mot"] * 30),
    "drop=table", "certifiante=peut-%C3%AAtre&limit=x", "debut_apres=0", "include_archived=oui&q=compta",
]


@pytest.mark.parametrize("query", QUERY_STRINGS)
def test_fast_search_answers_as_fastapi_would(build_dir, client, query):
    """/api/search is answered without FastAPI's per-request machinery: byte for byte the same answer."""
    fastapi_own = TestClient(create_app(build_dir, fast_search=False))
    ours, theirs = client.get(f"/api/search?{query}"), fastapi_own.get(f"/api/search?{query}")
    assert (ours.status_code, ours.headers["content-type"], ours.content) == (
        theirs.status_code, theirs.headers["content-type"], theirs.content)
    assert ours.status_code in (200, 400, 422)


def _held_search(monkeypatch, held_query: str):
    """A test double of search(): the query ``held_query`` holds the search thread until released."""
    import threading

    from catalogue import server

    started, release = threading.Event(), threading.Event()
    real = server.search

    def search(build_dir, params):
        if params.q == held_query:
            started.set()
            if not release.wait(10):  # a search queued behind this one: it never answers normally
                raise RuntimeError("never released")
        return real(build_dir, params)

    monkeypatch.setattr(server, "search", search)
    return started, release


async def _while_held(app, started, release, *queries):
    """Answers to ``queries`` sent while the first holds the search thread, then one sent once it is free."""
    import httpx

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as c:
        held = asyncio.create_task(c.get("/api/search", params=queries[0]))
        assert await asyncio.to_thread(started.wait, 30)
        during = [await c.get("/api/search", params=q) for q in queries[1:]]
        release.set()
        first = await held
        after = await c.get("/api/search", params=queries[-1])
    return first, during, after


def test_a_search_that_cannot_start_soon_is_refused_with_429(build_dir, monkeypatch):
    """While the search thread is held, a search is refused at once (429, Retry-After, French JSON);
    refusals and queries without a word still answer normally; once the thread is free, the same
    search is answered normally."""
    from catalogue.server import OVERLOADED, RETRY_AFTER_S, SearchQueue

    started, release = _held_search(monkeypatch, "comptabilité")
    queue = SearchQueue(budget=1.0, estimate=10.0)  # a search is taken to last 10 s: one ahead is too many
    app = create_app(build_dir, searcher=queue)
    first, during, after = asyncio.run(_while_held(
        app, started, release, {"q": "comptabilité"}, {"limit": "0"}, {"q": "!!!"}, {"q": "cuisine"}))
    refusal, empty, refused = during
    assert refusal.status_code == 422 and empty.status_code == 200 and empty.json()["total"] == 0
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == str(RETRY_AFTER_S)
    assert refused.headers["content-type"] == "application/json"
    assert refused.json() == {"detail": OVERLOADED} and "surchargé" in OVERLOADED
    for name, value in SECURITY_HEADERS.items():
        assert refused.headers[name] == value
    assert first.status_code == 200 and first.json()["results"][0]["ref"] == COMPTA
    assert after.status_code == 200 and [r["ref"] for r in after.json()["results"]] == [CUISINE]
    assert queue.refused == 1 and queue.pending == 0


def test_a_search_running_far_past_its_mean_makes_the_next_wait_too_long(build_dir, monkeypatch):
    """Searches usually take 0.1 ms here, but the one running has overrun that by more than the budget:
    the next cannot be promised a start within it."""
    import time

    from catalogue.server import SearchQueue

    started, release = _held_search(monkeypatch, "comptabilité")
    queue = SearchQueue(budget=0.02, estimate=0.0001)
    app = create_app(build_dir, searcher=queue)

    original = queue.estimated_wait

    def estimated_wait():
        time.sleep(0.05)  # the held search has now run for more than budget + mean
        return original()

    queue.estimated_wait = estimated_wait
    first, (refused,), after = asyncio.run(_while_held(app, started, release, {"q": "comptabilité"},
                                                        {"q": "cuisine"}))
    assert refused.status_code == 429
    assert first.status_code == 200 and after.status_code == 200


def test_a_search_with_none_ahead_always_runs(build_dir):
    """Late only because the machine was slow to start the thread (here: any delay is over a zero
    budget), a search that had no other ahead of it is answered, not refused."""
    from catalogue.server import SearchQueue

    client = TestClient(create_app(build_dir, searcher=SearchQueue(budget=0.0)))
    for _ in range(3):
        response = client.get("/api/search", params={"q": "cuisine"})
        assert response.status_code == 200 and [r["ref"] for r in response.json()["results"]] == [CUISINE]


def test_openapi_documents_the_429(client):
    responses = client.get("/api/openapi.json").json()["paths"]["/api/search"]["get"]["responses"]
    assert "Retry-After" in responses["429"]["headers"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(q=st.text(st.characters(exclude_categories=("L", "N", "Cs")), min_size=1, max_size=40),
       filters=st.sampled_from([{}, {"include_archived": "true"}, {"departement": "34"}, {"cpf": "oui"}]))
def test_a_query_without_letter_or_digit_is_answered_as_search_would(build_dir, client, q, filters):
    """Such a query skips the search queue (answered at once): search() itself finds nothing for it either."""
    from catalogue.search.query import SearchParams, search

    params = {"q": q, **filters}
    ours = client.get("/api/search", params=params)
    theirs = TestClient(create_app(build_dir, fast_search=False)).get("/api/search", params=params)
    assert (ours.status_code, ours.content) == (theirs.status_code, theirs.content)
    if q.strip():
        assert search(build_dir, SearchParams(**params)).total == 0


def test_refusals_formations_and_pages_wait_for_no_thread(build_dir, monkeypatch):
    """Every thread of the pool busy and a search running: refused queries, a query with nothing
    to search, a formation's JSON, a page, the site's 404 and the API's 404 are still answered,
    before that search ends.

    (Before, every endpoint but the 422 ran on the threadpool: none of them was answered.)
    """
    import threading

    import anyio
    import httpx

    from catalogue import server

    searching, release = threading.Event(), threading.Event()
    real_search = server.search

    def slow_search(build_dir, params):
        if params.q == "bloque":
            searching.set()
            release.wait(60)  # released by the test; the timeout only keeps a broken app from hanging it
        return real_search(build_dir, params)

    monkeypatch.setattr(server, "search", slow_search)
    app = create_app(build_dir)

    async def scenario():
        anyio.to_thread.current_default_thread_limiter().total_tokens = 1
        pool_busy = threading.Event()
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as http:
            hog = asyncio.ensure_future(anyio.to_thread.run_sync(pool_busy.wait))  # the pool's only thread
            slow = asyncio.ensure_future(http.get("/api/search", params={"q": "bloque"}))
            try:
                for _ in range(3000):
                    if searching.is_set():
                        break
                    await asyncio.sleep(0.01)
                assert searching.is_set(), "the search never started"
                # A broken app never answers: wait_for's limit turns that into a failure, not a hang.
                answers = await asyncio.wait_for(asyncio.gather(
                    http.get("/api/search", params={"q": "x" * 50_000}),
                    http.get("/api/search", params={"limit": "1000000000000"}),
                    http.get("/api/search", params={"q": "\x00 !!! \ufffd"}),
                    http.get(f"/api/formations/{COMPTA}"),
                    http.get("/api/formations/..%2F..%2Fetc"),
                    http.get(f"/formations/{ELECTRICIEN}.html"),
                    http.get("/nulle-part"),
                    http.get("/api/rien"),
                ), timeout=30)
                assert not slow.done()
            finally:
                release.set()
                pool_busy.set()
                await hog
            return [(r.status_code, r.text) for r in answers], await slow

    answers, slow = asyncio.run(scenario())
    assert [status for status, _ in answers] == [422, 422, 200, 200, 404, 200, 404, 404]
    assert answers[2][1] == '{"total":0,"results":[]}'
    assert COMPTA in answers[3][1] and "Électricien" in answers[5][1] and "Page introuvable" in answers[6][1]
    assert slow.status_code == 200 and slow.json() == {"total": 0, "results": []}


def test_small_site_files_are_sent_like_file_response(build_dir, client):
    """Pages read into memory keep FileResponse's headers; a range request still gets its part."""
    page = client.get(f"/formations/{ELECTRICIEN}.html")
    assert page.status_code == 200 and page.text == SITE[f"formations/{ELECTRICIEN}.html"]
    assert page.headers["content-length"] == str(len(page.content))
    assert page.headers["etag"] and page.headers["last-modified"] and page.headers["accept-ranges"] == "bytes"
    assert page.headers["content-type"].startswith("text/html")
    assert client.get(f"/formations/{ELECTRICIEN}.html").headers["etag"] == page.headers["etag"]
    part = client.get("/static/app.js", headers={"range": "bytes=0-6"})
    assert part.status_code == 206 and part.content == b"console"
    missing = client.get("/nulle-part")
    assert missing.status_code == 404 and "Page introuvable" in missing.text
    assert client.head("/").headers["content-length"] == str(len(SITE["index.html"].encode()))


def test_serve_runs_one_worker_process_per_core(build_dir, monkeypatch):
    import os

    import uvicorn
    from click.testing import CliRunner

    from catalogue import server
    from catalogue.cli import main

    supervised, single = [], []
    monkeypatch.setattr(server, "_supervise", lambda workers, host, port: supervised.append((workers, host, port)))
    monkeypatch.setattr(uvicorn, "run", lambda **options: single.append(options))
    monkeypatch.delenv(server.BUILD_ENV, raising=False)
    monkeypatch.delenv(server.WAIT_ENV, raising=False)
    runner = CliRunner()
    assert runner.invoke(main, ["serve", "--build", str(build_dir)]).exit_code == 0
    assert runner.invoke(main, ["serve", "--build", str(build_dir), "--workers", "3", "--port", "8123"]).exit_code == 0
    assert runner.invoke(main, ["serve", "--build", str(build_dir), "--workers", "1"]).exit_code == 0
    assert os.environ[server.WAIT_ENV] == str(round(server.SEARCH_WAIT_BUDGET_S * 1000))
    assert runner.invoke(main, ["serve", "--build", str(build_dir), "--workers", "0"]).exit_code == 2
    assert runner.invoke(main, ["serve", "--build", str(build_dir), "--search-wait-ms", "0"]).exit_code == 2
    cores = min(len(os.sched_getaffinity(0)), 8)
    assert server.default_workers() == cores
    assert supervised[-1] == (3, "127.0.0.1", 8123)
    assert len(supervised) == (2 if cores > 1 else 1) and len(single) == (1 if cores > 1 else 2)
    # Every process imports the app by name and builds it for the same folder.
    options = single[-1]
    assert options["factory"] is True and options["app"] == "catalogue.server:app_from_environment"
    assert options["http"] == "catalogue.server:SecureHttpToolsProtocol" and options["loop"] == "uvloop"
    assert os.environ[server.BUILD_ENV] == str(build_dir.resolve())
    assert TestClient(server.app_from_environment()).get(f"/api/formations/{COMPTA}").status_code == 200
    # The search wait budget reaches every process.
    assert runner.invoke(main, ["serve", "--build", str(build_dir), "--workers", "3", "--search-wait-ms", "30"]
                         ).exit_code == 0
    budgets, real_queue = [], server.SearchQueue
    monkeypatch.setattr(server, "SearchQueue", lambda budget: budgets.append(budget) or real_queue(budget))
    server.app_from_environment()
    assert budgets == [0.03]


def test_every_worker_process_serves_the_new_build(tmp_path):
    """``catalogue serve --workers 2``: after a new build, no process answers from the old index."""
    import http.client
    import socket
    import subprocess
    import sys
    import time

    build_dir = tmp_path / "build"
    publish(build_dir, [make_formation(numero="15_AF_1", intitule="Cuisine")], site={"index.html": "v1"})
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "catalogue.cli", "serve", "--build", str(build_dir), "--port", str(port),
         "--workers", "2"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )

    def refs() -> list[str]:
        # A new connection each time: the kernel hands each to either process.
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            connection.request("GET", "/api/search?q=cuisine")
            return [r["ref"] for r in __import__("json").loads(connection.getresponse().read())["results"]]
        finally:
            connection.close()

    try:
        for _ in range(300):  # until it listens
            try:
                assert refs() == ["15_AF_1"]
                break
            except ConnectionRefusedError:
                time.sleep(0.1)
        answers = [refs() for _ in range(20)]
        publish(build_dir, [make_formation(numero="15_AF_2", intitule="Cuisine")], site={"index.html": "v2"})
        answers_after = [refs() for _ in range(20)]
    finally:
        process.terminate()
        process.wait(30)
    assert answers == [["15_AF_1"]] * 20
    assert answers_after == [["15_AF_2"]] * 20


def test_formation_json(client):
    response = client.get(f"/api/formations/{COMPTA}")
    assert response.status_code == 200
    body = response.json()
    assert body["numero"] == COMPTA
    assert body["intitule_formation"] == "Comptabilité et gestion"
    assert body["organisme_formation_responsable"]["siret_organisme_formation"] == "19311383400389"


@pytest.mark.parametrize("ref", ["15_AF_9999999999", "..", "a..b", "%2e%2e", "_x", "x" * 81])
def test_unknown_or_invalid_ref_is_json_404(client, ref):
    response = client.get(f"/api/formations/{ref}")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json"
    assert "detail" in response.json()


def test_unknown_api_path_is_json_404(client):
    response = client.get("/api/nothing/here")
    assert response.status_code == 404
    assert response.json() == {"detail": "adresse inconnue de l'API"}


def test_openapi_and_docs(client):
    spec = client.get("/api/openapi.json").json()
    assert "/api/search" in spec["paths"] and "/api/formations/{ref}" in spec["paths"]
    names = {p["name"] for p in spec["paths"]["/api/search"]["get"]["parameters"]}
    assert {"q", "limit", "offset", "region", "near", "rayon_km", "include_archived", "debut_apres"} <= names
    docs = client.get("/api/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    nonce = docs.headers["content-security-policy"].split("'nonce-")[1].split("'")[0]
    assert f'<script nonce="{nonce}">' in docs.text


def test_no_index_is_503(tmp_path):
    response = TestClient(create_app(tmp_path)).get("/api/search", params={"q": "x"})
    assert response.status_code == 503
    assert "catalogue build" in response.json()["detail"]


# -- static site -----------------------------------------------------------------------


def test_static_files(client):
    home = client.get("/")
    assert home.status_code == 200 and "Accueil" in home.text
    assert home.headers["content-type"].startswith("text/html")
    page = client.get(f"/formations/{ELECTRICIEN}.html")
    assert page.status_code == 200 and "Électricien" in page.text
    script = client.get("/static/app.js")
    assert script.headers["content-type"].startswith("text/javascript")
    assert client.get("/static/site.css").headers["content-type"].startswith("text/css")
    assert client.head("/").status_code == 200


def test_folder_without_slash_redirects(client):
    response = client.get("/organismes/a", follow_redirects=False)
    assert response.status_code == 308
    assert response.headers["location"] == "/organismes/a/"


@pytest.mark.parametrize("path", [f"/formations/{ELECTRICIEN}.html/", "/static/site.css/", "/static/app.js//"])
def test_a_file_with_a_trailing_slash_moves_to_its_url(client, path):
    response = client.get(path, follow_redirects=False)
    assert response.status_code == 301
    assert response.headers["location"] == path.rstrip("/")
    assert client.get(path).status_code == 200


@pytest.mark.parametrize("old, new", [
    (f"/formations/{ELECTRICIEN}/", f"/formations/{ELECTRICIEN}.html"),
    (f"/formations/{ELECTRICIEN}", f"/formations/{ELECTRICIEN}.html"),
    ("/organismes/12345678900011/", "/organismes/12345678900011.html"),
])
def test_an_old_folder_url_moves_to_its_page(client, old, new):
    response = client.get(old, follow_redirects=False)
    assert response.status_code == 301
    assert response.headers["location"] == new
    assert client.get("/formations/15_AF_inconnue/", follow_redirects=False).status_code == 404


def test_unknown_path_is_the_sites_404(client):
    response = client.get("/nulle/part/")
    assert response.status_code == 404
    assert "Page introuvable" in response.text


def _raw_get(app, raw_path: bytes) -> tuple[int, bytes]:
    """Send a request with an exact path, as a hostile client would (no URL normalisation)."""
    from urllib.parse import unquote_to_bytes

    messages = []
    requested = []

    async def receive():
        if not requested:
            requested.append(True)
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.Event().wait()  # the client stays connected until the response ends

    async def send(message):
        messages.append(message)

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
        "path": unquote_to_bytes(raw_path).decode("utf-8", "replace"), "raw_path": raw_path, "root_path": "",
        "query_string": b"", "headers": [(b"host", b"testserver")], "client": ("127.0.0.1", 1), "server": ("testserver", 80),
    }
    asyncio.run(app(scope, receive, send))
    start = next(m for m in messages if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")
    return start["status"], body


@pytest.mark.parametrize(
    "raw_path",
    [
        b"/../secret.txt",
        b"/../../secret.txt",
        b"/../../../secret.txt",
        b"/%2e%2e/secret.txt",
        b"/%2e%2e%2fsecret.txt",
        b"/..%2f..%2fsecret.txt",
        b"/static/..%2f..%2fsecret.txt",
        b"/static/%2e%2e/%2e%2e/secret.txt",
        b"/..%5csecret.txt",
        b"/%00/secret.txt",
        b"/../index/formations.sqlite",
        b"/.%2e/.%2e/etc/passwd",
    ],
)
def test_path_traversal_refused(build_dir, raw_path):
    status, body = _raw_get(create_app(build_dir), raw_path)
    assert status == 404
    assert b"secret" not in body and b"SQLite" not in body and b"root:" not in body


def test_symlink_out_of_the_site_refused(tmp_path):
    build_dir = tmp_path / "build"
    staging = publish(build_dir, [make_formation()], site=SITE)
    (tmp_path / "outside.txt").write_text("outside")
    (staging / "site" / "lien.txt").symlink_to(tmp_path / "outside.txt")
    response = TestClient(create_app(build_dir)).get("/lien.txt")
    assert response.status_code == 404 and "outside" not in response.text


# -- headers and new builds ---------------------------------------------------------------


@pytest.mark.parametrize("path", ["/", "/api/search?q=cuisine", "/api/formations/x..y", "/nulle/part", "/api/search?limit=0"])
def test_security_headers_on_every_response(client, path):
    headers = client.get(path).headers
    assert headers["content-security-policy"] == CSP
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["x-frame-options"] == "DENY"
    assert headers["referrer-policy"]


def test_new_build_served_without_restart(tmp_path):
    build_dir = tmp_path / "build"
    publish(build_dir, [make_formation(numero="15_AF_1", intitule="Cuisine")], site={"index.html": "version 1"})
    client = TestClient(create_app(build_dir))
    assert client.get("/").text == "version 1"
    assert [r["ref"] for r in client.get("/api/search", params={"q": "cuisine"}).json()["results"]] == ["15_AF_1"]
    publish(build_dir, [make_formation(numero="15_AF_2", intitule="Cuisine")], site={"index.html": "version 2"})
    assert client.get("/").text == "version 2"
    assert [r["ref"] for r in client.get("/api/search", params={"q": "cuisine"}).json()["results"]] == ["15_AF_2"]
    assert client.get("/api/formations/15_AF_2").status_code == 200
    assert client.get("/api/formations/15_AF_1").status_code == 404


_LONG_LINE = b"GET /api/search?q=" + b"a" * 2_000_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"  # 2 MB


@pytest.mark.parametrize("protocol, request_head", [
    ("SecureHttpToolsProtocol", _LONG_LINE),
    # A query of 100,000 characters (h11, the old protocol, let it through to the 422 of the app).
    ("SecureHttpToolsProtocol", b"GET /api/search?q=" + b"a" * 100_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"),
    ("SecureHttpToolsProtocol", b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 1_000_000 + b"\r\n\r\n"),
    ("SecureH11Protocol", _LONG_LINE),
])
def test_uvicorns_own_400_carries_the_security_headers(build_dir, protocol, request_head):
    """A request line or headers over the protocol's limit never reach the application (httptools has
    no limit of its own: ours is MAX_REQUEST_HEAD_BYTES): the 400 must still be ours."""
    import socket
    import threading

    import uvicorn

    from catalogue import server as catalogue_server
    from catalogue.server import http_protocol

    assert http_protocol() is catalogue_server.SecureHttpToolsProtocol
    config = uvicorn.Config(create_app(build_dir), host="127.0.0.1", port=0,
                            http=getattr(catalogue_server, protocol), log_level="error", lifespan="off")
    with _serving(config) as port:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
            # Far over uvicorn's limit: it answers before reading it all, then resets the connection,
            # so the answer is read while the request is still being sent.
            def send() -> None:
                try:
                    connection.sendall(request_head)
                except OSError:
                    pass

            sender = threading.Thread(target=send, daemon=True)
            sender.start()
            answer = b""
            try:
                while chunk := connection.recv(65536):
                    answer += chunk
            except ConnectionResetError:
                pass
            sender.join(timeout=10)
    head = answer.split(b"\r\n\r\n", 1)[0].decode("latin-1").lower()
    assert head.startswith("http/1.1 400")
    for name, value in SECURITY_HEADERS.items():
        assert f"{name}: {value.lower()}" in head


def test_the_httptools_protocol_serves_requests_one_after_another_on_a_connection(build_dir):
    """The request-head limit counts each request's own head: a keep-alive connection carrying more
    than the limit in all is served to the end, with the security headers."""
    import http.client

    import uvicorn

    from catalogue.server import MAX_REQUEST_HEAD_BYTES, http_protocol

    config = uvicorn.Config(create_app(build_dir), host="127.0.0.1", port=0, http=http_protocol(),
                            loop="uvloop", log_level="error", lifespan="off")
    with _serving(config) as port:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        padding = "p" * 8000
        for i in range(2 * MAX_REQUEST_HEAD_BYTES // len(padding)):
            connection.request("GET", f"/api/search?q=cuisine&limit={1 + i % 5}", headers={"X-Padding": padding})
            response = connection.getresponse()
            body = response.read()
            assert response.status == 200, body
            assert response.getheader("content-security-policy") == CSP
            assert b'"07_AF_0000000003"' in body
        connection.close()


@contextmanager
def _serving(config) -> Iterator[int]:
    """A real uvicorn server on a thread, for as long as the block runs: its port."""
    import threading
    import time

    import uvicorn

    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        for _ in range(200):
            if server.started:
                break
            time.sleep(0.02)
        yield server.servers[0].sockets[0].getsockname()[1]
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.mark.parametrize("fast", [True, False])
def test_head_on_search_answers_as_get_does(build_dir, fast):
    client = TestClient(create_app(build_dir, fast_search=fast))
    for query in ("q=cuisine", "limit=0"):
        head, get = client.head(f"/api/search?{query}"), client.get(f"/api/search?{query}")
        assert head.status_code == get.status_code and head.content == b""
        assert head.headers["content-type"] == get.headers["content-type"] == "application/json"
    assert "head" not in client.get("/api/openapi.json").json()["paths"]["/api/search"]
