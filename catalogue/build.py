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
import gc
import os
import shutil
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Optional, Protocol

from .catalog import Catalog, Entry, summarize
from .incremental import Fresh, Manifest, ManifestUnreadable, Outcome, Reused, build_key, read_incremental, valid_until
from .model import Formation
from .problems import InvalidInput, Origin, Problem
from .regions import Geo, geo as load_geo
from .report import REPORT_FILES, write_report
from .rules import DuplicateFinder, check_formation, is_published, normalise_title
from .settings import Settings
from .sources import Record

BUILDS_DIR = ".builds"
TRASH_DIR = ".trash"  # old builds, deleted by a process of their own
CURRENT = "current"
PUBLISHED_DIRS = ("site", "index")
#: What BUILD/ shows of the published build, each through BUILD/current.
PUBLISHED = PUBLISHED_DIRS + REPORT_FILES
TEMPLATES_CACHE = ".templates"  # compiled Jinja2 templates, shared by the builds of this folder
PUBLISHED_MARK = ".published"  # in a build folder once it has been published
KEEP_BUILDS = 2  # the published one and the one before, still open by slow readers


#: File descriptors of the locks this process holds, closed in forked children (Whoosh's writer
#: processes) so that the lock dies with the build even when they outlive it.
_held_locks: list[int] = []


#: Niceness added to the processes a build starts (fiche, Whoosh writer, store and static search workers, the
#: exports' compressor). The build's own process is its critical path: the work it hands to others waits for it,
#: never the reverse, until the end. Niced, those processes share one core and leave the other to it, rather
#: than the three or four of them taking turns on both.
CHILD_NICENESS = 5


def _after_fork_in_child() -> None:
    if not _held_locks:
        return  # not during a build
    try:
        os.nice(CHILD_NICENESS)
    except OSError:
        pass
    for fd in _held_locks:
        try:
            os.close(fd)
        except OSError:
            pass
    _held_locks.clear()
    die_with_parent()


def die_with_parent() -> None:
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

    # Optional: ``keep_all(entries)``, the same as ``keep()`` of each in turn, for a sink that can take a
    # stretch of unchanged formations at once (most of a rebuild's 100,000 formations are such stretches).

    def finish(self, catalog: Catalog) -> None: ...

    # Optional: ``abort()``, called when the build fails, to release processes or files early; ``wait()``,
    # called once every sink has finished and before the build is published, for a sink whose finish()
    # left work running elsewhere (the index's update process commits while the other sinks finish).
    # Optional: ``hands_off``, true when finish() only hands the work to a process of the sink's own
    # (collected by wait()): such sinks finish first, so that their process works while the others finish.


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
    #: Rebuild everything even when the published build could be reused.
    full: bool = False


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
    incremental: bool = False  # made from the previous published build
    rendered: int = 0  # published formations given whole to the sinks (all, in a full build)
    reused: int = 0  # published formations unchanged since the previous build, whose files were linked
    removed: int = 0  # formations the previous build published and this one does not
    unchanged: bool = False  # nothing changed since the published build: nothing was written

    @property
    def ok(self) -> bool:
        return not self.errors


class Progress(Protocol):
    """Someone watching a build: the CLI's progress bar."""

    def advance(self, done: int) -> None:
        """``done`` more bytes of input were read and emitted (out of :func:`~catalogue.incremental.source_bytes`)."""

    def phase(self, name: str) -> None:
        """A phase after the reading starts (``finish:site``, ``publish``...)."""


class _Timer:
    def __init__(self, report: BuildReport, progress: Optional[Progress] = None):
        self.report = report
        self.progress = progress

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        if self.progress is not None and not name.startswith(("read", "emit:")):
            self.progress.phase(name)
        start = time.perf_counter()
        try:
            yield
        finally:
            self.report.timings[name] = self.report.timings.get(name, 0.0) + time.perf_counter() - start


def check(options: BuildOptions, settings: Settings) -> BuildReport:
    """Read and check everything, write nothing."""
    report = BuildReport()
    timer = _Timer(report)
    _read_and_emit(options, settings, report, _Emitter(list, timer, lazy=False), timer, previous=None)
    return report


def build(
    options: BuildOptions,
    settings: Settings,
    *,
    sinks: Optional[list[str]] = None,
    progress: Optional[Progress] = None,
) -> BuildReport:
    """Build the site and indexes into a fresh folder and publish it.

    When the published build was made by the same code, templates and
    settings, the build is incremental: formations whose bytes did not change
    are not parsed again, and the sinks link their files instead of writing
    them. ``progress`` hears of the input bytes done and of each later phase.

    Raises :class:`InvalidInput` (nothing published) when an input has an error
    and ``skip_invalid`` is off, :class:`BuildLocked` when another build runs.
    """
    _load_sinks()
    names = list(SINKS) if sinks is None else sinks
    build_dir = options.build_dir
    build_dir.mkdir(parents=True, exist_ok=True)
    from .render import keep_compiled_templates

    keep_compiled_templates(build_dir / TEMPLATES_CACHE)
    with _lock(build_dir), _collector_for_builds():
        key = build_key(settings, names)
        # A sink that cannot reuse its files (no keep()) makes every build a full one.
        reusable = all(hasattr(SINKS[name], "keep") for name in names)
        previous = _previous(build_dir, key, names) if reusable and not options.full else None
        if previous is not None:
            # The manifest's objects live as long as the build: the collector need not walk them
            # over and over (a third of the time of reading an unchanged catalogue).
            gc.freeze()
        try:
            report = _build_into(options, settings, names, key, previous, progress)
        except (PreviousBuildDamaged, ManifestUnreadable):
            # A file of the published build went missing, or its outcomes cannot be read: rebuild
            # everything rather than fail.
            report = _build_into(options, settings, names, key, None, progress)
        finally:
            gc.unfreeze()  # also what loading the manifest froze when it could not be used
        _prune_later(build_dir)
    return report


#: Allocations between two collections of the youngest generation during a build (Python's default: 700).
BUILD_GC_THRESHOLD = 50_000


@contextmanager
def _collector_for_builds() -> Iterator[None]:
    """Collect garbage less often while building.

    A build makes millions of objects that live as long as it does (entries,
    outcomes, indexes being written) and few cycles: with Python's default
    threshold the collector runs about 190 times per thousand formations and
    walks what the build keeps again and again (5 to 6 % of a full build at
    10,000 formations, more as the catalogue grows). Forked workers inherit it.
    """
    before = gc.get_threshold()
    gc.set_threshold(BUILD_GC_THRESHOLD, before[1], before[2])
    try:
        yield
    finally:
        gc.set_threshold(*before)


class PreviousBuildDamaged(Exception):
    """A file the incremental build meant to reuse is missing from the published build."""


def _previous(build_dir: Path, key: str, sinks: list[str]) -> Optional[tuple[PreviousBuild, Manifest]]:
    """The published build to start from, when it was made alike and is still whole."""
    folder = published_build(build_dir)
    manifest = Manifest.open(folder, key) if folder is not None else None
    if manifest is None or not _intact(folder, manifest, sinks):
        return None
    return PreviousBuild(folder, frozenset(manifest.published)), manifest


def _intact(folder: Path, manifest: Manifest, sinks: list[str]) -> bool:
    """Whether the published build still holds what it published: a build repairs one damaged by hand.

    Cheap checks (under a second at 100,000 formations): every fiche page is
    there, and the search index opens and counts every formation.
    """
    if not (folder / PUBLISHED_MARK).exists():
        return False
    try:
        if "site" in sinks:
            # One listing of the folder rather than a stat per fiche: ten times cheaper at 100,000.
            pages = set(os.listdir(folder / "site" / "formations"))
            if any(f"{ref}.html" not in pages for ref in manifest.published):
                return False
        if "index" in sinks:
            from .search.index import check_previous

            check_previous(PreviousBuild(folder, frozenset(manifest.published)))
    except Exception:  # noqa: BLE001  (whatever is broken, a full build repairs it)
        return False
    return True


def _build_into(
    options: BuildOptions,
    settings: Settings,
    names: list[str],
    key: str,
    previous: Optional[tuple[PreviousBuild, Manifest]],
    progress: Optional[Progress],
) -> BuildReport:
    report = BuildReport(incremental=previous is not None)
    timer = _Timer(report, progress)
    build_dir = options.build_dir
    staging = _new_staging(build_dir)
    active: list[Sink] = []
    try:
        # The sinks' context is made when they open: a build where nothing changed never loads the communes.
        def open_sinks() -> list[Sink]:
            context = SinkContext(staging, settings, options.today, load_geo(), previous[0] if previous else None)
            for name in names:
                active.append(SINKS[name](context))
            return active

        emitter = _Emitter(open_sinks, timer, lazy=previous is not None)
        catalog, manifest, unchanged = _read_and_emit(options, settings, report, emitter, timer, previous, progress, key)
        if report.errors and not options.skip_invalid:
            raise InvalidInput(report.errors)
        if unchanged:
            # Same bytes, same outcomes, same day's pages: the published build is this build.
            shutil.rmtree(staging, ignore_errors=True)
            report.unchanged = True
            report.output = build_dir / "site"
            return report
        emitter.open()
        emitter.flush()
        if previous is not None:
            report.removed = len(previous[0].refs - manifest.published.keys())
        for name, sink in _finish_order(names, active):
            with timer.phase(f"finish:{name}"):
                sink.finish(catalog)
        # Before the waits: sinks' processes still at work leave this process the time to write them.
        with timer.phase("report"):
            write_report(staging, report, settings, options.today)
            manifest.save(staging, (previous[0].folder, previous[1]) if previous else None)
        for name, sink in zip(names, active):
            wait = getattr(sink, "wait", None)
            if wait is not None:
                with timer.phase(f"wait:{name}"):
                    wait()
        with timer.phase("publish"):
            _publish(build_dir, staging)
        report.output = build_dir / "site"
    except BaseException as exc:
        for sink in active:
            abort = getattr(sink, "abort", None)
            if abort is not None:
                abort()
        shutil.rmtree(staging, ignore_errors=True)
        if previous is not None and _is_in(exc, previous[0].folder):
            raise PreviousBuildDamaged(str(exc)) from exc
        raise
    return report


def _finish_order(names: list[str], sinks: list[Sink]) -> list[tuple[str, Sink]]:
    """The sinks in the order they finish: those whose finish() hands the work off first, else as fed."""
    pairs = list(zip(names, sinks))
    return sorted(pairs, key=lambda pair: not getattr(pair[1], "hands_off", False))  # stable: else as fed


def _is_in(exc: BaseException, folder: Path) -> bool:
    """A missing file of ``folder`` (the published build) caused ``exc``."""
    name = getattr(exc, "filename", None)
    return isinstance(exc, FileNotFoundError) and name is not None and Path(name).is_relative_to(folder)


def _read_and_emit(
    options: BuildOptions,
    settings: Settings,
    report: BuildReport,
    emitter: "_Emitter",
    timer: _Timer,
    previous: Optional[tuple[PreviousBuild, Manifest]],
    progress: Optional[Progress] = None,
    key: str = "",
) -> tuple[Catalog, Manifest, bool]:
    """Read every formation, check it, and give each published one to the sinks.

    Returns the catalogue, this build's manifest, and whether everything is as
    the previous build left it (same outcome objects, nothing added, moved or
    removed): then the sinks were never opened.
    """
    known = previous[1] if previous is not None else None
    state = _ReadState(report, Manifest(key, options.today, {}, {}))
    duplicates = DuplicateFinder()
    entries: list[Entry] = []
    items = read_incremental(
        options.content, known, options.today, progress.advance if progress else None, cuts=state.manifest.cuts
    )
    same = known is not None
    clock = time.perf_counter
    read_time = 0.0  # per formation, a context manager would cost more than some of the work it times
    while True:
        start = clock()
        item = next(items, None)
        if isinstance(item, Fresh):
            outcome = _evaluate(item, options, settings, load_geo())
        read_time += clock() - start
        if item is None:
            break
        if isinstance(item, Problem):
            state.problem(item)
            same = False
            continue
        if isinstance(item, Fresh):
            formation = next((i.formation for i in item.items if isinstance(i, Record)), None)
            same = False
        else:
            outcome, formation = item.outcome, None
            same = same and known.outcomes.get(outcome.digest) is outcome
        entry = state.take(outcome)
        if entry is None:
            continue
        if not is_published(entry.statut):
            report.unpublished.append(entry)
            continue
        duplicates.add(entry, outcome.title_key)
        entries.append(entry)
        report.published += 1
        report.archived += entry.archived
        state.manifest.published[entry.ref] = outcome.digest
        # A Reused outcome holds today (read_incremental checked): the same digest under the same Ref is enough.
        if known is not None and (
            known.published.get(entry.ref) == outcome.digest
            if isinstance(item, Reused)
            else _unchanged(known, entry.ref, outcome.digest, options.today)
        ):
            report.reused += 1
            emitter.keep(entry)
        else:
            report.rendered += 1
            if formation is None:
                with timer.phase("read"):
                    formation = _read_again(item)
            emitter.add(formation, entry)
    timer.report.timings["read"] = timer.report.timings.get("read", 0.0) + read_time
    report.warnings.extend(duplicates.problems())
    # A formation the reader refused was read all the same: count it once, however many its problems.
    report.read += len(state.refused_by_reader - report.rejected)
    report.rejected |= state.refused_by_reader
    manifest = state.manifest
    same = same and len(manifest.outcomes) == len(known.outcomes) and manifest.published == known.published
    return Catalog.of(entries, options.today), manifest, same


class _Emitter:
    """Gives formations to the sinks, opened only once something changed.

    In an incremental build the unchanged formations before the first change
    wait in a list, and are given to ``keep()`` when the sinks open; if nothing
    changes at all, the sinks are never opened (no Whoosh writer started, no
    file linked).
    """

    def __init__(self, open_sinks: Callable[[], list[Sink]], timer: _Timer, lazy: bool):
        self._open_sinks = open_sinks
        self._timer = timer
        self.sinks: Optional[list[Sink]] = None
        #: Unchanged formations not yet given to the sinks: each stretch goes at once, before the next add.
        self._pending: list[Entry] = []
        self._phases: list[str] = []  # "emit:<module>" of each sink, for the timings
        if not lazy:
            self.open()

    def open(self) -> list[Sink]:
        if self.sinks is None:
            self.sinks = self._open_sinks()
            self._phases = [f"emit:{_sink_name(sink)}" for sink in self.sinks]
        return self.sinks

    def keep(self, entry: Entry) -> None:
        self._pending.append(entry)

    def add(self, formation: Formation, entry: Entry) -> None:
        self.open()
        self.flush()
        self._each("add", formation, entry)

    def flush(self) -> None:
        """Give the sinks the unchanged formations waiting (the build calls it once the read is done)."""
        if self._pending and self.sinks is not None:
            pending, self._pending = self._pending, []
            timings = self._timer.report.timings
            clock = time.perf_counter
            for sink, phase in zip(self.sinks, self._phases):
                start = clock()
                keep_all = getattr(sink, "keep_all", None)
                if keep_all is not None:
                    keep_all(pending)
                else:
                    keep = sink.keep
                    for entry in pending:
                        keep(entry)
                timings[phase] = timings.get(phase, 0.0) + clock() - start

    def _each(self, method: str, *args) -> None:
        """Call ``method`` of every sink, timing each (by hand: a context manager per call costs more)."""
        timings = self._timer.report.timings
        clock = time.perf_counter
        for sink, phase in zip(self.sinks, self._phases):
            start = clock()
            getattr(sink, method)(*args)
            timings[phase] = timings.get(phase, 0.0) + clock() - start


def _sink_name(sink: Sink) -> str:
    return type(sink).__module__.rsplit(".", 1)[-1]


def _unchanged(known: Manifest, ref: str, digest: bytes, today: dt.date) -> bool:
    """The previous build published this very formation, and its pages then are its pages today."""
    if known.published.get(ref) != digest:
        return False
    outcome = known.outcomes.get(digest)
    return outcome is not None and outcome.holds_on(today)


def _read_again(item: Reused) -> Formation:
    for read in item.load():
        if isinstance(read, Record):
            return read.formation
    raise RuntimeError(f"{item.outcome.origin}: {item.numero}: la formation ne se relit plus à l'identique")


def _evaluate(fresh: Fresh, options: BuildOptions, settings: Settings, geo: Geo) -> Outcome:
    """The outcome of a formation read now: its entry and problems, and the days they hold."""
    read_problems = tuple(i for i in fresh.items if isinstance(i, Problem))
    record = next((i for i in fresh.items if isinstance(i, Record)), None)
    if record is None:
        numero = next((p.numero for p in read_problems if p.numero and p.numero != "-"), "-")
        return Outcome(fresh.digest, numero, fresh.origin, read_problems, since=options.today)
    entry = summarize(
        record.formation,
        origin=record.origin,
        statut=record.statut,
        today=options.today,
        settings=settings,
        geo=geo,
        motif_refus=record.motif_refus,
    )
    checks = tuple(check_formation(record.formation, entry, settings, geo))
    return Outcome(
        fresh.digest,
        record.numero,
        fresh.origin,
        read_problems,
        checks,
        record.statut,
        record.motif_refus,
        None if any(p.is_error for p in checks) else entry,
        title_key=normalise_title(entry.intitule),
        since=options.today,
        until=valid_until(record.formation, options.today),
    )


class _ReadState:
    """What the read loop accumulates: problems, Refs seen, and the manifest of this build."""

    def __init__(self, report: BuildReport, manifest: Manifest):
        self.report = report
        self.manifest = manifest
        self.outcomes = manifest.outcomes  # this build's: a plain dict, filled here
        self.seen: dict[str, Origin] = {}
        self.refused_by_reader: set[str] = set()

    def problem(self, problem: Problem) -> None:
        (self.report.errors if problem.is_error else self.report.warnings).append(problem)
        if problem.is_error and problem.numero and problem.numero != "-":
            self.refused_by_reader.add(problem.numero)

    def take(self, outcome: Outcome) -> Optional[Entry]:
        """Report one formation's outcome; its entry when it passed every check."""
        self.outcomes[outcome.digest] = outcome
        for problem in outcome.read_problems:
            self.problem(problem)
        if outcome.statut is None:
            return None  # the reader refused it
        report = self.report
        report.read += 1
        numero = outcome.numero
        if numero in self.seen:
            report.errors.append(
                Problem(outcome.origin, numero, "numero", f"Ref déjà présente en {self.seen[numero]} : elle n'est pas écrasée")
            )
            report.rejected.add(numero)
            return None
        self.seen[numero] = outcome.origin
        if not outcome.check_problems:
            return outcome.entry
        report.warnings.extend(p for p in outcome.check_problems if not p.is_error)
        errors = [p for p in outcome.check_problems if p.is_error]
        if errors:
            report.errors.extend(errors)
            report.rejected.add(numero)
            return None
        return outcome.entry


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


#: In the build whose folders a newer build took over, where the files the newer build had no use for
#: are put (renamed, not unlinked: see :func:`build_before`); deleted with that build.
STALE_DIR = ".stale"


def build_before(published: Path) -> Optional[str]:
    """The folder of the build published before ``published``, or None.

    It is kept only for readers still on it, and trashed once a newer build is published: an
    incremental build takes its folders over (renames them into its own) instead of linking tens of
    thousands of unchanged files anew, and relinks only what differs from ``published``. The files
    it has no use for go to that build's :data:`STALE_DIR`: unlinking a file's last link costs
    milliseconds on a busy disk, a rename tens of microseconds; they are deleted with that build.
    Raises OSError when the builds folder cannot be listed.
    """
    older = [
        entry.path
        for entry in os.scandir(published.parent)
        if entry.name < published.name and os.path.exists(os.path.join(entry.path, PUBLISHED_MARK))
    ]
    return max(older) if older else None


def _prune(build_dir: Path) -> list[Path]:
    """Move old builds and leftovers of killed ones to the trash, keeping the last few published.

    Called under the lock, so that no build in progress is taken; a rename is
    instant whatever the folder holds. Returns the trash folder's contents.
    """
    current = published_build(build_dir)
    builds = sorted((build_dir / BUILDS_DIR).iterdir(), key=lambda p: p.name)
    keep = [p for p in builds if p.resolve() == current]
    older = [p for p in builds if (current is None or p.name < current.name) and (p / PUBLISHED_MARK).exists()]
    keep += older[-(KEEP_BUILDS - 1) :] if KEEP_BUILDS > 1 else []
    trash = build_dir / TRASH_DIR
    trash.mkdir(exist_ok=True)
    for path in builds:
        if path not in keep:
            os.replace(path, trash / path.name)
    return list(trash.iterdir())


#: Deletes what is in the trash, not the trash folder itself: the next build may be moving a folder into it.
_EMPTY_TRASH = (
    "import os, shutil, sys\n"
    "for name in os.listdir(sys.argv[1]):\n"
    "    shutil.rmtree(os.path.join(sys.argv[1], name), ignore_errors=True)"
)


def _prune_later(build_dir: Path) -> None:
    """Prune, and delete the trash in a process of its own: nobody waits for 100,000 unlinks.

    Housekeeping after the build is published: a failure here is not the build's.
    """
    try:
        if not _prune(build_dir):
            return
        subprocess.Popen(
            [sys.executable, "-c", _EMPTY_TRASH, str(build_dir / TRASH_DIR)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            close_fds=True,
        )
    except OSError:
        pass  # the next build prunes again
