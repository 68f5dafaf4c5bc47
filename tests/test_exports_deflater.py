"""The exports' compressing process (a full build): the same bytes as compressing on the sink's thread."""

from __future__ import annotations

import os
import random

import pytest

import catalogue.exports as exports
from catalogue.build import CHILD_NICENESS, SinkContext
from catalogue.catalog import Catalog
from catalogue.exports import Deflater, DonneesSink, gzip_member
from catalogue.regions import geo

from test_exports_incremental import SETTINGS, TODAY, catalogue, entry_of, output, run_sink


def expected(parts):
    return [gzip_member(b"".join(kind)) if any(kind) else None for kind in parts]


@pytest.fixture
def deflater():
    started = Deflater.start()
    assert started is not None
    yield started
    started.close()


def test_members_are_gzip_member_of_the_joined_parts(deflater):
    rng = random.Random(4)
    text = "Formation éligible au CPF ; <b>&amp;</b>\r\n".encode("utf-8")
    cases = [
        [[b"<formation/>"], [b"\n", b"{}"], [b"a;b\r\n"]],
        [[], [b"\n", b"{}"], []],  # a run left out of the XML, without sessions
        [[b""], [b""], [b""]],
        # More than the pipe holds, in more parts than one writev() takes.
        [[text * rng.randrange(1, 50) for _ in range(1500)], [bytes(rng.randrange(256) for _ in range(70_000))],
         [text * 20_000]],
    ]
    for parts in cases:
        assert deflater.members(parts) == expected(parts)
    assert deflater._same is True  # made by the process (which found zlib-ng), not on this thread


def test_members_read_as_gzip_by_python_s_own_zlib(deflater):
    import gzip

    data = "Formation éligible au CPF ; <b>&amp;</b>\r\n".encode("utf-8") * 3000
    members = deflater.members([[data], [data[:10]], []])
    assert members[2] is None
    assert gzip.decompress(members[0] + members[1]) == data + data[:10]


def test_writes_that_stop_short_are_resumed(deflater, monkeypatch):
    real = os.writev

    def short(fd, buffers):
        # At most 1,000 bytes a call, cut anywhere in a part.
        taken, left = [], 1000
        for buffer in buffers:
            if left <= 0:
                break
            view = memoryview(buffer)[:left]
            taken.append(view)
            left -= len(view)
        return real(fd, taken)

    monkeypatch.setattr(os, "writev", short)
    parts = [[b"<formation>" * 300, b"x" * 10], [b"\n", b"{\"a\": 1}" * 500], [b"a;b\r\n" * 7]]
    assert deflater.members(parts) == expected(parts)


def test_a_full_build_compresses_in_the_process_and_writes_the_same_bytes(tmp_path, monkeypatch):
    formations = catalogue()
    started = []
    start = Deflater.start.__func__

    def record(cls):
        deflater = start(cls)
        started.append(deflater)
        return deflater

    monkeypatch.setattr(Deflater, "start", classmethod(record))
    run_sink(tmp_path / "process", formations)
    assert len(started) == 1 and started[0] is not None
    assert started[0]._process.returncode == 0  # closed by finish()
    monkeypatch.setattr(DonneesSink, "compress_in_process", False)
    run_sink(tmp_path / "thread", formations)
    assert len(started) == 1
    assert output(tmp_path / "process") == output(tmp_path / "thread")


def test_a_rebuild_compresses_on_its_threads(tmp_path, monkeypatch):
    formations = catalogue(60)
    run_sink(tmp_path / "first", formations)
    monkeypatch.setattr(Deflater, "start", classmethod(lambda cls: pytest.fail("a process for a rebuild")))
    changed = [formations[0].model_copy(update={"intitule_formation": "Autre intitulé"})] + formations[1:]
    run_sink(tmp_path / "again", changed, previous=(tmp_path / "first", formations))


def test_without_the_process_the_sink_compresses_on_its_thread(tmp_path, monkeypatch):
    formations = catalogue(60)
    run_sink(tmp_path / "thread", formations)
    monkeypatch.setattr(Deflater, "start", classmethod(lambda cls: None))
    sink = run_sink(tmp_path / "none", formations)
    assert sink._deflater is None
    assert output(tmp_path / "none") == output(tmp_path / "thread")


def test_a_process_gone_before_the_first_run_leaves_the_compression_to_the_sink(tmp_path):
    formations = catalogue(60)
    run_sink(tmp_path / "thread", formations)
    context = SinkContext(tmp_path / "gone", SETTINGS, TODAY, geo())
    sink = DonneesSink(context)
    process = sink._deflater._process
    process.kill()
    process.wait()
    entries = []
    for formation in formations:
        entries.append(entry_of(formation))
        sink.add(formation, entries[-1])
    sink.finish(Catalog.of(entries, TODAY))
    assert sink._deflater._same is False
    assert output(tmp_path / "gone") == output(tmp_path / "thread")


def test_a_process_that_dies_fails_the_build_and_leaves_nothing_running(tmp_path):
    sink = DonneesSink(SinkContext(tmp_path, SETTINGS, TODAY, geo()))
    deflater = sink._deflater
    formations = iter(catalogue(200))
    for formation in formations:
        sink.add(formation, entry_of(formation))
        if sink.index.run_ends:
            break
    sink._work.drain()
    assert deflater._same is True  # the first run was compressed there
    deflater._process.kill()
    deflater._process.wait()
    with pytest.raises((OSError, RuntimeError)):
        for formation in formations:
            sink.add(formation, entry_of(formation))
        sink._work.drain()
    sink.abort()
    assert sink._work._executor._shutdown


def test_a_failed_write_fails_the_build_and_closes_the_process(tmp_path, monkeypatch):
    real = exports.MemberFile.write
    calls = []

    def failing(self, member):
        calls.append(len(member))
        if len(calls) == 20:
            raise OSError(28, "No space left on device")
        return real(self, member)

    monkeypatch.setattr(exports.MemberFile, "write", failing)
    sink = DonneesSink(SinkContext(tmp_path, SETTINGS, TODAY, geo()))
    process = sink._deflater._process
    with pytest.raises(OSError, match="No space left"):
        for formation in catalogue(200):
            sink.add(formation, entry_of(formation))
        sink._work.drain()
    sink.abort()
    assert process.returncode == 0


def test_the_process_stops_when_closed_though_a_forked_process_holds_its_pipe(deflater):
    """The build forks workers after the sink has started its process: they hold the pipe's end too."""
    if not hasattr(os, "fork"):
        pytest.skip("fork")
    child = os.fork()
    if child == 0:
        import time

        time.sleep(30)
        os._exit(0)
    try:
        deflater.close()
        assert deflater._process.returncode == 0
    finally:
        os.kill(child, 9)
        os.waitpid(child, 0)


def test_the_process_is_niced_like_the_builds_other_children(deflater):
    # It shares the second core with them, leaving one to the build's own process (build.CHILD_NICENESS).
    deflater.members([[b"x"], [], []])  # answered: it is past its start
    fields = open(f"/proc/{deflater._process.pid}/stat").read().rpartition(")")[2].split()
    assert int(fields[16]) == min(19, os.nice(0) + CHILD_NICENESS)  # field 19 of proc(5): nice
