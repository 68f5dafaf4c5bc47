"""Cutting a file again from the previous build's cut gives exactly what the byte scan gives.

The reference is :func:`split_lheo` with a digest made for every chunk. The
cut reused must give the same chunks (offsets, lines) and the same digests,
whatever changed between the two files; and where little changed, it must
scan little.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from blake3 import blake3
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_lheo_chunks import BLANKS, FORMATION_KINDS, NS22, NS23, document, formation

from catalogue.sources import lheo, lheo_cut
from catalogue.sources.lheo import split_lheo
from catalogue.sources.lheo_cut import cut_lheo


def reference(path: Path):
    """What the plain scan gives: chunks and a digest for each; None when it does not cut the file."""
    split = split_lheo(path)
    if split is None:
        return None
    with split:
        header = blake3(split.prefix)
        digests = [blake3(split.prefix + split.raw(c)).digest(16) for c in split.chunks]
        assert digests == [lheo_cut.formation_digest(header, split.raw(c)) for c in split.chunks]
        return split.prefix, split.chunks, digests


def cut(path: Path, previous=None):
    cutting = cut_lheo(path, previous)
    if cutting is None:
        return None, None
    with cutting.split as split:
        return (split.prefix, split.chunks, cutting.digests), cutting.cut


def assert_cut_as_scanned(path: Path, previous=None):
    """The file cut with ``previous`` is the plain scan's cut; returns the cut to remember."""
    found, remembered = cut(path, previous)
    assert found == reference(path)
    if remembered is not None:
        # What is remembered describes the file exactly: runs in order, covering every formation.
        _, chunks, digests = found
        flat = [
            (start + r.starts[i], start + r.ends[i], line + r.lines[i], r.digests[16 * i : 16 * i + 16])
            for r, start, line in _runs_at(remembered, chunks)
            for i in range(len(r.starts))
        ]
        assert flat == [(c.start, c.end, c.line, d) for c, d in zip(chunks, digests)]
    return remembered


def _runs_at(remembered, chunks):
    index = 0
    for run in remembered.runs:
        yield run, chunks[index].start, chunks[index].line
        index += len(run.starts)
    assert index == len(chunks)


@pytest.fixture(params=["read", "mapped"])
def small_runs(monkeypatch, request):
    """Runs of 3 formations, in a file read into memory or mapped (as from 32 MB on)."""
    if request.param == "mapped":
        monkeypatch.setattr(lheo, "MMAP_MIN", 0)
    monkeypatch.setattr(lheo_cut, "RUN", 3)


def write(path: Path, text: str) -> Path:
    path.write_bytes(text.encode("utf-8"))
    return path


def numbered(count: int, **parts) -> list[str]:
    return [formation(f"15_{i}", **parts) for i in range(count)]


def scans(monkeypatch) -> list[int]:
    """Counts the formations found by the scan (not taken from a previous run)."""
    seen: list[int] = []
    step = lheo._step

    def counting(data, start):
        if sys._getframe(1).f_globals is vars(lheo_cut):  # not the plain scan the test compares with
            seen.append(start)
        return step(data, start)

    monkeypatch.setattr(lheo, "_step", counting)
    return seen


def test_one_change_scans_one_run(tmp_path, monkeypatch):
    monkeypatch.setattr(lheo_cut, "RUN", 8)
    pieces = numbered(100)
    before = assert_cut_as_scanned(write(tmp_path / "a.xml", document(*pieces)))
    assert len(before.runs) == 13
    pieces[50] = pieces[50].replace("Cloisons sèches", "Cloisons sèches et plafonds\nsur deux lignes")
    seen = scans(monkeypatch)
    after = assert_cut_as_scanned(write(tmp_path / "a.xml", document(*pieces)), before)
    # Only the run holding the change is scanned, and the first formation of the next, by which the
    # scan finds its way back to the runs.
    assert 1 <= len(seen) <= 8 + 1
    assert sum(run is old for run, old in zip(after.runs, before.runs)) == 12
    seen.clear()
    again = assert_cut_as_scanned(tmp_path / "a.xml", after)
    assert seen == [] and all(a is b for a, b in zip(again.runs, after.runs))


def test_insertions_and_deletions_find_the_runs_after(tmp_path, monkeypatch, small_runs):
    monkeypatch.setattr(lheo_cut, "RUN", 4)
    pieces = numbered(40)
    before = assert_cut_as_scanned(write(tmp_path / "a.xml", document(*pieces)))
    pieces.insert(9, formation("15_new"))
    del pieces[25]
    seen = scans(monkeypatch)
    assert_cut_as_scanned(write(tmp_path / "a.xml", document(*pieces)), before)
    assert len(seen) <= 2 * (4 + 1) + 1


def test_another_prefix_reuses_nothing(tmp_path, monkeypatch):
    pieces = numbered(10)
    before = assert_cut_as_scanned(write(tmp_path / "a.xml", document(*pieces, ns=NS23)))
    seen = scans(monkeypatch)
    after = assert_cut_as_scanned(write(tmp_path / "a.xml", document(*pieces, ns=NS22)), before)
    assert len(seen) == 10 and after.prefix != before.prefix


@pytest.mark.parametrize(
    "tail",
    [
        "<!-- </formation> -->",  # the scan would end the last formation in the comment: not cut
        "<extras><extra>x</extra></extras>",
        "</formation>",  # not well-formed
        "<formation numero='x'/>",
    ],
)
def test_a_new_end_of_file_is_seen(tmp_path, small_runs, tail):
    pieces = numbered(7)
    before = assert_cut_as_scanned(write(tmp_path / "a.xml", document(*pieces)))
    assert_cut_as_scanned(write(tmp_path / "a.xml", document(*pieces, tail=tail)), before)


def test_something_between_formations_is_seen(tmp_path, small_runs):
    pieces = numbered(7)
    before = assert_cut_as_scanned(write(tmp_path / "a.xml", document(*pieces)))
    for between in ("\n<!-- x -->\n", "\ntext\n", "\n<other/>\n"):
        assert_cut_as_scanned(write(tmp_path / "a.xml", document(*pieces, between=between)), before)


def test_truncated_file(tmp_path, small_runs):
    pieces = numbered(9)
    text = document(*pieces)
    before = assert_cut_as_scanned(write(tmp_path / "a.xml", text))
    for length in (len(text) // 3, len(text) - 30, len(text) - 5):
        assert_cut_as_scanned(write(tmp_path / "a.xml", text[:length]), before)


# --------------------------------------------------------------------------
# Random edits
# --------------------------------------------------------------------------

EDITS = st.lists(
    st.tuples(
        st.sampled_from(["change", "insert", "delete", "swap", "blank", "lines"]),
        st.integers(min_value=0, max_value=1000),
        st.sampled_from(sorted(FORMATION_KINDS)),
    ),
    max_size=4,
)


@st.composite
def files_and_edits(draw):
    kinds = draw(st.lists(st.sampled_from(sorted(FORMATION_KINDS)), min_size=1, max_size=14))
    pieces = [FORMATION_KINDS[kind](f"15_{i}") for i, kind in enumerate(kinds)]
    between = draw(BLANKS)
    edited = list(pieces)
    blanks = None
    for edit, at, kind in draw(EDITS):
        if not edited:
            break
        at %= len(edited)
        if edit == "change":
            edited[at] = edited[at].replace("Cloisons", "Plafonds")
        elif edit == "insert":
            edited.insert(at, FORMATION_KINDS[kind](f"15_x{at}"))
        elif edit == "delete" and len(edited) > 1:
            del edited[at]
        elif edit == "swap":
            edited[at], edited[-1] = edited[-1], edited[at]
        elif edit == "blank":
            blanks = draw(BLANKS)
        elif edit == "lines":
            edited[at] = edited[at].replace("<certifiante>", "\n\n<certifiante>")
    tail = draw(st.sampled_from(["", "<extras><extra>x</extra></extras>"]))
    before = document(*pieces, between=between)
    after = document(*edited, between=blanks if blanks is not None else between, tail=tail)
    return before, after, draw(st.sampled_from([1, 2, 3, 32])), draw(st.booleans())


@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(files_and_edits())
def test_random_edits_cut_as_the_scan_does(tmp_path, monkeypatch, case):
    before, after, run, mapped = case
    monkeypatch.setattr(lheo_cut, "RUN", run)
    monkeypatch.setattr(lheo, "MMAP_MIN", 0 if mapped else 32 * 1024 * 1024)
    remembered = assert_cut_as_scanned(write(tmp_path / "r.xml", before))
    assert_cut_as_scanned(write(tmp_path / "r.xml", after), remembered)


def test_a_build_hands_its_cuts_to_the_next(tmp_path, monkeypatch):
    """read_incremental remembers each file's cut, and the next read takes the unchanged runs from it."""
    import datetime as dt

    from catalogue.incremental import Manifest, read_incremental

    monkeypatch.setattr(lheo_cut, "RUN", 4)
    pieces = numbered(20)
    path = write(tmp_path / "a.xml", document(*pieces))
    cuts: dict = {}
    today = dt.date(2026, 1, 1)
    first = list(read_incremental([path], None, today, cuts=cuts))
    assert list(cuts) == [str(path)] and len(cuts[str(path)].runs) == 5
    pieces[10] = pieces[10].replace("Cloisons", "Plafonds")
    write(path, document(*pieces))
    seen = scans(monkeypatch)
    again: dict = {}
    second = list(read_incremental([path], Manifest("k", today, {}, {}, cuts), today, cuts=again))
    assert len(seen) <= 4 + 1
    assert [item.digest for item in second] != [item.digest for item in first]
    assert sum(a.digest != b.digest for a, b in zip(first, second)) == 1
    assert sum(run in cuts[str(path)].runs for run in again[str(path)].runs) == 4


def test_a_previous_cut_of_another_shape_is_ignored(tmp_path):
    path = write(tmp_path / "a.xml", document(*numbered(4)))
    for previous in ({"runs": []}, ("prefix", ()), "x"):
        assert_cut_as_scanned(path, previous)


# --------------------------------------------------------------------------
# Cut in a child process (CutAhead)
# --------------------------------------------------------------------------


def _as_tuple(cutting):
    if cutting is None:
        return None
    with cutting.split as split:
        return split.path, split.prefix, split.suffix, split.chunks, cutting.digests, cutting.cut


def test_cut_ahead_gives_what_cut_lheo_gives(tmp_path, small_runs):
    """Several files cut by the child, in order: the same chunks, digests and remembered runs (the runs
    kept being the previous cut's very objects, as the next build's cut relies on)."""
    pieces = numbered(20)
    a = write(tmp_path / "a.xml", document(*pieces))
    b = write(tmp_path / "b.xml", document(*numbered(5)))
    not_lheo = write(tmp_path / "c.xml", "<autre/>")
    before = {path: cut(path)[1] for path in (a, b)}
    pieces[7] = pieces[7].replace("Cloisons", "Plafonds")
    write(a, document(*pieces))
    jobs = [(a, before[a]), (not_lheo, None), (b, before[b])]
    ahead = lheo_cut.CutAhead(jobs)
    try:
        got = [_as_tuple(ahead.take(path, previous)) for path, previous in jobs]
    finally:
        ahead.close()
    assert got == [_as_tuple(cut_lheo(path, previous)) for path, previous in jobs]
    assert got[1] is None
    kept = [run for run in got[0][5].runs if any(run is old for old in before[a].runs)]
    assert len(kept) == len(got[0][5].runs) - 1  # all but the run holding the change, as they were


def test_cut_ahead_falls_back_when_the_child_dies(tmp_path, monkeypatch):
    a = write(tmp_path / "a.xml", document(*numbered(6)))
    previous = cut(a)[1]
    monkeypatch.setattr(lheo_cut, "cut_lheo", lambda path, previous: (_ for _ in ()).throw(MemoryError()))
    ahead = lheo_cut.CutAhead([(a, previous)])  # forked with the failing cut: it answers "failed"
    monkeypatch.undo()
    try:
        assert _as_tuple(ahead.take(a, previous)) == _as_tuple(cut_lheo(a, previous))
    finally:
        ahead.close()


def test_cut_ahead_out_of_step_cuts_here(tmp_path):
    a = write(tmp_path / "a.xml", document(*numbered(4)))
    b = write(tmp_path / "b.xml", document(*numbered(3)))
    ahead = lheo_cut.CutAhead([(a, None)])
    try:
        assert _as_tuple(ahead.take(b, None)) == _as_tuple(cut_lheo(b, None))
        assert _as_tuple(ahead.take(a, None)) == _as_tuple(cut_lheo(a, None))  # closed: cut here too
    finally:
        ahead.close()
