"""Benchmark of the open-data exports sink (``donnees``) alone, before and after, in the same run.

    .venv/bin/python bench/exports.py [--formations 10000] [--runs 3] [--baseline REV] [--work bench/out]

1. ``generate_formations(N, seed=0)`` makes the formations once; they are pickled, with their
   entries (``summarize``), into ``WORK/exports-N.pickle`` (reused when already there).
2. Two snapshots of the code are taken when the benchmark starts: ``new``, a copy of ``catalogue/``
   and ``templates/`` as they are; ``old``, the same copy with ``catalogue/exports.py`` and
   ``catalogue/lheo_export.py`` as they were at ``--baseline`` (default: the commit before the fast
   writer). Only the sink's own files differ between them.
3. Each run spawns one child per variant, in turn (old, new, new-1t, old, ...): the child loads the
   pickle (untimed), then feeds every formation to a fresh ``DonneesSink`` (``add``) and calls
   ``finish``, as a full build does. ``new`` compresses on the sink's own thread
   (``DonneesSink.compress_in_thread``), ``new-1t`` on the main thread, as ``old`` does. Timed:
   that, as CPU time of the process (``process_time``, every thread), CPU time of the main thread
   (``thread_time``: what the build's main thread spends) and wall time. CPU time is the figure
   to read on a shared machine; wall time moves with the load.
4. Printed: the median of the runs for each variant, the ratios to old, formations per second,
   and whether all wrote the same bytes (every file of ``site/donnees/`` and the sink's index).
   With ``--parts``, the ``new`` child also times each part of ``add`` on its own over the same
   formations (XML, JSON, CSV, gzip).

Incremental builds: ``--incremental [--baseline REV] [--busy 150]``. A full run of the ``new`` code
makes the previous build once (its index is the same for every variant). Then, in turn, each variant
rebuilds from it twice: one formation changed (the middle one), and one in a hundred changed
(``i % 100 == 37``), as ``build()`` calls the sink: ``add()`` for the changed formations (their titles
end in " (modifiee)"), ``keep()`` for the others. ``--busy`` µs of Python per formation on the main
thread stand for the rest of the build (the reading, the other sinks): the compressing threads wait for
the GIL while it runs. Printed: the main thread's CPU in the sink (``add``, ``keep``, ``finish``),
the wall time of the sink's calls (the main thread's CPU and its waits for the compressing threads),
medians, ratios, and whether every variant wrote the full build's bytes.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import hashlib
import json
import pickle
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TODAY = dt.date(2026, 11, 29)
SEED = 0
#: The last commit whose exports went through lxml trees and the XSD for every formation.
BASELINE = "aa07c00"
MINE = ("catalogue/exports.py", "catalogue/lheo_export.py")


# --------------------------------------------------------------------------
# The child: the sink over the pickled formations
# --------------------------------------------------------------------------


def child(code: Path, data: Path, out: Path, parts: bool, threaded: bool) -> None:
    sys.path.insert(0, str(code))  # before the editable install's finder
    import catalogue
    from catalogue.build import SinkContext
    from catalogue.catalog import Catalog
    from catalogue.exports import DonneesSink
    from catalogue.regions import geo
    from catalogue.settings import Settings

    assert Path(catalogue.__file__).resolve().parent.parent == code.resolve(), catalogue.__file__
    with open(data, "rb") as handle:
        formations, entries = pickle.load(handle)
    # The build holds a formation while the sinks take it; here all of them live on: out of the collector's
    # way, or each full collection walks them all (a second at 20,000) and decides the figures.
    gc.freeze()
    settings = Settings(site_url="https://catalogue.exemple.fr")
    places = geo()
    out.mkdir(parents=True)
    if not threaded:
        DonneesSink.compress_in_thread = False

    cpu, thread, wall = time.process_time(), time.thread_time(), time.perf_counter()
    sink = DonneesSink(SinkContext(out, settings, TODAY, places))
    for formation, entry in zip(formations, entries):
        sink.add(formation, entry)
    sink.finish(Catalog.of(entries, TODAY))
    result = {
        "cpu_s": time.process_time() - cpu,
        "thread_s": time.thread_time() - thread,
        "wall_s": time.perf_counter() - wall,
        "formations": sink.formations,
        "in_xml": sink.in_xml,
        "digest": _digest(out),
    }
    if parts:
        result["parts"] = _parts(sink, formations, entries)
    print(json.dumps(result))


def child_incremental(code: Path, data: Path, previous: Path, out: Path, every: int, only: int, busy: float) -> None:
    """The sink from ``previous`` (a full run's folder), formations changed: ``i % every == only % every``."""
    sys.path.insert(0, str(code))
    import catalogue
    from catalogue.build import PreviousBuild, SinkContext
    from catalogue.catalog import Catalog, summarize
    from catalogue.exports import DonneesSink
    from catalogue.model import Statut
    from catalogue.problems import Origin
    from catalogue.regions import geo
    from catalogue.settings import Settings

    assert Path(catalogue.__file__).resolve().parent.parent == code.resolve(), catalogue.__file__
    with open(data, "rb") as handle:
        formations, entries = pickle.load(handle)
    # The build holds a formation while the sinks take it; here all of them live on: out of the collector's
    # way, or each full collection walks them all (a second at 20,000) and decides the figures.
    gc.freeze()
    settings = Settings(site_url="https://catalogue.exemple.fr")
    places = geo()
    changed = [i for i in range(len(formations)) if (i % every == only % every if every else i == only)]
    for i in changed:
        formations[i] = formations[i].model_copy(update={"intitule_formation": formations[i].intitule_formation
                                                         + " (modifiee)"})
        entries[i] = summarize(formations[i], origin=Origin("bench.xml", 1), statut=Statut.VALIDEE, today=TODAY,
                               settings=settings, geo=places)
    changed_set = set(changed)
    out.mkdir(parents=True)
    context = SinkContext(out, settings, TODAY, places, PreviousBuild(previous, frozenset(e.ref for e in entries)))
    spin = busy / 1e6
    in_sink = 0.0
    clock, thread_clock = time.perf_counter, time.thread_time
    cpu, thread, wall = time.process_time(), thread_clock(), clock()
    start = clock()
    sink = DonneesSink(context)
    in_sink += clock() - start
    sink_thread = thread_clock() - thread
    for i, entry in enumerate(entries):
        until = clock() + spin
        while clock() < until:  # the rest of the build's work for this formation
            pass
        start, start_cpu = clock(), thread_clock()
        if i in changed_set:
            sink.add(formations[i], entry)
        else:
            sink.keep(entry)
        in_sink += clock() - start
        sink_thread += thread_clock() - start_cpu
    start, start_cpu = clock(), thread_clock()
    sink.finish(Catalog.of(entries, TODAY))
    in_sink += clock() - start
    sink_thread += thread_clock() - start_cpu
    print(json.dumps({
        "cpu_s": time.process_time() - cpu, "wall_s": clock() - wall, "sink_wall_s": in_sink,
        "sink_thread_s": sink_thread, "changed": len(changed), "digest": _digest(out),
    }))


def _digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(folder)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _parts(sink, formations, entries) -> dict[str, float]:
    """CPU seconds of each part of ``add``, alone over every formation (what the sink does, piece by piece)."""
    from catalogue.exports import gzip_member, json_line, session_rows

    url = "https://catalogue.exemple.fr"
    timings = {}
    start = time.process_time()
    xml = [sink.xml(f)[0] for f in formations]
    timings["xml"] = time.process_time() - start
    start = time.process_time()
    items = [json_line(f, e, url + e.url) for f, e in zip(formations, entries)]
    timings["json"] = time.process_time() - start
    start = time.process_time()
    lines = [sink.csv_lines(list(session_rows(f, e, sink.geo, url + e.url))) for f, e in zip(formations, entries)]
    timings["csv"] = time.process_time() - start
    start = time.process_time()
    for chunk in range(0, len(formations), 16):
        for kind in (xml, items, lines):
            gzip_member(b"".join(kind[chunk : chunk + 16]))
    timings["gzip"] = time.process_time() - start
    return timings


# --------------------------------------------------------------------------
# The parent
# --------------------------------------------------------------------------


def snapshot(target: Path, baseline: str | None) -> Path:
    """``catalogue/`` and ``templates/`` copied to ``target``; with ``baseline``, the sink's files as they were then."""
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "catalogue", target / "catalogue", ignore=ignore)
    shutil.copytree(ROOT / "templates", target / "templates", ignore=ignore)
    if baseline is not None:
        for path in MINE:
            text = subprocess.run(["git", "show", f"{baseline}:{path}"], cwd=ROOT, check=True,
                                  capture_output=True).stdout
            (target / path).write_bytes(text)
    return target


def make_data(path: Path, count: int) -> None:
    if path.exists():
        return
    sys.path.insert(0, str(ROOT))
    from catalogue.catalog import summarize
    from catalogue.generate import generate_formations
    from catalogue.model import Statut
    from catalogue.problems import Origin
    from catalogue.regions import geo
    from catalogue.settings import Settings

    print(f"génération de {count} formations...", file=sys.stderr)
    settings = Settings(site_url="https://catalogue.exemple.fr")
    places = geo()
    formations = list(generate_formations(count, seed=SEED, reference=TODAY))
    entries = [summarize(f, origin=Origin("bench.xml", 1), statut=Statut.VALIDEE, today=TODAY, settings=settings,
                         geo=places) for f in formations]
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".tmp"), "wb") as handle:
        pickle.dump((formations, entries), handle, protocol=pickle.HIGHEST_PROTOCOL)
    path.with_suffix(".tmp").rename(path)


def run_child(code: Path, data: Path, parts: bool, threaded: bool) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-exports-") as tmp:
        command = [sys.executable, __file__, "--child", str(code), "--data", str(data), "--out", str(Path(tmp) / "o")]
        if parts:
            command.append("--parts")
        if not threaded:
            command.append("--no-thread")
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode:
            raise SystemExit(done.stderr)
        return json.loads(done.stdout.strip().splitlines()[-1])


def run_incremental(code: Path, data: Path, previous: Path, every: int, only: int, busy: float) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-exports-") as tmp:
        command = [sys.executable, __file__, "--child-incremental", str(code), "--data", str(data), "--previous",
                   str(previous), "--out", str(Path(tmp) / "o"), "--every", str(every), "--only", str(only),
                   "--busy", str(busy)]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode:
            raise SystemExit(done.stderr)
        return json.loads(done.stdout.strip().splitlines()[-1])


def incremental(args, data: Path, old: Path, new: Path) -> None:
    count = args.formations
    previous = args.work / f"exports-previous-{count}"
    if previous.exists():
        shutil.rmtree(previous)
    # The previous build: a full run of the new code (the index is the same for every variant).
    command = [sys.executable, __file__, "--child", str(new), "--data", str(data), "--out", str(previous)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(done.stderr)
    cases = {"one": (0, count // 2), "1 %": (100, 37)}
    variants = {"old": old, "new": new}
    results: dict[tuple[str, str], list[dict]] = {(c, v): [] for c in cases for v in variants}
    for run in range(args.runs):
        for case, (every, only) in cases.items():
            for name in (variants if run % 2 == 0 else dict(reversed(variants.items()))):
                result = run_incremental(variants[name], data, previous, every, only, args.busy)
                results[(case, name)].append(result)
                print(f"  run {run + 1} {case} {name}: sink's calls {result['sink_wall_s']:.3f} s wall, main thread "
                      f"{result['sink_thread_s']:.3f} s CPU; process CPU {result['cpu_s']:.2f} s", flush=True)

    def median(case: str, name: str, key: str) -> float:
        return statistics.median(r[key] for r in results[(case, name)])

    print()
    print(f"{count} formations, {args.runs} runs, busy {args.busy:g} µs a formation; medians")
    print(f"{'':34} {'old':>8} {'new':>8} {'old/new':>8}")
    for case in cases:
        for key, label in (("sink_wall_s", "sink's calls, wall (s)"), ("sink_thread_s", "sink, main thread CPU (s)"),
                           ("cpu_s", "process CPU (s)")):
            o, n = median(case, "old", key), median(case, "new", key)
            print(f"{case + ', ' + label:34} {o:8.3f} {n:8.3f} {o / n:8.2f}")
        digests = {r["digest"] for name in variants for r in results[(case, name)]}
        print(f"{case}: same bytes in every run: {'yes' if len(digests) == 1 else 'NO'} "
              f"({results[(case, 'new')][0]['changed']} changed)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--formations", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--baseline", default=BASELINE)
    parser.add_argument("--work", type=Path, default=ROOT / "bench" / "out")
    parser.add_argument("--parts", action="store_true")
    parser.add_argument("--child", type=Path)
    parser.add_argument("--data", type=Path)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--no-thread", action="store_true")
    parser.add_argument("--incremental", action="store_true")
    parser.add_argument("--busy", type=float, default=150.0)
    parser.add_argument("--child-incremental", type=Path)
    parser.add_argument("--previous", type=Path)
    parser.add_argument("--every", type=int, default=0)
    parser.add_argument("--only", type=int, default=0)
    args = parser.parse_args()
    if args.child is not None:
        child(args.child, args.data, args.out, args.parts, not args.no_thread)
        return
    if args.child_incremental is not None:
        child_incremental(args.child_incremental, args.data, args.previous, args.out, args.every, args.only, args.busy)
        return

    data = args.work / f"exports-{args.formations}.pickle"
    make_data(data, args.formations)
    old, new = snapshot(args.work / "exports-code" / "old", args.baseline), snapshot(args.work / "exports-code" / "new", None)
    if args.incremental:
        incremental(args, data, old, new)
        return
    #: name: (code, gzip on its own thread); "new-1t": the new code compressing on the main thread.
    variants = {"old": (old, False), "new": (new, True), "new-1t": (new, False)}
    dirty = subprocess.run(["git", "status", "--porcelain", "--", *MINE], cwd=ROOT, capture_output=True,
                           text=True).stdout.strip()
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout
    print(f"{args.formations} formations, {args.runs} runs; old = {args.baseline}, new = {head.strip()}"
          f"{' + uncommitted changes' if dirty else ''}")
    results: dict[str, list[dict]] = {name: [] for name in variants}
    for run in range(args.runs):
        for name, (code, threaded) in variants.items():
            result = run_child(code, data, args.parts and name == "new" and run == 0, threaded)
            results[name].append(result)
            print(f"  run {run + 1} {name}: cpu {result['cpu_s']:.2f} s, main thread {result['thread_s']:.2f} s, "
                  f"wall {result['wall_s']:.2f} s", flush=True)

    def median(name: str, key: str) -> float:
        return statistics.median(r[key] for r in results[name])

    print()
    print(f"{'':16} {'old':>9} {'new':>9} {'new-1t':>9} {'old/new':>8} {'old/new-1t':>10}")
    for key, label in (("cpu_s", "CPU, all (s)"), ("thread_s", "main thread (s)"), ("wall_s", "wall (s)")):
        old, new, single = median("old", key), median("new", key), median("new-1t", key)
        print(f"{label:16} {old:9.2f} {new:9.2f} {single:9.2f} {old / new:8.2f} {old / single:10.2f}")
    for name in variants:
        cpu, main_thread = median(name, "cpu_s"), median(name, "thread_s")
        print(f"{name}: {args.formations / main_thread:,.0f} formations/s of the main thread's CPU "
              f"({1e6 * main_thread / args.formations:.0f} µs a formation), "
              f"{args.formations / cpu:,.0f} of all CPU ({1e6 * cpu / args.formations:.0f} µs)")
    every = [r for rs in results.values() for r in rs]
    digests = {r["digest"] for r in every}
    in_xml = {(r["formations"], r["in_xml"]) for r in every}
    print(f"same bytes (every variant, every run): {'yes' if len(digests) == 1 else 'NO'}; "
          f"formations, in the XML: {sorted(in_xml)}")
    parts = results["new"][0].get("parts")
    if parts:
        print("new, each part alone (CPU s): " + ", ".join(f"{k} {v:.2f}" for k, v in parts.items()))


if __name__ == "__main__":
    main()
