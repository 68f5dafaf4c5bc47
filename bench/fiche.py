"""Benchmark of the fiche worker's work per formation, old code against new code in the same run.

    .venv/bin/python bench/fiche.py --content CATALOGUE.xml [--count 2000] [--runs 5] [--old HEAD]
                                    [--work /tmp/fiche-bench] [--all] [--profile]

The first ``--count`` published formations of ``CATALOGUE.xml`` (``catalogue generate`` makes one) are read
and summarised as a build does. Then, per formation, in one process and measured in CPU time:

- ``pickle``: what the build's process spends sending a batch of 64 to a worker (``pickle.dumps`` of it, or the
  code's ``_dumps_batch``),
- ``loads``: the worker unpickling it,
- ``render``: ``Site.fiche``, the page as a string (a batch at a time, in ``Site.batch()`` when the code has it),
- ``write``: ``worker`` minus ``loads`` and ``render``: the page written as a new file (encode, open, write,
  close) and the worker's garbage collection (medians of each figure: the three do not add up exactly),
- ``worker``: what a worker spends on a batch: ``_write_fiche_blob`` (``loads`` and ``_write_fiches`` in an older
  tree).

The disk is shared: ``write`` and ``worker`` vary from run to run far more than the others.

Two snapshots of the code: "old" is ``git archive OLD catalogue templates``, "new" the working copy. Each
run measures both, alternating which goes first, each in a child process (``--runs`` times); printed are the
medians per figure and code, and the ratio old / new. Byte-identical: the digest of every page rendered is
compared between the codes (``--all``: every formation of the file rather than the first ``--count``, once).
``--profile``: the new code's render under cProfile, the top functions by own time.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import hashlib
import io
import json
import os
import pickle
import shutil
import statistics
import subprocess
import sys
import tarfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TODAY = dt.date(2026, 11, 29)
FIGURES = ("pickle", "loads", "render", "write", "worker")


def _pairs(content: Path, count: int) -> list:
    from catalogue.catalog import summarize
    from catalogue.regions import geo as load_geo
    from catalogue.settings import load_settings
    from catalogue.sources import Record
    from catalogue.sources.lheo import read_lheo

    settings, geo = load_settings(), load_geo()
    pairs = []
    for item in read_lheo(content):
        if isinstance(item, Record):
            entry = summarize(item.formation, origin=item.origin, statut=item.statut, today=TODAY,
                              settings=settings, geo=geo, motif_refus=item.motif_refus)
            pairs.append((item.formation, entry))
            if count and len(pairs) >= count:
                break
    return pairs


def child(content: Path, count: int, work: Path, profile: bool) -> None:
    """Measures the code found first on sys.path (the snapshot the parent chose); prints one JSON line."""
    from catalogue import render
    from catalogue.regions import geo as load_geo
    from catalogue.settings import load_settings

    pairs = _pairs(content, count)
    site = render.Site(load_settings(), TODAY, load_geo())
    # As a worker renders them: a batch at a time (the code may share work within one, see Site.batch).
    scope = getattr(site, "batch", contextlib.nullcontext)

    def render_all() -> list[str]:
        pages = []
        for start in range(0, len(pairs), render.FICHE_BATCH):
            with scope():
                pages.extend(site.fiche(f, e) for f, e in pairs[start : start + render.FICHE_BATCH])
        return pages

    digest = hashlib.sha256()
    for page in render_all():
        digest.update(page.encode("utf-8"))
    if profile:
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        profiler.enable()
        render_all()
        profiler.disable()
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(25)
        print(out.getvalue(), file=sys.stderr)
    # What SiteSink.add() puts in a batch, as the build's process makes it (the payload may change with the code).
    job = getattr(render, "_fiche_job", None)
    folder = work / f"w{os.getpid()}"
    batches = []
    for start in range(0, len(pairs), render.FICHE_BATCH):
        batch = []
        for formation, entry in pairs[start : start + render.FICHE_BATCH]:
            path = f"{folder}/{entry.ref}.html"
            batch.append(job(path, None, formation, entry) if job else (path, None, formation, entry))
        batches.append(batch)
    render._start_fiche_worker(site)  # as a worker: the collector frozen, then run once per batch
    figures: dict[str, float] = {}

    def timed(name: str, function) -> None:
        start = time.process_time()
        function()
        figures[name] = (time.process_time() - start) / len(pairs) * 1e6

    # As the build's process pickles a batch, and a worker takes it (the code may pickle its own way).
    dumps = getattr(render, "_dumps_batch", None) or (lambda b: pickle.dumps(b, protocol=pickle.HIGHEST_PROTOCOL))
    write_blob = getattr(render, "_write_fiche_blob", None) or (lambda blob: render._write_fiches(pickle.loads(blob)))
    blobs: list[bytes] = []
    timed("pickle", lambda: blobs.extend(dumps(b) for b in batches))
    timed("loads", lambda: [pickle.loads(b) for b in blobs])
    timed("render", render_all)
    folder.mkdir(parents=True)
    timed("worker", lambda: [write_blob(b) for b in blobs])
    figures["write"] = figures["worker"] - figures["loads"] - figures["render"]
    figures["bytes"] = sum(map(len, blobs)) / len(pairs)
    # Left for the parent to delete at the end: deleting files slows the disk's next creations for a while.
    print(json.dumps({"figures": figures, "digest": digest.hexdigest(), "count": len(pairs)}))


def snapshot(rev: str, target: Path) -> None:
    archive = subprocess.run(["git", "archive", rev, "catalogue", "templates"], cwd=ROOT, check=True,
                             capture_output=True).stdout
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(target, filter="data")


def run(code: Path, args: argparse.Namespace, count: int, profile: bool = False) -> dict:
    command = [sys.executable, __file__, "--child", "--content", str(args.content), "--count", str(count),
               "--work", str(args.work)] + (["--profile"] if profile else [])
    # The snapshot's catalogue/ first; its templates are found next to it (settings.PROJECT_ROOT).
    env = dict(os.environ, PYTHONPATH=str(code))
    out = subprocess.run(command, cwd=code, env=env, check=True, capture_output=True, text=True)
    if profile:
        print(out.stderr)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--content", type=Path, required=True)
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--old", default="HEAD")
    parser.add_argument("--work", type=Path, default=Path("/tmp/fiche-bench"))
    parser.add_argument("--all", action="store_true")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.content = args.content.resolve()
    if args.child:
        sys.path.insert(0, os.getcwd())
        child(args.content, args.count, args.work, args.profile)
        return
    old, new = args.work / "old", args.work / "new"
    snapshot(args.old, old)
    if new.exists():
        shutil.rmtree(new)
    new.mkdir(parents=True)
    shutil.copytree(ROOT / "catalogue", new / "catalogue", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "templates", new / "templates")
    if args.all:
        digests = {name: run(code, args, 0)["digest"] for name, code in (("old", old), ("new", new))}
        print("every formation:", "identical" if digests["old"] == digests["new"] else "DIFFERENT", digests)
    results: dict[str, list[dict]] = {"old": [], "new": []}
    for number in range(args.runs):
        order = (("old", old), ("new", new)) if number % 2 == 0 else (("new", new), ("old", old))
        for name, code in order:
            results[name].append(run(code, args, args.count))
    if args.profile:
        run(new, args, args.count, profile=True)
    for folder in args.work.glob("w*"):
        shutil.rmtree(folder)
    same = {r["digest"] for r in results["old"] + results["new"]}
    print(f"{args.count} formations, {args.runs} runs; pages {'identical' if len(same) == 1 else 'DIFFERENT'}")
    print(f"{'µs per fiche':<14}{'old':>10}{'new':>10}{'old/new':>10}")
    for figure in FIGURES + ("bytes",):
        medians = [statistics.median(r["figures"][figure] for r in results[name]) for name in ("old", "new")]
        ratio = medians[0] / medians[1] if medians[1] else float("nan")
        print(f"{figure:<14}{medians[0]:>10.1f}{medians[1]:>10.1f}{ratio:>10.2f}")


if __name__ == "__main__":
    main()
