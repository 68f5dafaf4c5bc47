"""Benchmark of the build's ``read`` phase alone: LHEO chunk -> Formation -> Entry, checks, title key, validity.

    .venv/bin/python bench/read.py [--formations 10000] [--runs 5] [--base HEAD]
                                   [--work /tmp/read] [--limit N] [--profile new|base]

What one formation costs in the build's ``read`` phase (see ``build._evaluate``):
:func:`read_chunk` (lxml parse of the chunk, the dict, the pydantic
validation), :func:`summarize`, :func:`check_formation`,
:func:`normalise_title` and :func:`valid_until`, in process, over a
catalogue made by ``catalogue generate`` (seed 0). The file is split once per
run (:func:`split_lheo`, not timed), and the chunk digest of incremental
builds is left out: both are the same code in both versions.

Two versions of the code run in the same process, alternating run by run:
``new``, the working tree's ``catalogue/``, and ``base``, ``git archive`` of
``--base`` extracted as the package ``catalogue_base``. Printed: CPU µs per
formation of each run (the process's CPU time: the machine is shared), the
medians and their ratio. Before timing, every formation's outcome (the
Entry, the problems, the validated model as JSON, the title key and the
validity) is compared between the two: a benchmark of code that changed the
output stops there. Each pass starts with the reader's caches empty, as a
build does (a warm-up pass of 500 formations first loads the code's lazy parts), and the
collector runs as often as in a build (``build.BUILD_GC_THRESHOLD``: with Python's default, its
passes over what the process holds weigh on code that allocates more than they do in a build).

``--profile new`` (or ``base``) runs cProfile over one pass instead and
prints the top of the profile (by own time, then by cumulative time).
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import gc
import importlib
import io
import pstats
import statistics
import subprocess
import sys
import tarfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TODAY = dt.date(2026, 9, 1)  # generate's reference day: some sessions ended, most not


def base_package(ref: str, work: Path) -> str:
    """``catalogue/`` at ``ref`` as the importable package ``catalogue_base`` (relative imports only)."""
    sha = subprocess.run(["git", "rev-parse", ref], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    target = work / f"base-{sha[:12]}"
    if not (target / "catalogue_base").is_dir():
        archive = subprocess.run(["git", "archive", sha, "catalogue"], cwd=ROOT, capture_output=True, check=True).stdout
        target.mkdir(parents=True, exist_ok=True)
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(target / "tmp", filter="data")
        (target / "tmp" / "catalogue").rename(target / "catalogue_base")
    sys.path.insert(0, str(target))
    print(f"base: {ref} = {sha[:12]}", flush=True)
    return "catalogue_base"


class Version:
    """The modules of one version of the code, and one pass of the read phase with them."""

    def __init__(self, package: str):
        self.name = package
        mod = lambda name: importlib.import_module(f"{package}.{name}")  # noqa: E731
        self.lheo = mod("sources.lheo")
        self.sources = mod("sources")
        self.catalog = mod("catalog")
        self.rules = mod("rules")
        self.incremental = mod("incremental")
        self.settings = mod("settings").load_settings()
        self.geo = mod("regions").geo()

    def evaluate(self, items: list) -> tuple:
        """What ``build._evaluate`` computes for one formation's items."""
        problems = tuple(i for i in items if not isinstance(i, self.sources.Record))
        record = next((i for i in items if isinstance(i, self.sources.Record)), None)
        if record is None:
            return problems, None, (), None, None
        entry = self.catalog.summarize(
            record.formation,
            origin=record.origin,
            statut=record.statut,
            today=TODAY,
            settings=self.settings,
            geo=self.geo,
            motif_refus=record.motif_refus,
        )
        checks = tuple(self.rules.check_formation(record.formation, entry, self.settings, self.geo))
        return (
            problems,
            entry,
            checks,
            self.rules.normalise_title(entry.intitule),
            self.incremental.valid_until(record.formation, TODAY),
            record.formation,
        )

    def cold(self) -> None:
        """Forget what the previous pass remembered, as a build starts: every cache of the read path."""
        for value in vars(self.lheo).values():
            if isinstance(value, self.lheo.Spec) and hasattr(value, "validated"):
                value.validated.clear()
                value.validated_bytes = 0
        for function in (getattr(self.lheo, "_date", None), getattr(self.rules, "normalise_title", None)):
            if hasattr(function, "cache_clear"):
                function.cache_clear()

    def run(self, path: Path, limit: int) -> tuple[float, int]:
        """CPU seconds (this process's, as the machine is shared) and formations of one pass, caches cold."""
        lheo = self.lheo
        self.cold()
        with lheo.split_lheo(path) as split:  # the lead's code, the same in both: not timed
            chunks = split.chunks[:limit]
            gc.collect()
            start = time.process_time()
            for chunk in chunks:
                self.evaluate(lheo.read_chunk(split, chunk))
            return time.process_time() - start, len(chunks)

    def outcomes(self, path: Path, limit: int):
        with self.lheo.split_lheo(path) as split:
            for chunk in split.chunks[:limit]:
                yield _comparable(self.evaluate(self.lheo.read_chunk(split, chunk)))


def _comparable(outcome: tuple) -> tuple:
    problems, entry, checks, key, until, *formation = outcome
    dumped = formation[0].model_dump_json() if formation else None
    return repr(problems), repr(entry), repr(checks), key, until, dumped


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--formations", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--base", default="HEAD", help="git ref of the code compared with the working tree")
    parser.add_argument("--work", type=Path, default=Path("/tmp/read"))
    parser.add_argument("--limit", type=int, default=None, help="read only the first N formations")
    parser.add_argument("--profile", choices=("new", "base"), default=None)
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args()

    sys.path.insert(0, str(ROOT))
    args.work.mkdir(parents=True, exist_ok=True)
    path = args.work / f"catalogue-{args.formations}.xml"
    if not path.exists():
        from catalogue.generate import generate

        print(f"generating {path}...", flush=True)
        generate(path, args.formations, seed=0)
    limit = args.limit or args.formations
    new = Version("catalogue")
    base = Version(base_package(args.base, args.work))
    from catalogue.build import BUILD_GC_THRESHOLD

    gc.set_threshold(BUILD_GC_THRESHOLD, *gc.get_threshold()[1:])

    if args.profile:
        version = new if args.profile == "new" else base
        version.run(path, min(limit, 500))  # warm the caches
        profiler = cProfile.Profile()
        profiler.enable()
        seconds, count = version.run(path, limit)
        profiler.disable()
        print(f"{version.name}: {count} formations, {seconds / count * 1e6:.0f} µs each under the profiler")
        for key in ("tottime", "cumulative"):
            stream = io.StringIO()
            pstats.Stats(profiler, stream=stream).sort_stats(key).print_stats(args.top)
            print(stream.getvalue())
        return

    differences = 0
    for index, (a, b) in enumerate(zip(new.outcomes(path, limit), base.outcomes(path, limit))):
        if a != b:
            differences += 1
            if differences <= 3:
                print(f"formation {index + 1}: outcomes differ\n  new:  {a}\n  base: {b}")
    if differences:
        sys.exit(f"{differences} formation(s) read differently: no timing")
    print(f"outcomes identical for {limit} formations", flush=True)

    times: dict[str, list[float]] = {new.name: [], base.name: []}
    for version in (new, base):  # warm-up: caches, lazily built schemas
        version.run(path, min(limit, 500))
    for run in range(args.runs):
        for version in (base, new) if run % 2 else (new, base):
            seconds, count = version.run(path, limit)
            times[version.name].append(seconds / count * 1e6)
            print(f"run {run + 1} {version.name:>14}: {seconds / count * 1e6:7.0f} µs/formation ({seconds:.2f} s)", flush=True)
    median_new, median_base = statistics.median(times[new.name]), statistics.median(times[base.name])
    print(f"\nmedian of {args.runs} runs, µs per formation: base {median_base:.0f}, new {median_new:.0f}, new/base {median_new / median_base:.2f}")
    ratios = [n / b for n, b in zip(times[new.name], times[base.name])]
    print(f"ratio per run (new/base): {', '.join(f'{r:.2f}' for r in ratios)}; median {statistics.median(ratios):.2f}")


if __name__ == "__main__":
    main()
