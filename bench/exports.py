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
"""

from __future__ import annotations

import argparse
import datetime as dt
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
    args = parser.parse_args()
    if args.child is not None:
        child(args.child, args.data, args.out, args.parts, not args.no_thread)
        return

    data = args.work / f"exports-{args.formations}.pickle"
    make_data(data, args.formations)
    old, new = snapshot(args.work / "exports-code" / "old", args.baseline), snapshot(args.work / "exports-code" / "new", None)
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
