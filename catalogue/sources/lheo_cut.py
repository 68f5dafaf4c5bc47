"""An LHEO file cut into formations again, reusing how the previous build cut it.

:func:`~catalogue.sources.lheo.split_lheo` finds every formation by a byte
scan, and an incremental build then hashes each one to know whether it
changed. At 100,000 formations (900 MB) that is about 3 s, nearly all of it
Python's work per formation, though one formation changed.

So a build remembers its cut of each file (:class:`Cut`) in runs of
:data:`RUN` consecutive formations: each run's length, digest and newlines,
and where each of its formations starts and ends, its line and its digest.
The next build expects the runs one after the other: a run whose bytes, at
the place it is expected, have the same digest is taken whole (one hash over
its bytes, no Python work per formation). Where the bytes differ, formations
are found by the scan one at a time until one is the first of a known run
again. The result is always exactly what ``split_lheo`` gives; whenever this
module is not sure of it (an odd end of file...), it asks ``split_lheo``.
"""

from __future__ import annotations

import mmap
import pickle
from array import array
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

from blake3 import blake3

from . import lheo
from .lheo import (
    _HEAD,
    _WS,
    PROLOG_BYTES,
    SUFFIX,
    Chunk,
    SplitFile,
    _ascii_compatible,
    _frame_ok,
    _load,
    _newlines,
    _Pages,
    _prefix,
    _split,
)

#: Formations in a run: small enough that scattered changes leave most runs whole
#: (1 % of formations changed leaves 85 % of the runs of 16, 72 % of runs of 32: each
#: formation of a changed run is scanned and hashed alone), large enough that the work
#: per run (a hash, a find) is nothing beside the formations' own. At 100,000 formations,
#: 16 rather than 32: the cut after 1 % changed takes 0.7 times the CPU, after one change the same.
RUN = 16
#: Bytes kept of each BLAKE3 digest. BLAKE3 rather than SHA-256 (even with the CPU's SHA extensions):
#: over the 900 MB of 100,000 formations, in runs of 144 KB as a rebuild hashes them, 0.23 s against
#: 0.51 s (BLAKE2b 0.95 s); formation by formation (9 KB), 0.39 s against 0.56 s (medians of 5, quiet
#: machine). Still a cryptographic hash: a crafted formation cannot pass for one the previous build read.
DIGEST = 16


@dataclass(frozen=True)
class Run:
    """Consecutive formations of a file, as one build cut them; offsets and lines from the run's start."""

    length: int  # from the first formation's '<formation' to just after the last's '</formation>'
    digest: bytes  # of those bytes
    newlines: int  # in those bytes
    starts: array  # of each formation
    ends: array
    lines: array
    digests: bytes  # each formation's digest (:func:`formation_digest`), DIGEST bytes each

    def first_digest(self) -> bytes:
        return self.digests[:DIGEST]


@dataclass(frozen=True)
class Cut:
    """How a build cut one file: the prefix its formations are read inside, and its runs in file order."""

    prefix: bytes
    runs: tuple[Run, ...]


@dataclass(frozen=True, eq=False)
class Cutting:
    """A file cut now: the split, each chunk's digest, and the cut to remember for the next build."""

    split: SplitFile
    digests: list[bytes]
    cut: Cut


def formation_digest(header: blake3, raw: bytes) -> bytes:
    """A formation's digest: of the file's prefix (``header``, already fed) and its bytes."""
    hasher = header.copy()
    hasher.update(raw)
    return hasher.digest(DIGEST)


def cut_lheo(path: Path, previous: Optional[Cut] = None) -> Optional[Cutting]:
    """The file cut as :func:`~catalogue.sources.lheo.split_lheo` cuts it (None when it does not), with digests.

    ``previous``: the cut of the build before, whose runs are taken whole where the bytes are the same.
    """
    data = _load(path)
    if data is None:
        return None
    if not isinstance(previous, Cut):
        previous = None  # nothing, or not what this code saves: cut from scratch
    try:
        cutting = _Cutter(path, data, previous).cut()
        if cutting is None:
            # Not sure: the plain scan decides, and every digest is made anew.
            split = _split(path, data)
            cutting = _with_digests(split) if split is not None else None
    except BaseException:
        _close(data)
        raise
    if cutting is None:
        _close(data)
    return cutting


def _close(data: Union[bytes, mmap.mmap]) -> None:
    if isinstance(data, mmap.mmap):
        data.close()


def _with_digests(split: SplitFile) -> Cutting:
    header = blake3(split.prefix)
    digests = [formation_digest(header, split.raw(chunk)) for chunk in split.chunks]
    return Cutting(split, digests, _remember(split.data, split.prefix, split.chunks, digests, {}))


class _Cutter:
    """One pass over a file, taking the previous runs where they fit and scanning elsewhere."""

    def __init__(self, path: Path, data: Union[bytes, mmap.mmap], previous: Optional[Cut]):
        self.path, self.data = path, data
        self.previous = previous
        self.chunks: list[Chunk] = []
        self.digests: list[bytes] = []
        self.kept: dict[int, Run] = {}  # index in chunks of a run's first formation -> that run

    def cut(self) -> Optional[Cutting]:
        data = self.data
        head = _HEAD.match(data[:PROLOG_BYTES])
        if head is None or not _ascii_compatible(head.group(2)):
            return None
        prefix = _prefix(head)
        start = data.find(b"<formation", head.end())
        if start == -1 or data[head.end() : start].strip(_WS):
            return None
        runs = self.previous.runs if self.previous is not None and self.previous.prefix == prefix else ()
        by_first: dict[bytes, list[int]] = {}
        for number, run in enumerate(runs):
            by_first.setdefault(run.first_digest(), []).append(number)
        header = blake3(prefix)
        line = 1 + _newlines(data, 0, start)
        pages = _Pages(data)
        expected: Optional[int] = 0 if runs else None  # the run looked for at `start` without scanning
        while True:
            pages.reading(start)
            taken = self._take(runs[expected], start, line) if expected is not None and expected < len(runs) else None
            if taken is None:
                step = lheo._step(data, start)
                if step is None:
                    return None
                end, following, newlines = step
                digest = formation_digest(header, data[start:end])
                for number in by_first.get(digest, ()):
                    taken = self._take(runs[number], start, line)
                    if taken is not None:
                        expected = number
                        break
                else:
                    expected = None
                    self.chunks.append(Chunk(start, end, line))
                    self.digests.append(digest)
                    if following == -1:
                        break
                    line += newlines
                    start = following
                    continue
            # A run taken whole at `start`: what follows it must be what the scan would see.
            end, following = taken
            if following == -1:
                if data.find(b"</formation", end) != -1:
                    return None  # the scan would end the last formation elsewhere
                break
            if data[end:following].strip(_WS):
                return None
            line += runs[expected].newlines + _newlines(data, end, following)
            start = following
            expected += 1
        if not _frame_ok(data[: head.end()], data[self.chunks[-1].end :], prefix):
            return None
        split = SplitFile(self.path, data, prefix, SUFFIX, self.chunks)
        return Cutting(split, self.digests, _remember(data, prefix, self.chunks, self.digests, self.kept))

    def _take(self, run: Run, start: int, line: int) -> Optional[tuple[int, int]]:
        """Take ``run`` at ``start`` when its bytes are there: (its end, the next '<formation' or -1)."""
        end = start + run.length
        data = self.data
        if end > len(data):
            return None
        # Hashed through a view: slicing the file would copy every run once more (900 MB at 100,000).
        with memoryview(data) as view, view[start:end] as span:
            if blake3(span).digest(DIGEST) != run.digest:
                return None
        self.kept[len(self.chunks)] = run
        digests = run.digests
        for number, (begin, finish, lines) in enumerate(zip(run.starts, run.ends, run.lines)):
            self.chunks.append(Chunk(start + begin, start + finish, line + lines))
            self.digests.append(digests[number * DIGEST : (number + 1) * DIGEST])
        return end, data.find(b"<formation", end)


def _remember(
    data: Union[bytes, mmap.mmap], prefix: bytes, chunks: list[Chunk], digests: list[bytes], kept: dict[int, Run]
) -> Cut:
    """The cut to save: the runs taken whole as they were, the formations scanned now in new runs."""
    runs: list[Run] = []
    index = 0
    while index < len(chunks):
        run = kept.get(index)
        if run is not None:
            runs.append(run)
            index += len(run.starts)
            continue
        stop = index + 1
        while stop < len(chunks) and stop - index < RUN and stop not in kept:
            stop += 1
        runs.append(_run(data, chunks[index:stop], digests[index:stop]))
        index = stop
    return Cut(prefix, tuple(runs))


def _run(data: Union[bytes, mmap.mmap], chunks: list[Chunk], digests: list[bytes]) -> Run:
    first = chunks[0]
    span = data[first.start : chunks[-1].end]
    return Run(
        length=len(span),
        digest=blake3(span).digest(DIGEST),
        newlines=span.count(b"\n"),
        starts=array("q", (c.start - first.start for c in chunks)),
        ends=array("q", (c.end - first.start for c in chunks)),
        lines=array("q", (c.line - first.line for c in chunks)),
        digests=b"".join(digests),
    )


# --------------------------------------------------------------------------
# Cutting in a process of its own
# --------------------------------------------------------------------------


class CutAhead:
    """The files of a rebuild cut by a forked process while this one reads the previous build's outcomes.

    At 100,000 formations, each on one core: the cut hashes 900 MB (0.45 s), the
    outcomes are read (0.8 s). A thread would not do: the
    unpickling holds the GIL for whole files, and the cut needs it between two
    runs. The child sends each file's cut as compact bytes (offsets, lines,
    digests; the runs it kept as their numbers in the previous cut).
    :meth:`take` gives exactly what :func:`cut_lheo` gives, and falls back to it
    whenever the child could not answer.
    """

    def __init__(self, jobs: list[tuple[Path, Optional[Cut]]]):
        import multiprocessing

        self._jobs = jobs
        self._next = 0
        context = multiprocessing.get_context("fork")
        self._receive, send = context.Pipe(duplex=False)
        self._process = context.Process(target=_cut_in_child, args=(jobs, send), daemon=True, name="catalogue-cut")
        self._process.start()
        send.close()

    def take(self, path: Path, previous: Optional[Cut]) -> Optional[Cutting]:
        """The cut of ``path``, the next file of the jobs (in their order); :func:`cut_lheo`'s when out of step."""
        if self._next < len(self._jobs) and self._jobs[self._next] == (path, previous):
            self._next += 1
            try:
                answer = self._receive.recv()
            except (EOFError, OSError):
                answer = None
            if answer is not None and answer[0] == "cut":
                return _decoded(path, previous, answer[1])  # the kept runs are numbered in this previous cut
            if answer is not None and answer[0] == "none":
                return None
        self.close()  # out of step, or the child failed: cut here, as without it
        return cut_lheo(path, previous)

    def close(self) -> None:
        self._jobs = []
        self._receive.close()
        if self._process.is_alive():
            self._process.kill()
        self._process.join()


def _cut_in_child(jobs: list[tuple[Path, Optional[Cut]]], send) -> None:
    try:
        for path, previous in jobs:
            cutting = cut_lheo(path, previous)
            if cutting is None:
                send.send(("none",))
                continue
            with cutting.split:
                send.send(("cut", _encoded(cutting, previous)))
    except BaseException as exc:  # noqa: BLE001  (the parent cuts the file itself)
        try:
            send.send(("failed", repr(exc)))
        except OSError:
            pass
    finally:
        send.close()


def _encoded(cutting: Cutting, previous: Optional[Cut]) -> bytes:
    split = cutting.split
    chunks = split.chunks
    numbers = {id(run): number for number, run in enumerate(previous.runs)} if isinstance(previous, Cut) else {}
    runs = [numbers.get(id(run), run) for run in cutting.cut.runs]
    return pickle.dumps(
        (
            split.prefix,
            split.suffix,
            array("q", [c.start for c in chunks]).tobytes(),
            array("q", [c.end for c in chunks]).tobytes(),
            array("q", [c.line for c in chunks]).tobytes(),
            b"".join(cutting.digests),
            cutting.cut.prefix,
            runs,
        ),
        protocol=pickle.HIGHEST_PROTOCOL,
    )


def _decoded(path: Path, previous: Optional[Cut], payload: bytes) -> Optional[Cutting]:
    prefix, suffix, starts, ends, lines, digests, cut_prefix, runs = pickle.loads(payload)
    data = _load(path)
    if data is None:
        return None
    starts, ends, lines = (array("q", column) for column in (starts, ends, lines))
    chunks = list(map(Chunk, starts, ends, lines))
    kept = previous.runs if isinstance(previous, Cut) else ()
    cut = Cut(cut_prefix, tuple(kept[run] if isinstance(run, int) else run for run in runs))
    return Cutting(
        SplitFile(path, data, prefix, suffix, chunks),
        [digests[offset : offset + DIGEST] for offset in range(0, len(digests), DIGEST)],
        cut,
    )
