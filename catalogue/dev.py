"""``catalogue dev``: build, serve ``BUILD/site`` with livereload, rebuild on every change.

- the content paths, ``templates/`` (with ``templates/static/``) and the settings
  file are polled (:class:`RebuildTrigger`); saves closer together than
  :data:`QUIET_SECONDS` make one rebuild (:class:`Debouncer`);
- a rebuild runs in a worker thread (:class:`DevBuilder`), so the previous site
  is served meanwhile; when it is done, every open page reloads through
  livereload's websocket;
- a rebuild that fails (bad content, bad settings, an error in a template)
  keeps the server running: the problems go to the terminal, one a line, and
  every page request gets an error page listing them (status 500) until a
  rebuild succeeds. The previous site stays published in ``BUILD/current``,
  and styles, scripts and search shards are still served from it.

Only the sinks the pages need are built (:data:`DEV_SINKS`): the site and the
static search shards, which the search page queries. The Whoosh index (used by
``catalogue serve``'s API only) is skipped: it is a third of the build time.

We use livereload for what it does well (the websocket, ``livereload.js`` and
injecting its script into HTML responses) but not for watching: its poller
runs tasks on the IO loop, blocking requests during a build, and drops any
reload within 3 s of the previous one, so a quick second save would leave the
page stale.
"""

from __future__ import annotations

import datetime as dt
import html
import logging
import os
import signal
import sys
import threading
import time
import traceback
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Iterable, Optional

from .build import BuildLocked, BuildOptions, build
from .problems import InvalidInput
from .settings import SETTINGS_FILE, SettingsError, load_settings

#: The sinks a dev build feeds: the pages and what the search page reads.
DEV_SINKS = ("site", "static-search")
#: How often the watched files are polled.
POLL_SECONDS = 0.2
#: A rebuild starts once no file has changed for this long...
QUIET_SECONDS = 0.5
#: ...or this long after the first change, if files keep changing.
MAX_WAIT_SECONDS = 3.0
#: Written into BUILD/ while the last build failed (the page every HTML request gets).
ERROR_PAGE = "dev-error.html"
#: Editors' swap and backup files: saving them is not a change of the content.
_IGNORED_SUFFIXES = (".swp", ".swx", ".swo", ".tmp", "~")

Echo = Callable[[str], None]


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# Watching
# --------------------------------------------------------------------------


def snapshot(paths: Iterable[Path], exclude: Iterable[Path] = ()) -> dict[str, tuple[int, int]]:
    """The modification time (ns) and size of every file under ``paths`` (files or folders).

    Hidden files and folders, editors' swap files and anything under ``exclude``
    (the build folder, should it sit inside the content) are left out. A path
    that does not exist yet is simply empty: creating it is a change.
    """
    excluded = [os.path.realpath(p) for p in exclude]
    found: dict[str, tuple[int, int]] = {}

    def add(path: str) -> None:
        name = os.path.basename(path)
        if name.startswith(".") or name.endswith(_IGNORED_SUFFIXES):
            return
        try:
            stat = os.stat(path)
        except OSError:
            return  # removed while we looked
        found[path] = (stat.st_mtime_ns, stat.st_size)

    for root in paths:
        root = os.fspath(root)
        if os.path.isfile(root):
            add(root)
            continue
        for folder, dirs, files in os.walk(root, followlinks=True):
            real = os.path.realpath(folder)
            dirs[:] = sorted(
                d for d in dirs if not d.startswith(".") and os.path.realpath(os.path.join(real, d)) not in excluded
            )
            for name in files:
                add(os.path.join(folder, name))
    return found


class Debouncer:
    """Turns a burst of changes into one rebuild: due once quiet for ``quiet`` seconds,
    or ``max_wait`` seconds after the first change of the burst."""

    def __init__(self, quiet: float = QUIET_SECONDS, max_wait: float = MAX_WAIT_SECONDS):
        self.quiet = quiet
        self.max_wait = max_wait
        self.first: Optional[float] = None
        self.last: Optional[float] = None

    def touch(self, now: float) -> None:
        if self.first is None:
            self.first = now
        self.last = now

    def due(self, now: float) -> bool:
        if self.first is None or self.last is None:
            return False
        return now - self.last >= self.quiet or now - self.first >= self.max_wait

    def clear(self) -> None:
        self.first = self.last = None


class RebuildTrigger:
    """Says when to rebuild: polls the watched files and debounces their changes.

    The first snapshot is taken when the trigger is made, so a file saved during
    the initial build still causes a rebuild.
    """

    def __init__(self, paths: Iterable[Path], exclude: Iterable[Path] = (), debouncer: Optional[Debouncer] = None):
        self.paths = tuple(paths)
        self.exclude = tuple(exclude)
        self.debouncer = debouncer or Debouncer()
        self.files = snapshot(self.paths, self.exclude)

    def poll(self, now: float) -> bool:
        """Whether a rebuild is due now (and, if so, forget the changes it covers)."""
        files = snapshot(self.paths, self.exclude)
        if files != self.files:
            self.files = files
            self.debouncer.touch(now)
        if self.debouncer.due(now):
            self.debouncer.clear()
            return True
        return False

    def retry(self, now: float) -> None:
        """Rebuild again after a quiet period, changes or not (the build was locked)."""
        self.debouncer.touch(now)


# --------------------------------------------------------------------------
# Building
# --------------------------------------------------------------------------


class DevBuilder:
    """Builds the site, and remembers whether the last build failed and why.

    :attr:`error_page` is the HTML page to show instead of the site (``None``
    after a successful build); it is also written to ``BUILD/dev-error.html``.
    """

    def __init__(
        self,
        content: tuple[Path, ...],
        build_dir: Path,
        config: Optional[Path] = None,
        sinks: Iterable[str] = DEV_SINKS,
        echo: Echo = _stderr,
    ):
        from . import render  # the templates' folder; also loads Jinja2 once, here

        self.content = tuple(content) or (Path("content"),)
        self.build_dir = Path(build_dir)
        self.config = config
        self.sinks = list(sinks)
        self.echo = echo
        self.templates_dir = Path(render.TEMPLATES_DIR)
        self.problems: list[str] = []
        self.error_page: Optional[str] = None
        self._warnings: list[str] = []

    @property
    def settings_file(self) -> Path:
        return self.config if self.config is not None else Path(SETTINGS_FILE)

    @property
    def watched(self) -> tuple[Path, ...]:
        return self.content + (self.templates_dir, self.settings_file)

    @property
    def failed(self) -> bool:
        return self.error_page is not None

    def rebuild(self) -> bool:
        """Build and publish; ``False`` when the build failed (its problems shown).

        Raises :class:`BuildLocked` when another build holds the folder: that
        says nothing of the content, so the error page is left as it was.
        """
        start = time.perf_counter()
        try:
            settings = load_settings(self.config)
            options = BuildOptions(content=self.content, build_dir=self.build_dir, today=dt.date.today())
            report = build(options, settings, sinks=self.sinks)
        except BuildLocked:
            raise
        except InvalidInput as exc:
            self._fail([str(p) for p in exc.problems], f"{len(exc.problems)} erreur(s) dans le contenu")
            return False
        except SettingsError as exc:
            self._fail([f"réglages : {exc}"], "réglages illisibles")
            return False
        except Exception as exc:  # a template, a sink or the disk: show it, keep serving
            lines, trace = describe_exception(exc, self.templates_dir)
            self._fail(lines, "erreur pendant la construction", trace)
            return False
        self._succeed(report, time.perf_counter() - start)
        return True

    def _succeed(self, report, seconds: float) -> None:
        was_failing = self.failed
        self.problems = []
        self.error_page = None
        (self.build_dir / ERROR_PAGE).unlink(missing_ok=True)
        warnings = [f"{w} [avertissement]" for w in report.warnings]
        if warnings != self._warnings:  # shown again only when they change
            for line in warnings:
                self.echo(line)
            self._warnings = warnings
        self.echo(
            f"Site reconstruit en {seconds:.1f} s : {report.published} formation(s) publiée(s), "
            f"{len(report.warnings)} avertissement(s)." + (" Les erreurs sont corrigées." if was_failing else "")
        )

    def _fail(self, lines: list[str], summary: str, trace: Optional[str] = None) -> None:
        self.problems = lines
        for line in lines:
            self.echo(line)
        if trace:
            self.echo(trace.rstrip("\n"))
        self.echo(f"Échec du build ({summary}) : le site précédent reste servi, la page affiche les erreurs.")
        page = error_page(lines, trace)
        self.build_dir.mkdir(parents=True, exist_ok=True)
        (self.build_dir / ERROR_PAGE).write_text(page, encoding="utf-8")
        self.error_page = page


def _display_path(path: str) -> str:
    """``path`` relative to the working folder when it is inside it (``templates/base.html``)."""
    absolute = os.path.abspath(path)
    here = os.getcwd() + os.sep
    return absolute[len(here) :] if absolute.startswith(here) else absolute


def describe_exception(exc: BaseException, templates_dir: Path) -> tuple[list[str], str]:
    """One ``path:line: message`` line for an unexpected build error, and its traceback.

    The place is the template line when a template is at fault (Jinja2 puts its
    frames into the traceback), else the innermost frame.
    """
    from jinja2 import TemplateSyntaxError

    trace = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    message = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, TemplateSyntaxError):
        where = f"{_display_path(exc.filename or exc.name or '?')}:{exc.lineno}"
        return [f"{where}: -: -: {type(exc).__name__}: {exc.message}"], trace
    frames = traceback.extract_tb(exc.__traceback__)
    templates = os.path.realpath(templates_dir) + os.sep
    in_templates = [f for f in frames if os.path.realpath(f.filename).startswith(templates)]
    frame = (in_templates or frames or [None])[-1]
    where = f"{_display_path(frame.filename)}:{frame.lineno}" if frame else "?:0"
    return [f"{where}: -: -: {message}"], trace


def error_page(problems: list[str], trace: Optional[str] = None) -> str:
    """The page shown instead of the site while the last build failed; every text escaped."""
    items = "\n".join(f"<li><code>{html.escape(line)}</code></li>" for line in problems)
    details = (
        f"<details><summary>Trace complète</summary><pre>{html.escape(trace)}</pre></details>\n" if trace else ""
    )
    return f"""<!DOCTYPE html>
<html lang="fr">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Erreur de construction | catalogue dev</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 60rem; padding: 0 1rem; color: #1e1e1e; }}
h1 {{ color: #b00020; font-size: 1.5rem; }}
li {{ margin: .4rem 0; }}
code, pre {{ white-space: pre-wrap; overflow-wrap: anywhere; }}
pre {{ background: #f4f4f4; padding: 1rem; font-size: .85rem; }}
</style>
</head>
<body>
<main>
<h1>Le site n'a pas pu être reconstruit</h1>
<p>{len(problems)} problème(s). Le site précédent reste publié ; corrigez et enregistrez :
cette page se rechargera d'elle-même.</p>
<ul>
{items}
</ul>
{details}</main>
</body>
</html>
"""


# --------------------------------------------------------------------------
# Serving
# --------------------------------------------------------------------------


def is_page_path(path: str) -> bool:
    """Whether a URL path names a page (a folder or an ``.html`` file), not an asset."""
    last = path.rsplit("/", 1)[-1]
    return last == "" or last.endswith(".html") or "." not in last


def _site_handler():
    from tornado import web

    class SiteHandler(web.StaticFileHandler):
        """``BUILD/site``, re-resolved for each request so that every publish is picked up,
        never cached; the error page for pages while the last build failed."""

        def initialize(self, builder: DevBuilder) -> None:  # type: ignore[override]
            self.builder = builder
            # Resolved once per request: one request reads one build, even if a publish happens meanwhile.
            super().initialize(path=os.path.realpath(builder.build_dir / "site"), default_filename="index.html")

        async def get(self, path: str, include_body: bool = True) -> None:
            page = self.builder.error_page
            if page is not None and is_page_path(path):
                self.set_status(500)
                self.set_header("Content-Type", "text/html; charset=utf-8")
                self.set_header("Cache-Control", "no-store")
                if include_body:
                    self.write(page)
                return
            await super().get(path, include_body)

        def get_content_type(self) -> str:
            kind = super().get_content_type()
            textual = kind.startswith("text/") or kind in ("application/javascript", "application/json")
            return f"{kind}; charset=utf-8" if textual and "charset" not in kind else kind

        def compute_etag(self) -> None:
            return None

        def should_return_304(self) -> bool:
            return False

        def get_cache_time(self, path, modified, mime_type) -> int:
            return 0

        def set_extra_headers(self, path: str) -> None:
            self.set_header("Cache-Control", "no-store")

        def write_error(self, status_code: int, **kwargs) -> None:
            page = Path(self.root) / "404.html"
            if status_code == 404 and page.is_file():
                self.set_header("Content-Type", "text/html; charset=utf-8")
                self.finish(page.read_bytes())
                return
            super().write_error(status_code, **kwargs)

    return SiteHandler


def serve_dev(
    content: tuple[Path, ...],
    build_dir: Path,
    port: int = 8000,
    host: str = "127.0.0.1",
    config: Optional[Path] = None,
    *,
    sinks: Iterable[str] = DEV_SINKS,
    echo: Echo = _stderr,
) -> None:
    """Build once, then serve ``build_dir/site`` on ``host:port`` until interrupted
    (Ctrl-C or SIGTERM), rebuilding and reloading the browser on every change.

    Raises :class:`BuildLocked` when another build holds ``build_dir`` at start,
    :class:`OSError` when the port cannot be listened on.
    """
    from livereload import Server
    from livereload.handlers import LiveReloadHandler
    from livereload.watcher import Watcher
    from tornado.ioloop import IOLoop, PeriodicCallback

    builder = DevBuilder(tuple(content), Path(build_dir), config, sinks, echo)
    trigger = RebuildTrigger(builder.watched, exclude=[builder.build_dir])
    builder.rebuild()
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="catalogue-dev-build")
    running: list[Future] = []
    locked: list[bool] = []  # said once per wait, not at every retry

    def built(future: Future) -> None:
        running.clear()
        try:
            future.result()
        except BuildLocked as exc:
            if not locked:
                echo(f"{exc} (catalogue dev réessaiera de lui-même)")
                locked.append(True)
            trigger.retry(time.monotonic())
            return
        except Exception:  # rebuild() reports every build error itself; this would be a bug of ours
            echo(traceback.format_exc().rstrip("\n"))
        locked.clear()
        LiveReloadHandler.reload_waiters("*")

    def tick() -> None:
        if not running and trigger.poll(time.monotonic()):
            future = executor.submit(builder.rebuild)
            running.append(future)
            IOLoop.current().add_future(future, built)

    class DevWatcher(Watcher):
        """Tells livereload that we watch (so it does not poll) and polls on its loop."""

        def start(self, callback) -> bool:
            PeriodicCallback(tick, POLL_SECONDS * 1000).start()
            return True

    site_handler = _site_handler()

    class DevServer(Server):
        def get_web_handlers(self, script):
            return [(r"/(.*)", site_handler, {"builder": builder})]

        def application(self, *args, **kwargs):
            super().application(*args, **kwargs)
            shown = ", ".join(str(p) for p in builder.watched)
            echo(f"Site servi sur http://{host}:{port}/ avec rechargement automatique. Surveillés : {shown}.")
            echo("Ctrl-C pour arrêter.")

        def _setup_logging(self) -> None:
            pass  # livereload's own (English) log lines stay quiet; ours are above

    # A page shown while the build is broken answers 500: not worth a log line each time.
    logging.getLogger("tornado.access").setLevel(logging.CRITICAL)
    watcher = DevWatcher()
    for path in builder.watched:
        watcher.watch(str(path))
    server = DevServer(watcher=watcher)
    _stop_on_sigterm()
    try:
        server.serve(port=port, host=host, root=None, debug=False, restart_delay=0)
    finally:
        executor.shutdown(wait=True)  # a build under way publishes or cleans up before we leave
    echo("Serveur arrêté.")


def _stop_on_sigterm() -> None:
    """Make SIGTERM stop the IO loop, as Ctrl-C does, rather than kill the process mid-build.

    The handler belongs to the loop, and goes with it when livereload closes it.
    """
    if threading.current_thread() is not threading.main_thread():
        return
    from tornado.ioloop import IOLoop

    loop = IOLoop.current()
    loop.asyncio_loop.add_signal_handler(signal.SIGTERM, loop.stop)
