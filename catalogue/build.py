"""The build, as a list of named phases.

1. read: stream every formation of every source (LHEO, YAML);
2. check: publication rules, Ref uniqueness, régions, postal codes;
3. emit: each published formation goes at once to every sink (fiche page,
   Whoosh index, static search shards...) and is then dropped; only its
   :class:`~catalogue.catalog.Entry` stays;
4. finish: the sinks write what depends on the whole catalogue (organisme
   pages, home, sitemap, shards...);
5. publish: the new ``site/`` and ``index/`` replace the old ones in one rename.

Everything is written into a fresh folder under ``BUILD/.builds/``;
``BUILD/current`` is a symbolic link to the published one, and ``BUILD/site``
and ``BUILD/index`` point through it. A build that fails, or is killed, leaves
the previous site and index served as they were.
"""

from __future__ import annotations

import datetime as dt
import errno
import fcntl
import os
import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Optional, Protocol

from .catalog import Catalog, Entry, summarize
from .model import Formation
from .problems import InvalidInput, Origin, Problem
from .regions import Geo, geo as load_geo
from .report import REPORT_FILES, write_report
from .rules import DuplicateFinder, check_formation, is_published
from .settings import Settings
from .sources import Record, read_sources

BUILDS_DIR = ".builds"
CURRENT = "current"
PUBLISHED_DIRS = ("site", "index")
#: What BUILD/ shows of the published build, each through BUILD/current.
PUBLISHED = PUBLISHED_DIRS + REPORT_FILES
PUBLISHED_MARK = ".published"  # in a build folder once it has been published
KEEP_BUILDS = 2  # the published one and the one before, still open by slow readers


#: File descriptors of the locks this process holds, closed in forked children (Whoosh's writer
#: processes) so that the lock dies with the build even when they outlive it.
_held_locks: list[int] = []


def _after_fork_in_child() -> None:
    if not _held_locks:
        return  # not during a build
    for fd in _held_locks:
        try:
            os.close(fd)
        except OSError:
            pass
    _held_locks.clear()
    _die_with_parent()


def _die_with_parent() -> None:
    """Linux: a child of a build is killed when the build dies (even by SIGKILL)."""
    try:
        import ctypes
        import signal

        libc = ctypes.CDLL(None, use_errno=True)
        PR_SET_PDEATHSIG = 1
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass


os.register_at_fork(after_in_child=_after_fork_in_child)


class BuildLocked(Exception):
    """Another build holds ``BUILD/.lock``."""


class Sink(Protocol):
    """Something a build feeds with every published formation (see :data:`SINKS`)."""

    def add(self, formation: Formation, entry: Entry) -> None:
        """A new or changed formation (every formation, in a full build)."""

    def keep(self, entry: Entry) -> None:
        """A formation unchanged since ``context.previous``: reuse what was written for it there."""

    def finish(self, catalog: Catalog) -> None: ...

    # Optional: ``abort()``, called when the build fails, to release processes or files early.


@dataclass(frozen=True)
class PreviousBuild:
    """The published build an incremental build starts from (made by the same code, templates and settings)."""

    folder: Path  # its folder, laid out as the staging folder; never written to
    refs: frozenset[str]  # the Refs it published


@dataclass(frozen=True)
class SinkContext:
    """What a sink is made with: where to write, and for which day and settings."""

    staging: Path  # the new build's folder; the site goes to staging/"site"
    settings: Settings
    today: dt.date
    geo: Geo
    #: ``None`` in a full build. Otherwise unchanged formations come to ``keep()``, not ``add()``.
    previous: Optional[PreviousBuild] = None


#: Sinks of a full build, by name, in the order they are fed. Each factory is
#: imported lazily so that `catalogue check` loads neither Jinja2 nor Whoosh.
SINKS: dict[str, Callable[[SinkContext], Sink]] = {}


def register_sink(name: str):
    def decorator(factory: Callable[[SinkContext], Sink]):
        SINKS[name] = factory
        return factory

    return decorator


def _load_sinks() -> None:
    from . import exports, render  # noqa: F401  (register "donnees", "site")
    from .search import index, static  # noqa: F401  (register "index", "static-search")


@dataclass(frozen=True)
class BuildOptions:
    content: tuple[Path, ...] = (Path("content"),)
    build_dir: Path = Path("build")
    today: dt.date = field(default_factory=dt.date.today)
    skip_invalid: bool = False


@dataclass
class BuildReport:
    """What a build or a check saw, for the summary and `report.json`."""

    read: int = 0
    published: int = 0
    archived: int = 0
    unpublished: list[Entry] = field(default_factory=list)  # YAML submissions not validated
    errors: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    rejected: set[str] = field(default_factory=set)  # numeros of rejected formations
    output: Optional[Path] = None

    @property
    def ok(self) -> bool:
        return not self.errors


class _Timer:
    def __init__(self, report: BuildReport):
        self.report = report

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.report.timings[name] = self.report.timings.get(name, 0.0) + time.perf_counter() - start


def check(options: BuildOptions, settings: Settings) -> BuildReport:
    """Read and check everything, write nothing."""
    report = BuildReport()
    _read_and_emit(options, settings, report, sinks=[], timer=_Timer(report))
    return report


def build(
    options: BuildOptions,
    settings: Settings,
    *,
    sinks: Optional[list[str]] = None,
    progress: Optional[Callable[[Entry], None]] = None,
) -> BuildReport:
    """Build the site and indexes into a fresh folder and publish it.

    Raises :class:`InvalidInput` (nothing published) when an input has an error
    and ``skip_invalid`` is off, :class:`BuildLocked` when another build runs.
    """
    report = BuildReport()
    timer = _Timer(report)
    build_dir = options.build_dir
    build_dir.mkdir(parents=True, exist_ok=True)
    with _lock(build_dir):
        staging = _new_staging(build_dir)
        active: list[Sink] = []
        try:
            context = SinkContext(staging, settings, options.today, load_geo())
            _load_sinks()
            names = list(SINKS) if sinks is None else sinks
            for name in names:
                active.append(SINKS[name](context))
            catalog = _read_and_emit(options, settings, report, active, timer, progress)
            if report.errors and not options.skip_invalid:
                raise InvalidInput(report.errors)
            for name, sink in zip(names, active):
                with timer.phase(f"finish:{name}"):
                    sink.finish(catalog)
            with timer.phase("report"):
                write_report(staging, report, settings, options.today)
            with timer.phase("publish"):
                _publish(build_dir, staging)
            report.output = build_dir / "site"
        except BaseException:
            for sink in active:
                abort = getattr(sink, "abort", None)
                if abort is not None:
                    abort()
            shutil.rmtree(staging, ignore_errors=True)
            raise
        _prune(build_dir)
    return report


def _read_and_emit(
    options: BuildOptions,
    settings: Settings,
    report: BuildReport,
    sinks: list[Sink],
    timer: _Timer,
    progress: Optional[Callable[[Entry], None]] = None,
) -> Catalog:
    geo = load_geo()
    seen: dict[str, Origin] = {}
    duplicates = DuplicateFinder()
    entries: list[Entry] = []
    refused_by_reader: set[str] = set()
    items = read_sources(options.content)
    while True:
        with timer.phase("read"):
            item = next(items, None)
        if item is None:
            break
        if isinstance(item, Problem):
            (report.errors if item.is_error else report.warnings).append(item)
            if item.is_error and item.numero and item.numero != "-":
                refused_by_reader.add(item.numero)
            continue
        report.read += 1
        with timer.phase("check"):
            entry = _check(item, options, settings, geo, seen, report)
        if entry is None:
            continue
        if not is_published(item.statut):
            report.unpublished.append(entry)
            continue
        duplicates.add(entry)
        entries.append(entry)
        report.published += 1
        report.archived += entry.archived
        for sink in sinks:
            with timer.phase(f"emit:{type(sink).__module__.rsplit('.', 1)[-1]}"):
                sink.add(item.formation, entry)
        if progress:
            progress(entry)
    report.warnings.extend(duplicates.problems())
    # A formation the reader refused was read all the same: count it once, however many its problems.
    report.read += len(refused_by_reader - report.rejected)
    report.rejected |= refused_by_reader
    return Catalog.of(entries, options.today)


def _check(
    record: Record,
    options: BuildOptions,
    settings: Settings,
    geo: Geo,
    seen: dict[str, Origin],
    report: BuildReport,
) -> Optional[Entry]:
    """The entry of a record that passes every rule, or ``None`` (its problems reported)."""
    numero = record.numero
    if numero in seen:
        report.errors.append(
            Problem(record.origin, numero, "numero", f"Ref déjà présente en {seen[numero]} : elle n'est pas écrasée")
        )
        report.rejected.add(numero)
        return None
    seen[numero] = record.origin
    entry = summarize(
        record.formation,
        origin=record.origin,
        statut=record.statut,
        today=options.today,
        settings=settings,
        geo=geo,
        motif_refus=record.motif_refus,
    )
    problems = list(check_formation(record.formation, entry, settings, geo))
    report.warnings.extend(p for p in problems if not p.is_error)
    errors = [p for p in problems if p.is_error]
    if errors:
        report.errors.extend(errors)
        report.rejected.add(numero)
        return None
    return entry


# --------------------------------------------------------------------------
# Staging, publication and the lock
# --------------------------------------------------------------------------


@contextmanager
def _lock(build_dir: Path) -> Iterator[None]:
    handle = open(build_dir / ".lock", "a+")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                raise BuildLocked(
                    f"{build_dir}: un autre build est en cours (verrou {build_dir / '.lock'}) ; "
                    "réessayez quand il sera fini"
                ) from None
            raise
        _held_locks.append(handle.fileno())
        try:
            yield
        finally:
            if handle.fileno() in _held_locks:
                _held_locks.remove(handle.fileno())
    finally:
        handle.close()


def _new_staging(build_dir: Path) -> Path:
    builds = build_dir / BUILDS_DIR
    builds.mkdir(exist_ok=True)
    # Names sort in build order, which _prune relies on; the pid keeps concurrent attempts apart.
    staging = builds / f"{time.time_ns():020d}-{os.getpid()}"
    staging.mkdir()
    for name in PUBLISHED_DIRS:
        (staging / name).mkdir()
    return staging


def _publish(build_dir: Path, staging: Path) -> None:
    """Point ``BUILD/current`` at ``staging`` in one atomic rename."""
    for name in PUBLISHED:
        link = build_dir / name
        if link.is_symlink() or not link.exists():
            if not link.is_symlink():
                link.symlink_to(Path(CURRENT) / name)
        else:
            raise FileExistsError(errno.EEXIST, "existe et n'est pas un lien : déplacez-le avant de construire ici", str(link))
    tmp = build_dir / f".{CURRENT}.{os.getpid()}"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    tmp.symlink_to(staging.relative_to(build_dir))
    # Marked before the switch: once published, nothing may fail and have the folder removed.
    (staging / PUBLISHED_MARK).touch()
    os.replace(tmp, build_dir / CURRENT)
    _fsync_dir(build_dir)


def _fsync_dir(path: Path) -> None:
    """Make the switch durable; best effort, since the build is already published."""
    try:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass


def published_build(build_dir: Path) -> Optional[Path]:
    """The folder of the published build, or ``None`` before the first."""
    current = build_dir / CURRENT
    return current.resolve() if current.is_symlink() and current.exists() else None


def _prune(build_dir: Path) -> None:
    """Remove old builds and leftovers of killed ones, keeping the last few published."""
    current = published_build(build_dir)
    builds = sorted((build_dir / BUILDS_DIR).iterdir(), key=lambda p: p.name)
    keep = [p for p in builds if p.resolve() == current]
    older = [p for p in builds if (current is None or p.name < current.name) and (p / PUBLISHED_MARK).exists()]
    keep += older[-(KEEP_BUILDS - 1) :] if KEEP_BUILDS > 1 else []
    for path in builds:
        if path not in keep:
            shutil.rmtree(path, ignore_errors=True)
