"""Reusing the previous build's files in an incremental build.

A build never writes into the published folder: what did not change is
hard-linked from it into the new folder (a link costs one system call, the
same bytes for free), and every changed file is written anew. Since a linked
file is shared by two builds, nothing may ever open one for writing in place.
"""

from __future__ import annotations

import datetime as dt
import errno
import gc
import hashlib
import marshal
import os
import pickle
import shutil
import sys
import zlib
from contextlib import contextmanager
from dataclasses import dataclass, field, fields, replace
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Iterator, NamedTuple, Optional, Union

from .catalog import Entry, Place
from .model import Formation, Session, Statut
from .problems import Origin, Problem, Severity
from .settings import PROJECT_ROOT, Settings
from .sources import XML_SUFFIXES, Item, Record, discover, read_file

if TYPE_CHECKING:
    from .sources.lheo_cut import Cut, CutAhead

#: Errors after which a copy replaces the link (another device, a file system without links).
_NO_LINK = {errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EOPNOTSUPP}


def link_file(source: Path, target: Path) -> None:
    """Hard-link ``source`` as ``target`` (a copy where links are impossible), creating its folder."""
    try:
        os.link(source, target)
        return
    except FileNotFoundError:
        if target.parent.exists() or not source.exists():
            raise
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        if exc.errno not in _NO_LINK:
            raise
        shutil.copy2(source, target)
        return
    try:
        os.link(source, target)
    except OSError as exc:
        if exc.errno not in _NO_LINK:
            raise
        shutil.copy2(source, target)


def link_spare(path: Union[Path, str], spare: str) -> None:
    """Link a file a full build wrote into a spare folder (see ``render.SPARE_DIR``), if it can be: the
    rebuild that takes over a spare short of a file links that file as it would without a spare."""
    try:
        os.link(path, spare)
    except FileNotFoundError:
        try:
            os.makedirs(os.path.dirname(spare), exist_ok=True)
            os.link(path, spare)
        except OSError:
            pass
    except OSError:
        pass


def link_tree(source: Path, target: Path) -> int:
    """Link every file under ``source`` to the same place under ``target``; returns how many."""
    count = 0
    for folder, _dirs, files in os.walk(source):
        relative = os.path.relpath(folder, source)
        destination = target / relative if relative != "." else target
        destination.mkdir(parents=True, exist_ok=True)
        for name in files:
            link_file(Path(folder) / name, destination / name)
            count += 1
    return count


def listed_inodes(folder: str) -> Optional[dict[str, int]]:
    """Each file's inode by its path under ``folder`` (``sub/name``), as the listings give it (no stat per
    file): a file whose inode is the published build's is that very file. None if the listings can't be
    trusted: some file systems (an overlay over several layers, without ``xino``) list inodes that are
    not the files' own, so one file's is checked against its stat.
    """
    inodes: dict[str, int] = {}
    folders = [(folder, "")]
    checked = False
    while folders:
        path, prefix = folders.pop()
        with os.scandir(path) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    folders.append((entry.path, prefix + entry.name + "/"))
                    continue
                inodes[prefix + entry.name] = entry.inode()
                if not checked:
                    if entry.inode() != entry.stat(follow_symlinks=False).st_ino:
                        return None
                    checked = True
    return inodes


# --------------------------------------------------------------------------
# What a build leaves for the next one
# --------------------------------------------------------------------------

CACHE_DIR = ".cache"
MANIFEST_DIR = "build"
#: Bumped when the manifest's layout changes, so an old one is ignored rather than misread.
MANIFEST_VERSION = 5
#: What the output is made from besides the records; a change to any of it means a full build.
_CODE_FOLDERS = ("catalogue", "templates")
_LIBRARIES = ("jinja2", "whoosh-reloaded", "lxml", "pydantic", "pyyaml", "blake3")


def build_key(settings: Settings, sinks: Iterable[str]) -> str:
    """A hash of everything that shapes the output besides the records and the day.

    The code, the templates, the static files and the data tables (communes,
    XSD), the settings, the sinks and the libraries' versions: a build whose
    key differs from the previous one's rebuilds everything.
    """
    digest = hashlib.blake2b(digest_size=20)
    for folder in _CODE_FOLDERS:
        root = PROJECT_ROOT / folder
        for path in sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
            digest.update(path.relative_to(PROJECT_ROOT).as_posix().encode() + b"\0")
            digest.update(path.read_bytes())
    digest.update(settings.model_dump_json().encode())
    digest.update("\0".join(sinks).encode())
    for library in _LIBRARIES:
        try:
            digest.update(f"{library}={metadata.version(library)}".encode())
        except metadata.PackageNotFoundError:
            digest.update(f"{library}=-".encode())
    digest.update(sys.version.encode())
    digest.update(zlib.ZLIB_RUNTIME_VERSION.encode())  # the open-data exports' gzip members
    return digest.hexdigest()


@dataclass(frozen=True)
class Outcome:
    """What reading and checking one formation gave, kept for the next build.

    The lines of its problems and of ``entry.origin`` are those of the build
    that made it; :meth:`moved_to` rebases them when the formation moved.
    """

    digest: bytes  # of its source bytes (or of its validated record)
    numero: str
    origin: Origin
    read_problems: tuple[Problem, ...]  # the reader's (errors only when it refused the formation)
    check_problems: tuple[Problem, ...] = ()  # the publication rules'
    statut: Optional[Statut] = None  # None: the reader refused it
    motif_refus: Optional[str] = None
    entry: Optional[Entry] = None  # None: the reader or the rules refused it
    title_key: Optional[str] = None  # the intitule as duplicates are found by (rules.normalise_title)
    #: The days on which this outcome holds: ``[since, until)``, ``until`` None for ever.
    since: Optional[dt.date] = None
    until: Optional[dt.date] = None

    def holds_on(self, today: dt.date) -> bool:
        return self.since is not None and self.since <= today and (self.until is None or today < self.until)

    def moved_to(self, origin: Origin) -> "Outcome":
        if origin == self.origin:
            return self
        return replace(
            self,
            origin=origin,
            read_problems=tuple(_moved(p, self.origin, origin) for p in self.read_problems),
            check_problems=tuple(_moved(p, self.origin, origin) for p in self.check_problems),
            entry=replace(self.entry, origin=_moved_origin(self.entry.origin, self.origin, origin)) if self.entry else None,
        )


def _moved_origin(origin: Origin, before: Origin, after: Origin) -> Origin:
    if origin.path != before.path or origin.line == 0:
        return origin if origin.path != before.path else Origin(after.path, 0)
    return Origin(after.path, origin.line - before.line + after.line)


def _moved(problem: Problem, before: Origin, after: Origin) -> Problem:
    return replace(problem, origin=_moved_origin(problem.origin, before, after))


def valid_until(formation: Formation, today: dt.date) -> Optional[dt.date]:
    """The first day after ``today`` on which a session ends (so the pages change), or None."""
    ends = [_day_after_end(s) for s in formation.sessions]
    later = [day for day in ends if day is not None and day > today]
    return min(later) if later else None


def _day_after_end(session: Session) -> Optional[dt.date]:
    fin = session.periode.fin
    if fin is None:
        return None
    latest = fin.latest()
    return latest + dt.timedelta(days=1) if latest < dt.date.max else None


def record_digest(record: Record) -> bytes:
    """The digest of a record read whole (YAML, or LHEO that could not be split): its validated content."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(b"record\0")
    digest.update(record.formation.model_dump_json().encode())
    digest.update(f"\0{record.statut.value}\0{record.motif_refus or ''}".encode())
    return digest.digest()


@dataclass
class Manifest:
    """What a published build knew: its key, the day, and the outcome of every formation by digest.

    Stored as one small file for the key and the published Refs, the outcomes
    in :data:`BUCKETS` files by digest (the *base*), and one file of changes to
    the base: the outcomes added since, and the digests gone. A rebuild links
    the base and writes only the changes, until they outgrow
    :data:`CHANGES_SHARE` of the outcomes and a new base is written.
    """

    key: str
    today: dt.date
    _outcomes: dict[bytes, Outcome]
    #: Ref -> digest of the formations it published (sinks' keep() relies on these).
    published: dict[str, bytes]
    #: How each LHEO file was cut into formations, by its path as given (see :mod:`.sources.lheo_cut`).
    cuts: dict[str, "Cut"] = field(default_factory=dict)
    #: Where the outcomes are, until they are read (see :meth:`open`).
    _path: Optional[Path] = field(default=None, repr=False, compare=False)
    #: The outcomes as its base files hold them (loaded manifests only), which the next build's links.
    _base: Optional[dict[bytes, Outcome]] = field(default=None, repr=False, compare=False)

    @property
    def outcomes(self) -> dict[bytes, Outcome]:
        """The outcome of every formation by digest, read when first asked for (raises
        :class:`ManifestUnreadable` when they cannot be read)."""
        if self._path is not None:
            path, self._path = self._path, None
            self._outcomes, self._base = _load_outcomes(path)
        return self._outcomes

    def save(self, staging: Path, previous: Optional[tuple[Path, "Manifest"]] = None) -> None:
        """Write into ``staging``; ``previous`` (its folder and manifest): the build whose base is linked."""
        folder = staging / CACHE_DIR / MANIFEST_DIR
        folder.mkdir(parents=True, exist_ok=True)
        live = self.outcomes
        base = previous[1]._base if previous is not None else None
        with _no_gc():
            _dump(folder / "manifest.pickle", (MANIFEST_VERSION, self.key, self.today, self.published))
            _dump(folder / "cuts.pickle", self.cuts)
            if base is not None:
                added = {digest: outcome for digest, outcome in live.items() if base.get(digest) is not outcome}
                gone = [digest for digest in base if digest not in live]
                if len(added) + len(gone) <= CHANGES_SHARE * len(live):
                    for number in range(BUCKETS):
                        name = _bucket_name(number)
                        link_file(previous[0] / CACHE_DIR / MANIFEST_DIR / name, folder / name)
                    _dump_outcomes(folder / CHANGES_NAME, added.values(), gone)
                    return
            for number, bucket in enumerate(_buckets(live)):
                _dump_outcomes(folder / _bucket_name(number), bucket.values())
            _dump_outcomes(folder / CHANGES_NAME, ())

    @classmethod
    def load(cls, folder: Path, key: str) -> Optional["Manifest"]:
        """The manifest of a build folder when it was made with the same ``key``; None otherwise."""
        try:
            manifest = cls.open(folder, key)
            if manifest is not None:
                manifest.outcomes  # read now
            return manifest
        except ManifestUnreadable:
            return None  # an unreadable one: a full build repairs it

    @classmethod
    def open(cls, folder: Path, key: str) -> Optional["Manifest"]:
        """Like :meth:`load`, but the outcomes (0.8 s at 100,000 formations) are read when first needed:
        not when the published build turns out damaged. None when there is no manifest or another ``key``'s.

        (Reading them on a thread while the input is cut was tried: no faster, since the cut takes the
        GIL back after hashing each run and waits for the thread each time. The cut now runs in a
        forked process meanwhile: :class:`~.sources.lheo_cut.CutAhead`.)
        """
        path = folder / CACHE_DIR / MANIFEST_DIR
        try:
            with _no_gc(freeze=True):
                version, saved_key, today, published = _load(path / "manifest.pickle")
        except _UNREADABLE:
            return None  # no manifest, or an unreadable one: a full build repairs it
        if version != MANIFEST_VERSION or saved_key != key:
            return None
        return cls(key, today, {}, published, _load_cuts(path), _path=path)


#: A rebuild writes a new base of outcomes once the changes to the old one would be more than this share
#: of them (a rebuild after 1 % changed writes 1 %, not 100 %; loading pays for the changes twice at most).
CHANGES_SHARE = 0.1
CHANGES_NAME = "outcomes-changes.marshal"


def _bucket_name(number: int) -> str:
    return f"outcomes-{number:02d}.marshal"


_UNREADABLE = (
    OSError, EOFError, pickle.UnpicklingError, ValueError, TypeError, AttributeError, ImportError, KeyError, IndexError
)


class ManifestUnreadable(Exception):
    """The previous build's outcomes could not be read: the build starts again as a full one."""


def _load_outcomes(path: Path) -> tuple[dict[bytes, Outcome], dict[bytes, Outcome]]:
    """The outcomes, and the base they were made from."""
    base: dict[bytes, Outcome] = {}
    try:
        with _no_gc(freeze=True):
            for number in range(BUCKETS):
                base.update(_load_outcomes_file(path / _bucket_name(number))[0])
            added, gone = _load_outcomes_file(path / CHANGES_NAME)
    except _UNREADABLE as exc:
        raise ManifestUnreadable(f"{path}: {exc}") from exc
    outcomes = dict(base)
    for digest in gone:
        outcomes.pop(digest, None)
    outcomes.update(added)
    return outcomes, base


def _load_cuts(path: Path) -> dict[str, "Cut"]:
    """The files' cuts; none when unreadable: each file is then scanned whole, nothing else is lost."""
    try:
        with _no_gc(freeze=True):
            cuts = _load(path / "cuts.pickle")
    except _UNREADABLE:
        return {}
    return cuts if isinstance(cuts, dict) else {}


#: Files the outcomes are spread over, by the first byte of their digest.
BUCKETS = 64


def _buckets(outcomes: dict[bytes, Outcome]) -> list[dict[bytes, Outcome]]:
    buckets: list[dict[bytes, Outcome]] = [{} for _ in range(BUCKETS)]
    for digest, outcome in outcomes.items():
        buckets[digest[0] % BUCKETS][digest] = outcome
    return buckets


def _dump(path: Path, value) -> None:
    with open(path, "wb") as handle:
        pickle.dump(value, handle, protocol=pickle.HIGHEST_PROTOCOL)


def _load(path: Path):
    with open(path, "rb") as handle:
        return pickle.load(handle)


# The outcomes are stored as rows of plain values (marshal), not as pickled objects. At 100,000
# formations, unpickling took 0.9 s, nearly all of it in making each dataclass through its __reduce__
# (NEWOBJ, then BUILD from a dict of its fields); marshal reads the rows in 0.25 s and the objects are
# then made from them in 0.55 s, places and repeated strings once. No code can hide in the rows either.

_ENTRY_FIELDS = tuple(f.name for f in fields(Entry))
_PLACE_FIELDS = tuple(f.name for f in fields(Place))
_PLACES, _STATUT, _ORIGIN = (_ENTRY_FIELDS.index(name) for name in ("places", "statut", "origin"))
_STATUTS = {statut.value: statut for statut in Statut}
_SEVERITIES = {severity.value: severity for severity in Severity}


def _dump_outcomes(path: Path, outcomes: Iterable[Outcome], gone: Iterable[bytes] = ()) -> None:
    """Write ``outcomes`` (and the digests ``gone``, in the file of changes) as rows of plain values."""
    shared: dict = {}  # equal values written once: marshal refers back to an object it wrote before
    rows = [_outcome_row(outcome, shared) for outcome in outcomes]
    with open(path, "wb") as handle:
        handle.write(marshal.dumps((list(gone), rows)))


def _load_outcomes_file(path: Path) -> tuple[dict[bytes, Outcome], list[bytes]]:
    """The outcomes of a file :func:`_dump_outcomes` wrote, by digest, and the digests gone."""
    with open(path, "rb") as handle:
        data = handle.read()  # marshal.load() on the file would read it object by object: four times slower
    gone, rows = marshal.loads(data)
    return _outcomes_of(rows), gone


def _outcome_row(outcome: Outcome, shared: dict) -> tuple:
    origin = outcome.origin
    entry = outcome.entry
    return (
        outcome.digest,
        outcome.numero,
        shared.setdefault(origin.path, origin.path),
        origin.line,
        tuple(_problem_row(problem) for problem in outcome.read_problems),
        tuple(_problem_row(problem) for problem in outcome.check_problems),
        outcome.statut.value if outcome.statut is not None else None,
        outcome.motif_refus,
        _entry_row(entry, origin, shared) if entry is not None else None,
        outcome.title_key,
        outcome.since.toordinal() if outcome.since is not None else None,
        outcome.until.toordinal() if outcome.until is not None else None,
    )


def _entry_row(entry: Entry, origin: Origin, shared: dict) -> tuple:
    values = entry.__dict__
    row = [values[name] for name in _ENTRY_FIELDS]
    for at, value in enumerate(row):
        if isinstance(value, (str, tuple)):
            row[at] = shared.setdefault(value, value)
    places = []
    for place in entry.places:
        place_row = tuple(place.__dict__[name] for name in _PLACE_FIELDS)
        places.append(shared.setdefault(place_row, place_row) if 0.0 not in place_row else place_row)
    row[_PLACES] = tuple(places)
    row[_STATUT] = entry.statut.value
    # Nearly always the outcome's own origin: then not written again.
    row[_ORIGIN] = None if entry.origin == origin else (entry.origin.path, entry.origin.line)
    return tuple(row)


def _problem_row(problem: Problem) -> tuple:
    where = problem.origin
    return (where.path, where.line, problem.numero, problem.field, problem.message, problem.severity.value)


def _outcomes_of(rows: list[tuple]) -> dict[bytes, Outcome]:
    """The outcomes made again from their rows (objects equal to those that were written)."""
    new, put = object.__new__, object.__setattr__
    places: dict[tuple, Place] = {}  # a place shared by many formations is made once
    days: dict[Optional[int], Optional[dt.date]] = {None: None}
    outcomes: dict[bytes, Outcome] = {}
    for digest, numero, path, line, read, check, statut, motif, entry_row, title_key, since, until in rows:
        origin = new(Origin)
        put(origin, "__dict__", {"path": path, "line": line})
        entry = None
        if entry_row is not None:
            values = dict(zip(_ENTRY_FIELDS, entry_row))
            made = []
            for place_row in values["places"]:
                place = places.get(place_row)
                if place is None:
                    place = new(Place)
                    put(place, "__dict__", dict(zip(_PLACE_FIELDS, place_row)))
                    if 0.0 not in place_row:  # -0.0 equals 0.0: such a row is never taken for another
                        places[place_row] = place
                made.append(place)
            values["places"] = tuple(made)
            values["statut"] = _STATUTS[values["statut"]]
            where = values["origin"]
            values["origin"] = origin if where is None else Origin(*where)
            entry = new(Entry)
            put(entry, "__dict__", values)
        for day in (since, until):
            if day not in days:
                days[day] = dt.date.fromordinal(day)
        outcome = new(Outcome)
        put(outcome, "__dict__", {
            "digest": digest,
            "numero": numero,
            "origin": origin,
            "read_problems": tuple(map(_problem_of, read)) if read else (),
            "check_problems": tuple(map(_problem_of, check)) if check else (),
            "statut": _STATUTS[statut] if statut is not None else None,
            "motif_refus": motif,
            "entry": entry,
            "title_key": title_key,
            "since": days[since],
            "until": days[until],
        })
        outcomes[digest] = outcome
    return outcomes


def _problem_of(row: tuple) -> Problem:
    path, line, numero, name, message, severity = row
    return Problem(Origin(path, line), numero, name, message, _SEVERITIES[severity])


@contextmanager
def _no_gc(freeze: bool = False) -> Iterator[None]:
    """Pickling 100,000 small objects triggers the collector over and over, for nothing: 5 times slower.

    ``freeze``: what was made meanwhile is moved out of the collector's sight (still freed when no
    longer referenced), or the first collection after would walk it all (half a second at 100,000).
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if freeze:
            gc.freeze()
        if enabled:
            gc.enable()


class Reused(NamedTuple):
    """A formation whose source bytes are those of a previous build, with the outcome it had then.

    (A named tuple: made 100,000 times in a rebuild, where a frozen dataclass costs three times more.)
    """

    outcome: Outcome
    load: Callable[[], list[Item]]  # () -> list[Item], the formation read again when a sink needs it whole

    @property
    def numero(self) -> str:
        return self.outcome.numero


@dataclass(frozen=True)
class Fresh:
    """A formation read now; ``items`` are the reader's problems then, unless refused, its record."""

    digest: bytes
    origin: Origin
    items: tuple[Item, ...]


def read_incremental(
    paths: Iterable[Path],
    previous: Optional[Manifest],
    today: dt.date,
    progress: Optional[Callable[[int], None]] = None,
    cuts: Optional[dict[str, "Cut"]] = None,
) -> Iterator[Union[Problem, Reused, Fresh]]:
    """Every formation of every source, reusing the previous build's outcome when its bytes are the same.

    LHEO files are cut into formations by a byte scan (:func:`~.sources.lheo_cut.cut_lheo`,
    which takes the previous build's cut where the bytes are the same); a
    formation whose bytes (with the file's header) have the digest of one the
    previous build read, on a day its outcome still holds, is not parsed at
    all. Other files are read whole, and each record is identified by the
    digest of its validated content. ``cuts`` receives each file's cut, for
    the next build.
    """
    from .sources.lheo_cut import CutAhead

    known_cuts = previous.cuts if previous is not None else {}
    files = list(discover(paths))
    lheo_files = [path for path in files if path.suffix.lower() in XML_SUFFIXES and path.is_file()]
    # A rebuild cuts its LHEO files in a child process while this one reads the previous outcomes.
    ahead = CutAhead([(path, known_cuts.get(str(path))) for path in lheo_files]) if previous is not None and lheo_files else None
    try:
        outcomes = previous.outcomes if previous is not None else {}
        yield from _read_files(files, lheo_files, outcomes, known_cuts, ahead, today, progress, cuts)
    finally:
        if ahead is not None:
            ahead.close()


def _read_files(
    files: list[Path],
    lheo_files: list[Path],
    outcomes: dict[bytes, Outcome],
    known_cuts: dict[str, "Cut"],
    ahead: Optional["CutAhead"],
    today: dt.date,
    progress: Optional[Callable[[int], None]],
    cuts: Optional[dict[str, "Cut"]],
) -> Iterator[Union[Problem, Reused, Fresh]]:
    from .sources.lheo import ChunkError, read_chunk, read_from
    from .sources.lheo_cut import cut_lheo

    cuttable = set(lheo_files)
    for path in files:
        if path not in cuttable:
            cutting = None
        elif ahead is not None:
            cutting = ahead.take(path, known_cuts.get(str(path)))
        else:
            cutting = cut_lheo(path, known_cuts.get(str(path)))
        if cutting is None:
            yield from _read_whole(read_file(path))
            if progress is not None:
                progress(_size(path))
            continue
        with cutting.split as split:
            name = str(path)
            for index, (chunk, digest) in enumerate(zip(split.chunks, cutting.digests)):
                known = outcomes.get(digest)
                if known is not None and known.holds_on(today):
                    where = known.origin
                    if where.line != chunk.line or where.path != name:
                        known = known.moved_to(Origin(name, chunk.line))
                    yield Reused(known, _reader(read_chunk, split, chunk))
                else:
                    try:
                        items = tuple(read_chunk(split, chunk))
                    except ChunkError:
                        # Malformed inside this formation: the streaming reader words it, from here on.
                        yield from _read_whole(read_from(split, index))
                        break
                    yield Fresh(digest, Origin(name, chunk.line), items)
                if progress is not None:
                    progress(chunk.end - chunk.start)
            else:
                if cuts is not None:
                    cuts[name] = cutting.cut


def source_bytes(paths: Iterable[Path]) -> int:
    """The size of every source, for a progress bar."""
    return sum(_size(path) for path in discover(paths))


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _reader(read_chunk, split, chunk):
    return lambda: list(read_chunk(split, chunk))


def _read_whole(items: Iterable[Item]) -> Iterator[Union[Problem, Fresh]]:
    """A file (or its end) that cannot be cut: each record is its own Fresh; problems pass through."""
    for item in items:
        if isinstance(item, Record):
            yield Fresh(record_digest(item), item.origin, (item,))
        else:
            yield item
