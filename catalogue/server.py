"""The web server: the JSON API under ``/api`` and the built site as static files.

- ``GET /api/search`` — :func:`catalogue.search.query.search`, the same function as ``catalogue search``;
- ``GET /api/formations/{ref}`` — a formation's whole JSON, as published;
- ``/api/openapi.json`` and ``/api/docs`` — the API's description;
- anything else — a file of ``BUILD/site`` (``index.html`` for a folder, the
  site's ``404.html`` with status 404 when there is none).

``BUILD/site`` and ``BUILD/index`` are resolved again on every request, so a
new build is served as soon as it is published, without a restart. Every
response carries the security headers of :data:`SECURITY_HEADERS`.

Under load (``bench/load.py``): :func:`run` starts one process per core, each on
its own socket, with uvicorn's httptools parser on uvloop; in each, searches run one
at a time on a dedicated thread (:class:`SearchQueue`) and everything else — refused
parameters, a formation's JSON, the site's files — is answered on the event loop
without waiting for a thread, so a refusal never queues behind searches. A search that
could not start within :data:`SEARCH_WAIT_BUDGET_S` is refused at once with a 429 and
``Retry-After`` instead of waiting: every answer comes quickly, even overloaded.
"""

from __future__ import annotations

import asyncio
import mimetypes
import os
import re
import secrets
import time
from concurrent.futures import Executor, ThreadPoolExecutor
from pathlib import Path
from typing import Annotated, Optional

import h11
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError
from starlette.datastructures import QueryParams
from starlette.exceptions import HTTPException as StarletteHTTPException
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .model import REF_PATTERN
from .search.index import INDEX_DIR, IndexMissing, SearchError, open_index
from .search.query import SearchParams, SearchResponse, french_message, search

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "referrer-policy": "strict-origin-when-cross-origin",
    "x-frame-options": "DENY",
}
_SECURITY_RAW = [(name.encode(), value.encode()) for name, value in SECURITY_HEADERS.items()]
#: The API docs page loads Swagger UI from its CDN and runs one inline script (allowed by nonce).
SWAGGER_CDN = "https://cdn.jsdelivr.net"

_REF_RE = re.compile(REF_PATTERN)

for _suffix, _type in {".js": "text/javascript", ".mjs": "text/javascript", ".css": "text/css",
                       ".json": "application/json", ".svg": "image/svg+xml", ".xml": "application/xml",
                       ".webmanifest": "application/manifest+json", ".txt": "text/plain"}.items():
    mimetypes.add_type(_type, _suffix)


class ErrorDetail(BaseModel):
    """Every error of the API: one French sentence."""

    detail: str


#: A search that cannot start within this many seconds is refused at once (429) rather than queued
#: (``catalogue serve --search-wait-ms``): with the search itself and the event loop's own delays,
#: every answer stays within 100 ms under ``bench/load.py``.
SEARCH_WAIT_BUDGET_S = 0.030
#: What a refused client is asked to wait before trying again (``Retry-After``, whole seconds).
RETRY_AFTER_S = 1
#: The 429's message.
OVERLOADED = "serveur surchargé : trop de recherches en attente ; réessayez dans une seconde"

_UNAVAILABLE = {503: {"model": ErrorDetail, "description": "Aucun index publié, ou index endommagé : lancez « catalogue build »"}}


class SecurityHeaders:
    """ASGI middleware adding :data:`SECURITY_HEADERS` to every response (unless a route set its own CSP)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers.extend(header for header in _SECURITY_RAW if header[0] not in present)
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _error(status: int, detail: str) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status)


def _validation_errors(errors, prefix: tuple = ()) -> list[dict]:
    """Pydantic's errors as the API's 422 body: where, in French, and pydantic's type."""
    return [
        {"loc": [str(p) for p in (*prefix, *e.get("loc", ()))], "msg": french_message(e), "type": e.get("type", "")}
        for e in errors
    ]


def _search_answer(build_dir: Path, params: SearchParams) -> Response:
    """``GET /api/search``'s answer: the JSON of :func:`search`, or its error in French."""
    try:
        return Response(search(build_dir, params).model_dump_json(), media_type="application/json")
    except IndexMissing as exc:
        return _error(503, str(exc))
    except SearchError as exc:
        return _error(400, str(exc))
    except Exception:
        return _error(503, "index de recherche endommagé ; relancez « catalogue build »")


#: The answer of a search that finds nothing.
NO_RESULT = SearchResponse(total=0, results=[]).model_dump_json().encode()


def _nothing_to_search(build_dir: Path, params: SearchParams) -> bool:
    """A query without a letter or a digit (``!!!``, a NUL, U+FFFD from invalid UTF-8...) has no
    word and cannot be a number (every Ref, SIRET, numero has one): :func:`search` finds
    nothing, whatever the filters; it is answered at once, without queueing behind searches."""
    return bool(params.q) and not any(c.isalnum() for c in params.q) and os.path.isdir(build_dir / INDEX_DIR)


class SearchQueue:
    """The searches of one process: one at a time on one thread, in arrival order, none waiting long.

    A search is admitted when its estimated wait — the searches ahead of it (the running one
    included) times the mean duration of a search, plus how far the running one has overrun
    that mean — is within ``budget``; otherwise :meth:`run` returns ``None`` at once and the
    caller answers 429. An admitted search that still could not start within ``budget`` because
    of the searches ahead (a slow one) is refused when its turn comes rather than run late; one
    that had none ahead always runs (then only the machine was slow to start the thread). The mean is
    measured on the thread (wall time, so it includes the GIL shared with the event loop) and
    follows the load: a moving average over roughly the last ten searches.

    The counters are only touched on the event loop; the thread sets the timing attributes.
    """

    def __init__(self, budget: float = SEARCH_WAIT_BUDGET_S, executor: Optional[Executor] = None,
                 estimate: float = 0.005):
        self.budget = budget
        self.executor = executor or ThreadPoolExecutor(1, "search")
        self.mean = estimate  # seconds a search takes on the thread (moving average)
        self.pending = 0  # admitted and not finished, the running one included
        self.running_since: Optional[float] = None
        self.refused = 0

    def estimated_wait(self) -> float:
        wait = self.pending * self.mean
        since = self.running_since
        if since is not None:
            wait += max(0.0, time.perf_counter() - since - self.mean)
        return wait

    async def run(self, function, *args):
        """``function(*args)`` on the thread, or ``None`` when the search cannot start within the budget."""
        if self.pending and self.estimated_wait() > self.budget:
            self.refused += 1
            return None
        ahead = self.pending
        self.pending += 1
        try:
            result = await asyncio.get_running_loop().run_in_executor(
                self.executor, self._timed, time.perf_counter(), ahead, function, args)
        finally:
            self.pending -= 1
        if result is None:
            self.refused += 1
        return result

    def _timed(self, queued: float, ahead: int, function, args):
        start = time.perf_counter()
        if ahead and start - queued > self.budget:
            return None  # late because of the searches ahead (alone, it was only the machine: it runs)
        self.running_since = start
        try:
            return function(*args)
        finally:
            self.running_since = None
            self.mean += 0.1 * (time.perf_counter() - start - self.mean)


def overloaded() -> JSONResponse:
    """The answer to a search refused by :class:`SearchQueue`."""
    return JSONResponse({"detail": OVERLOADED}, status_code=429, headers={"retry-after": str(RETRY_AFTER_S)})


def search_endpoint(build_dir: Path, searcher: Optional[SearchQueue] = None):
    """The ASGI app answering ``GET /api/search``, without FastAPI's per-request machinery.

    FastAPI's route stays for the OpenAPI description; this replaces its handler. Under
    load, FastAPI spent more time reading the query into :class:`SearchParams` (its generic
    parameter code) than most searches take, and handed every search to its threadpool,
    where 40 threads took turns at the GIL with the event loop. Here the parameters are
    validated by pydantic alone and a refusal (422), like a query with nothing to search
    (:func:`_nothing_to_search`), is answered at once on the event loop;
    searches run one at a time, in arrival order, on ``searcher``'s thread (the CPU is the
    limit, more threads would only take turns) — or a 429 at once when they could not start
    soon enough — or on the event loop itself when it is ``None``. Either way nothing else of
    the app waits for a thread.
    """

    async def endpoint(scope, receive, send) -> None:
        try:
            params = SearchParams.model_validate(dict(QueryParams(scope["query_string"])))
        except ValidationError as exc:
            response: Response = JSONResponse({"detail": _validation_errors(exc.errors(), ("query",))},
                                              status_code=422)
        else:
            if _nothing_to_search(build_dir, params):
                response = Response(NO_RESULT, media_type="application/json")
            elif searcher is None:
                response = _search_answer(build_dir, params)
            else:
                answer = await searcher.run(_search_answer, build_dir, params)
                response = overloaded() if answer is None else answer
        await response(scope, receive, send)

    return endpoint


def create_app(build_dir: Path, fast_search: bool = True, searcher: Optional[SearchQueue] = None) -> FastAPI:
    """The application serving ``build_dir`` (its ``site`` and ``index``, re-resolved per request).

    ``fast_search=False`` leaves ``GET /api/search`` to FastAPI's own handling (the tests
    check that :func:`search_endpoint` answers exactly as it does). ``searcher``: where the
    searches run (default: a new :class:`SearchQueue`).
    """
    build_dir = Path(build_dir)
    app = FastAPI(
        title="Catalogue des formations",
        description="Recherche dans le catalogue public des actions de formation (LHEO).",
        version="1",
        openapi_url="/api/openapi.json",
        docs_url=None,
        redoc_url=None,
    )

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": _validation_errors(exc.errors())}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=getattr(exc, "headers", None))

    @app.get(
        "/api/search",
        response_model=SearchResponse,
        tags=["recherche"],
        responses={
            400: {"model": ErrorDetail, "description": "Requête impossible (ville inconnue, trop de mots…)"},
            429: {"model": ErrorDetail,
                  "description": "Serveur surchargé : la recherche n'a pas pu commencer assez vite ; "
                                 "réessayer après le délai de Retry-After",
                  "headers": {"Retry-After": {"description": "secondes à attendre", "schema": {"type": "integer"}}}},
            **_UNAVAILABLE,
        },
    )
    def api_search(params: Annotated[SearchParams, Query()]):
        """Chercher des formations : mots (analyse française, tolérance aux fautes) ou numéro
        (Ref, numéro d'action ou de session, ``ref|action|session``, SIRET, RNCP), avec filtres."""
        return _search_answer(build_dir, params)  # only with fast_search=False: see search_endpoint

    # HEAD answers as GET would, without the body (a link checker, a monitoring probe); not in the schema.
    app.add_api_route("/api/search", api_search, methods=["HEAD"], include_in_schema=False)

    @app.get(
        "/api/formations/{ref}",
        tags=["formations"],
        responses={404: {"model": ErrorDetail, "description": "Ref inconnue"}, **_UNAVAILABLE},
    )
    async def api_formation(ref: str):  # async: a dictionary look-up, answered on the event loop
        """Une formation entière (formation > actions > sessions, organisme), telle que publiée."""
        if not _REF_RE.match(ref) or ".." in ref:
            return _error(404, "Ref invalide : lettres, chiffres, « _ », « - » et « . » seulement")
        try:
            data = open_index(build_dir).formation_bytes(ref)
        except IndexMissing as exc:
            return _error(503, str(exc))
        except Exception:
            return _error(503, "index de recherche endommagé ; relancez « catalogue build »")
        if data is None:
            return _error(404, f"aucune formation publiée sous la Ref {ref}")
        return Response(data, media_type="application/json")

    @app.get("/api/docs", include_in_schema=False)
    def api_docs() -> HTMLResponse:
        nonce = secrets.token_urlsafe(16)
        page = get_swagger_ui_html(openapi_url=app.openapi_url, title=f"{app.title} — API")
        body = page.body.decode().replace("<script>", f'<script nonce="{nonce}">')
        csp = (
            f"default-src 'self'; script-src 'self' {SWAGGER_CDN} 'nonce-{nonce}'; style-src 'self' {SWAGGER_CDN}; "
            "img-src 'self' data: https://fastapi.tiangolo.com; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
        )
        return HTMLResponse(body, headers={"content-security-policy": csp})

    @app.api_route("/api", methods=["GET", "HEAD"], include_in_schema=False)
    @app.api_route("/api/{rest:path}", methods=["GET", "HEAD"], include_in_schema=False)
    async def api_unknown(rest: str = "") -> JSONResponse:
        return _error(404, "adresse inconnue de l'API")

    @app.api_route("/{path:path}", methods=["GET", "HEAD"], include_in_schema=False)
    async def site_file(path: str, request: Request) -> Response:
        # On the event loop: a few stat calls, and the page read at once (see _inline), instead of
        # the five trips to a thread of FileResponse, each waiting its turn behind the searches.
        return _inline(_static(build_dir, path, request), request)

    if fast_search:
        searcher = searcher or SearchQueue()
        for route in app.routes:
            if isinstance(route, APIRoute) and route.path == "/api/search":
                route.app = search_endpoint(build_dir, searcher)
    app.add_middleware(SecurityHeaders)
    return app


# --------------------------------------------------------------------------
# Static files
# --------------------------------------------------------------------------


def _static(build_dir: Path, path: str, request: Request) -> Response:
    site = Path(os.path.realpath(build_dir / "site"))
    if not site.is_dir():
        return _error(503, f"{build_dir / 'site'} : aucun site publié ; lancez « catalogue build » d'abord")
    target = _safe_target(site, path)
    if target is None:
        moved = _page_moved(site, path)
        return RedirectResponse(moved, status_code=301) if moved else _not_found(site)
    if target.is_dir():
        if path and not path.endswith("/"):
            # One URL per page: /organismes/A → /organismes/A/
            return RedirectResponse("/" + path.lstrip("/") + "/", status_code=308)
        target = target / "index.html"
    elif path.endswith("/"):
        # One URL per page: /formations/<Ref>.html/ would be the same page with its relative links broken.
        return RedirectResponse("/" + path.strip("/"), status_code=301)
    if not target.is_file():
        return _not_found(site)
    return FileResponse(target, media_type=_media_type(target))


def _page_moved(site: Path, path: str) -> Optional[str]:
    """The new URL of a page whose URL was a folder: ``/formations/<Ref>/`` is now ``/formations/<Ref>.html``,
    ``/organismes/<SIRET>/`` is ``/organismes/<SIRET>.html``; links and bookmarks made before keep working.
    """
    name = path.strip("/")
    if not name or name.endswith(".html"):
        return None
    target = _safe_target(site, name + ".html")
    return "/" + name + ".html" if target is not None and target.is_file() else None


def _safe_target(site: Path, path: str) -> Optional[Path]:
    """The file or folder ``path`` names inside ``site``, or ``None`` when it would leave it.

    ``path`` arrives percent-decoded: ``%2e%2e%2f`` is already ``../`` here.
    """
    if "\x00" in path or "\\" in path or len(path) > 1024:
        return None
    parts = [p for p in path.split("/") if p]
    if any(p in (".", "..") or p.startswith(".") for p in parts):
        return None
    candidate = Path(os.path.realpath(site.joinpath(*parts))) if parts else site
    if candidate != site and site not in candidate.parents:
        return None  # a symlink pointing out of the site
    return candidate if candidate.exists() else None


#: Files up to this size are read at once and sent from memory; larger ones are streamed.
INLINE_MAX_BYTES = 1 << 20


def _inline(response: Response, request: Request) -> Response:
    """``response`` with a small file of the (immutable) published site read into memory.

    Same status and headers as :class:`FileResponse` (``content-length``, ``etag``,
    ``last-modified``, ``accept-ranges``); a request for a range keeps the FileResponse.
    """
    if not isinstance(response, FileResponse) or "range" in request.headers:
        return response
    try:
        with open(response.path, "rb") as file:
            stat = os.fstat(file.fileno())
            if stat.st_size > INLINE_MAX_BYTES:
                return response
            data = file.read()
    except OSError:
        return response  # gone between the check and now: FileResponse says so
    response.set_stat_headers(stat)
    inline = Response(data, status_code=response.status_code)
    inline.raw_headers = list(response.raw_headers)
    return inline


def _not_found(site: Path) -> Response:
    page = site / "404.html"
    if page.is_file():
        return FileResponse(page, status_code=404, media_type="text/html")
    return HTMLResponse("<!doctype html><title>Page introuvable</title><h1>Page introuvable</h1>", status_code=404)


def _media_type(path: Path) -> str:
    guessed, encoding = mimetypes.guess_type(path.name)
    if encoding == "gzip":
        return "application/gzip"  # a download, not a page the browser should decompress and show
    return guessed or "application/octet-stream"


class SecureH11Protocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol, whose own 400 (a request it cannot parse, a request line over
    its limit) carries :data:`SECURITY_HEADERS` like every answer of the application."""

    def send_400_response(self, msg: str) -> None:
        body = msg.encode("ascii", "replace")
        headers = [
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ] + [(name.encode(), value.encode()) for name, value in SECURITY_HEADERS.items()]
        for event in (h11.Response(status_code=400, headers=headers, reason=b"Bad Request"), h11.Data(data=body),
                      h11.EndOfMessage()):
            self.transport.write(self.conn.send(event))
        self.transport.close()


#: The most bytes of a request's line and headers :class:`SecureHttpToolsProtocol` reads before its 400
#: (httptools itself has no limit; h11's was about the same).
MAX_REQUEST_HEAD_BYTES = 64 * 1024


class SecureHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's protocol on the httptools parser (about twice as fast as h11 under ``bench/load.py``),
    with the same two guards as :class:`SecureH11Protocol`: its own 400 carries
    :data:`SECURITY_HEADERS`, and a request line and headers over :data:`MAX_REQUEST_HEAD_BYTES`
    get that 400 instead of being read whole into memory."""

    _head_bytes = 0
    _in_body = False

    def data_received(self, data: bytes) -> None:
        if not self._in_body:
            self._head_bytes += len(data)
            if self._head_bytes > MAX_REQUEST_HEAD_BYTES:
                self._head_bytes = 0
                self.send_400_response("Request line or headers too long.")
                return
        super().data_received(data)

    def on_headers_complete(self) -> None:
        self._in_body, self._head_bytes = True, 0
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._in_body = False
        super().on_message_complete()

    def send_400_response(self, msg: str) -> None:
        body = msg.encode("ascii", "replace")
        content = [b"HTTP/1.1 400 Bad Request\r\n", b"content-type: text/plain; charset=utf-8\r\n",
                   b"content-length: " + str(len(body)).encode() + b"\r\n", b"connection: close\r\n"]
        content += [name + b": " + value + b"\r\n" for name, value in _SECURITY_RAW]
        self.transport.write(b"".join(content) + b"\r\n" + body)
        self.transport.close()


def http_protocol():
    """:class:`SecureHttpToolsProtocol`, for ``uvicorn.Config(http=...)``."""
    return SecureHttpToolsProtocol


#: The environment variable through which :func:`run` hands the build folder to its worker processes.
BUILD_ENV = "CATALOGUE_SERVE_BUILD"


#: ... and the search wait budget, in milliseconds.
WAIT_ENV = "CATALOGUE_SERVE_SEARCH_WAIT_MS"


def app_from_environment() -> FastAPI:
    """The app of one worker process of :func:`run` (uvicorn imports it by name in each)."""
    wait_ms = os.environ.get(WAIT_ENV)
    budget = SEARCH_WAIT_BUDGET_S if not wait_ms else int(wait_ms) / 1000
    return create_app(Path(os.environ[BUILD_ENV]), searcher=SearchQueue(budget=budget))


def default_workers() -> int:
    """One worker process per core this process may run on (at most 8)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover (not Linux)
        cores = os.cpu_count() or 1
    return max(1, min(cores, 8))


def run(build_dir: Path, host: str = "127.0.0.1", port: int = 8000, workers: Optional[int] = None,
        search_wait_ms: Optional[int] = None) -> None:
    """Serve ``build_dir`` with uvicorn until interrupted, in ``workers`` processes
    (:func:`default_workers` when ``None``); a search that could not start within ``search_wait_ms``
    is refused with a 429 (:class:`SearchQueue`; default :data:`SEARCH_WAIT_BUDGET_S`).

    Each process answers on its event loop, runs its searches one at a time in a thread, and
    opens the published index itself, again after each new build
    (:func:`catalogue.search.index.open_index`). Several processes each listen on their own
    socket (``SO_REUSEPORT``), so the kernel spreads the connections evenly among them:
    with uvicorn's own ``workers``, which share one socket, the first process to wake took
    most of the keep-alive connections (44 against 17 under ``bench/load.py``).
    """
    os.environ[BUILD_ENV] = str(Path(build_dir).resolve())
    os.environ[WAIT_ENV] = str(round(SEARCH_WAIT_BUDGET_S * 1000) if search_wait_ms is None else search_wait_ms)
    workers = workers or default_workers()
    if workers == 1:
        import uvicorn

        uvicorn.run(**_uvicorn_options(host, port))
    else:
        _supervise(workers, host, port)


def _uvicorn_options(host: str, port: int) -> dict:
    return dict(app=f"{__name__}:app_from_environment", factory=True, host=host, port=port, server_header=False,
                log_level="info", http=f"{__name__}:SecureHttpToolsProtocol", loop="uvloop")


def _listening_socket(host: str, port: int):
    import socket

    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                         flags=socket.AI_PASSIVE)[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(address)
    sock.listen(2048)
    return sock


def _worker(host: str, port: int) -> None:
    """One worker process of :func:`_supervise`: its own socket on the shared port, one uvicorn server."""
    import uvicorn

    sock = _listening_socket(host, port)
    uvicorn.Server(uvicorn.Config(**_uvicorn_options(host, port))).run(sockets=[sock])


def _supervise(workers: int, host: str, port: int) -> None:
    """Run ``workers`` processes of :func:`_worker` until interrupted (SIGINT, SIGTERM); one that dies
    is replaced, unless it dies at once (port taken...), which stops them all."""
    import multiprocessing
    import multiprocessing.connection
    import signal
    import sys
    import time

    _listening_socket(host, port).close()  # the port is ours (or the error is the usual OSError)
    context = multiprocessing.get_context("spawn")
    stopping = False

    def start():
        process = context.Process(target=_worker, args=(host, port), daemon=False)
        process.start()
        return process, time.monotonic()

    def stop(signum=None, frame=None):
        nonlocal stopping
        stopping = True

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    running = [start() for _ in range(workers)]
    failed = False
    try:
        while not stopping and not failed:
            multiprocessing.connection.wait([p.sentinel for p, _ in running], timeout=0.5)
            for i, (process, started) in enumerate(running):
                if process.exitcode is not None and not stopping:
                    if time.monotonic() - started < 5:
                        print(f"un processus du serveur s'est arrêté au démarrage (code {process.exitcode})",
                              file=sys.stderr)
                        failed = True
                    else:
                        running[i] = start()
    finally:
        for process, _ in running:
            if process.exitcode is None:
                process.terminate()
        for process, _ in running:
            process.join(30)
            if process.exitcode is None:
                process.kill()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if failed:
        sys.exit(1)
