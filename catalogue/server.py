"""The web server: the JSON API under ``/api`` and the built site as static files.

- ``GET /api/search`` — :func:`catalogue.search.query.search`, the same function as ``catalogue search``;
- ``GET /api/formations/{ref}`` — a formation's whole JSON, as published;
- ``/api/openapi.json`` and ``/api/docs`` — the API's description;
- anything else — a file of ``BUILD/site`` (``index.html`` for a folder, the
  site's ``404.html`` with status 404 when there is none).

``BUILD/site`` and ``BUILD/index`` are resolved again on every request, so a
new build is served as soon as it is published, without a restart. Every
response carries the security headers of :data:`SECURITY_HEADERS`.
"""

from __future__ import annotations

import mimetypes
import os
import re
import secrets
from pathlib import Path
from typing import Annotated, Optional

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from .model import REF_PATTERN
from .search.index import IndexMissing, SearchError, open_index
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
                for name, value in SECURITY_HEADERS.items():
                    if name.encode() not in present:
                        headers.append((name.encode(), value.encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _error(status: int, detail: str) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status)


def create_app(build_dir: Path) -> FastAPI:
    """The application serving ``build_dir`` (its ``site`` and ``index``, re-resolved per request)."""
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
        errors = [
            {"loc": [str(p) for p in e.get("loc", ())], "msg": french_message(e), "type": e.get("type", "")}
            for e in exc.errors()
        ]
        return JSONResponse({"detail": errors}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=getattr(exc, "headers", None))

    @app.get(
        "/api/search",
        response_model=SearchResponse,
        tags=["recherche"],
        responses={
            400: {"model": ErrorDetail, "description": "Requête impossible (ville inconnue, trop de mots…)"},
            **_UNAVAILABLE,
        },
    )
    def api_search(params: Annotated[SearchParams, Query()]):
        """Chercher des formations : mots (analyse française, tolérance aux fautes) ou numéro
        (Ref, numéro d'action ou de session, ``ref|action|session``, SIRET, RNCP), avec filtres."""
        try:
            return search(build_dir, params)
        except IndexMissing as exc:
            return _error(503, str(exc))
        except SearchError as exc:
            return _error(400, str(exc))
        except Exception:
            return _error(503, "index de recherche endommagé ; relancez « catalogue build »")

    @app.get(
        "/api/formations/{ref}",
        tags=["formations"],
        responses={404: {"model": ErrorDetail, "description": "Ref inconnue"}, **_UNAVAILABLE},
    )
    def api_formation(ref: str):
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
    def api_unknown(rest: str = "") -> JSONResponse:
        return _error(404, "adresse inconnue de l'API")

    @app.api_route("/{path:path}", methods=["GET", "HEAD"], include_in_schema=False)
    def site_file(path: str, request: Request) -> Response:
        return _static(build_dir, path, request)

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
        moved = _fiche_moved(site, path)
        return RedirectResponse(moved, status_code=301) if moved else _not_found(site)
    if target.is_dir():
        if path and not path.endswith("/"):
            # One URL per page: /organismes/X → /organismes/X/
            return RedirectResponse("/" + path.lstrip("/") + "/", status_code=308)
        target = target / "index.html"
    if not target.is_file():
        return _not_found(site)
    return FileResponse(target, media_type=_media_type(target))


def _fiche_moved(site: Path, path: str) -> Optional[str]:
    """The new URL of a page whose URL was a folder: ``/formations/<Ref>/`` is now ``/formations/<Ref>.html``.

    Links and bookmarks made before the change keep working.
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


def http_protocol():
    """uvicorn's HTTP/1.1 protocol, whose own 400 (a request it cannot parse, a request line over
    its limit) carries :data:`SECURITY_HEADERS` like every answer of the application."""
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class SecureH11Protocol(H11Protocol):
        def send_400_response(self, msg: str) -> None:
            import h11

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

    return SecureH11Protocol


def run(build_dir: Path, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Serve ``build_dir`` with uvicorn until interrupted."""
    import uvicorn

    uvicorn.run(create_app(Path(build_dir)), host=host, port=port, server_header=False, log_level="info",
                http=http_protocol())
