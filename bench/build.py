"""Benchmark of the whole build against the targets of the "scale" issue, next to a floor measured in the same run.

    .venv/bin/python bench/build.py [--formations 100000] [--runs R] [--reuse]
                                    [--work bench/out] [--build-root DIR] [--keep]

1. ``catalogue.generate.generate`` writes ``WORK/catalogue-N.xml`` (seed 0), or
   ``--reuse`` takes the one already there.
2. Each build runs in a child process (this script with ``--child``, which calls
   :func:`catalogue.build.build` as ``catalogue build`` does and prints the
   report's phase timings as JSON), reading one input file always at the same
   path. Measured: wall time from spawn to exit (interpreter start and imports
   included, as a user waits for them); the peak RSS of the largest process
   (the kernel's ``ru_maxrss`` from ``wait4``, the figure ``/usr/bin/time -v``
   prints); and the process tree's total (the build and Whoosh's writer
   processes) sampled from ``/proc`` every 0.5 s, as the sum of PSS (shared
   pages counted once) and the sum of RSS (shared pages counted in each).
   The child also notes its own RSS after every tenth of the formations is
   emitted, to show whether memory grows with the input.
3. The floor, in the same run: plain Python writing, into a fresh folder on the
   same file system, every file the build wrote (``site/``, ``index/`` and the
   reports) at the same relative path with the same size: same number of files,
   same bytes, same folders. Before each build and the floor, ``os.sync()``
   (untimed) flushes what the step before left dirty, so each starts alike;
   neither syncs its own output. Before the first build, the first rebuild (after
   the floor's files are deleted) and the reference full build (after the 1 %
   rebuild's prune), the benchmark waits for the deletions to end, then
   ``--settle`` seconds (:data:`SETTLE_S`): for a minute or so after 100,000
   unlinks, every file created costs twenty times more kernel CPU (a build's
   own prune runs after it, in the background).
4. The rebuilds go into the same build folder, as a user would run them, so
   they are incremental: nothing changed; one formation changed (its
   ``intitule-formation`` edited); 1 % changed (every hundredth, including that
   one). For each, the site files written anew (one link: not shared with the
   build before) are counted, and the files whose bytes differ from the build
   before. "Byte-identical": the ``site/`` of the 1 % rebuild is compared, file
   by file, with a full build (``full=True``) of the same input into another
   folder; and the first builds of every run with each other.

The builds run a snapshot of ``catalogue/`` and ``templates/`` copied when the
benchmark starts (the tree may change under a long run; the snapshot keeps the
runs comparable); the snapshot's git commit and dirty state are printed.

Printed: one table (figure, target, measured, ratio to the floor, met?), times
as the median of the runs and memory as the largest; then the phases of each
kind of build, the RSS by tenth, and the files that changed by folder.
"""

from __future__ import annotations

import argparse
import compileall
import datetime as dt
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TODAY = dt.date(2026, 11, 29)
SEED = 0
SAMPLE_EVERY = 0.5  # seconds between two samples of the process tree
PAGE = os.sysconf("SC_PAGE_SIZE")
GB = 1e9
MB = 1e6
#: Disk a run needs per formation: the input and its edited copy, two kept builds, the floor's copy.
DISK_PER_FORMATION = 200_000
EDIT = b" (modifiee)"
INTITULE_END = b"</intitule-formation>"

TARGETS = {
    "full": 120.0,
    "memory": 2 * GB,
    "nothing": 10.0,
    "one": 5.0,
    "percent": 15.0,
}


# --------------------------------------------------------------------------
# The child: one build, as `catalogue build` runs it
# --------------------------------------------------------------------------


def _own_rss() -> int:
    with open("/proc/self/statm", "rb") as handle:
        return int(handle.read().split()[1]) * PAGE


def child(content: Path, build_dir: Path, expected: int, code: Optional[Path], full: bool) -> None:
    """Build ``content`` into ``build_dir``; print the report's figures as one JSON line."""
    if code is not None:
        sys.path.insert(0, str(code))  # before the editable install's finder, which comes last
    import catalogue
    from catalogue.build import BuildOptions, build
    from catalogue.settings import load_settings

    size = content.stat().st_size
    rss_by_tenth: list[tuple[int, int]] = []

    class Progress:
        """Notes the build's RSS after each tenth of the input (by bytes, about one tenth of the formations)."""

        done = 0

        def advance(self, done: int) -> None:
            before = self.done * 10 // size
            self.done += done
            if self.done * 10 // size > before:
                rss_by_tenth.append((expected * self.done // size, _own_rss()))

        def phase(self, name: str) -> None:
            pass

    start = time.perf_counter()
    report = build(BuildOptions(content=(content,), build_dir=build_dir, today=TODAY, full=full),
                   load_settings(None), progress=Progress())
    total = time.perf_counter() - start
    print(json.dumps({
        "build_s": total,
        "timings": report.timings,
        "read": report.read,
        "published": report.published,
        "archived": report.archived,
        "errors": len(report.errors),
        "warnings": len(report.warnings),
        "rss_by_tenth": rss_by_tenth,
        "incremental": report.incremental,
        "unchanged": report.unchanged,
        "rendered": report.rendered,
        "reused": report.reused,
        "code": str(Path(catalogue.__file__).resolve().parent.parent),
    }))


# --------------------------------------------------------------------------
# Measuring a child: wall time, peak RSS, the process tree sampled from /proc
# --------------------------------------------------------------------------


def _children_table() -> dict[int, list[int]]:
    table: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as handle:
                data = handle.read()
        except OSError:
            continue
        ppid = int(data[data.rindex(b")") + 2 :].split()[1])
        table.setdefault(ppid, []).append(int(entry.name))
    return table


def _tree(root: int) -> list[int]:
    table = _children_table()
    pids, todo = [], [root]
    while todo:
        pid = todo.pop()
        pids.append(pid)
        todo.extend(table.get(pid, ()))
    return pids


def _memory(pid: int) -> tuple[int, int]:
    """(RSS, PSS) of one process in bytes; (0, 0) once it is gone."""
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as handle:
            rss = pss = 0
            for line in handle:
                if line.startswith(b"Rss:"):
                    rss = int(line.split()[1]) * 1024
                elif line.startswith(b"Pss:"):
                    pss = int(line.split()[1]) * 1024
            return rss, pss
    except (OSError, ValueError):
        return 0, 0


class TreeSampler(threading.Thread):
    """Sums the RSS and PSS of a process and its descendants every :data:`SAMPLE_EVERY` seconds."""

    def __init__(self, root: int):
        super().__init__(daemon=True)
        self.root = root
        self.stopped = threading.Event()
        self.peak_rss = self.peak_pss = self.peak_processes = 0
        self.samples: list[tuple[float, int, int, int]] = []  # (s since start, processes, RSS, PSS)
        self.process_peaks: dict[int, int] = {}  # pid: its largest PSS
        self.start_time = time.perf_counter()

    def run(self) -> None:
        while True:
            self.sample()
            if self.stopped.wait(SAMPLE_EVERY):
                return

    def sample(self) -> None:
        pids = _tree(self.root)
        memories = [_memory(pid) for pid in pids]
        for pid, (_, pss) in zip(pids, memories):
            self.process_peaks[pid] = max(self.process_peaks.get(pid, 0), pss)
        alive = [m for m in memories if m[0]]
        rss, pss = sum(m[0] for m in alive), sum(m[1] for m in alive)
        self.samples.append((time.perf_counter() - self.start_time, len(alive), rss, pss))
        self.peak_rss = max(self.peak_rss, rss)
        self.peak_pss = max(self.peak_pss, pss)
        self.peak_processes = max(self.peak_processes, len(alive))

    def stop(self) -> None:
        self.stopped.set()
        self.join()


@dataclass
class Build:
    """One measured build."""

    label: str
    wall_s: float
    maxrss: int  # the largest single process (kernel's ru_maxrss)
    tree_pss: int
    tree_rss: int
    processes: int
    report: dict
    load: float  # 1-minute load average when it ended
    cpu_s: float = 0.0  # user + system time of the child and its reaped descendants
    process_peaks: list[int] = field(default_factory=list)  # largest PSS of each process, largest first
    hashes: dict[str, str] = field(default_factory=dict)

    @property
    def peak(self) -> int:
        return max(self.tree_pss, self.maxrss)


#: Seconds a build waits after the last mass deletion (the floor's folder, a pruned build). On this
#: machine's ext4 (online discard), creating a file cost 25 µs of CPU before 100,000 unlinks, 480 to
#: 680 µs from 30 to 70 s after them, and 25 µs again from 100 s on: a full build's 150,000 files
#: would pay a minute of kernel CPU for the step before it.
SETTLE_S = 120.0


def settle(build_dirs: list[Path], seconds: float) -> None:
    """Wait for the builds' trash to be deleted (their prune runs in the background), then ``seconds``."""
    deadline = time.monotonic() + 600
    while any((folder / ".trash").exists() and any((folder / ".trash").iterdir()) for folder in build_dirs):
        if time.monotonic() > deadline:
            break
        time.sleep(0.5)
    os.sync()
    time.sleep(seconds)


def run_build(label: str, content: Path, build_dir: Path, expected: int, log: Path, code: Path,
              full: bool = False) -> Build:
    """Run one build in a child process, on the code snapshot ``code``, and measure it."""
    args = [sys.executable, str(Path(__file__).resolve()), "--child", "--content", str(content),
            "--build-dir", str(build_dir), "--formations", str(expected), "--code", str(code)]
    args += ["--full"] if full else []
    out_path, err_path = log.with_suffix(".out"), log.with_suffix(".err")
    os.sync()  # start from clean page cache: the previous step's dirty pages would throttle this one's writes
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        start = time.perf_counter()
        process = subprocess.Popen(args, stdout=out, stderr=err, cwd=ROOT)
        sampler = TreeSampler(process.pid)
        sampler.start()
        # wait4 rather than Popen.wait: it gives the child's rusage (its peak RSS, or that of a
        # reaped descendant if larger), the same figure `/usr/bin/time -v` prints.
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - start
        process.returncode = os.waitstatus_to_exitcode(status)
        sampler.stop()
    if process.returncode != 0:
        sys.exit(f"{label}: the build failed (exit {process.returncode}); see {err_path}:\n"
                 + err_path.read_text(errors="replace")[-3000:])
    report = json.loads(out_path.read_text().strip().splitlines()[-1])
    if Path(report["code"]) != code.resolve():
        sys.exit(f"{label}: the build ran {report['code']}, not the snapshot {code}")
    (log.with_suffix(".rss.json")).write_text(json.dumps(sampler.samples))
    return Build(label, wall, usage.ru_maxrss * 1024, sampler.peak_pss, sampler.peak_rss,
                 sampler.peak_processes, report, os.getloadavg()[0], usage.ru_utime + usage.ru_stime,
                 sorted((v for v in sampler.process_peaks.values() if v > 16 * MB), reverse=True))


# --------------------------------------------------------------------------
# Inputs, output trees, the floor
# --------------------------------------------------------------------------


def edited_copy(source: Path, target: Path, every: Optional[int], only: Optional[int]) -> int:
    """Copy ``source`` to ``target``, appending :data:`EDIT` to the ``intitule-formation`` of
    formation ``only`` (0-based), or of every formation whose index ≡ ``only`` modulo ``every``.
    Streams line by line (the generator writes one element a line). Returns how many it edited."""
    edited = index = 0
    with open(source, "rb") as src, open(target, "wb") as dst:
        for line in src:
            if INTITULE_END in line:
                if index == only or (every and index % every == only % every):
                    line = line.replace(INTITULE_END, EDIT + INTITULE_END, 1)
                    edited += 1
                index += 1
            dst.write(line)
    return edited


def snapshot_code(dest: Path) -> str:
    """Copy ``catalogue/`` and ``templates/`` to ``dest``; say which commit, and whether it has local changes."""
    shutil.rmtree(dest, ignore_errors=True)
    for name in ("catalogue", "templates"):
        shutil.copytree(ROOT / name, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    # Compiled as pip compiles an installed package: where PYTHONDONTWRITEBYTECODE is set, every build
    # would otherwise compile the modules again (0.15 s of each rebuild's start-up here).
    compileall.compile_dir(dest / "catalogue", quiet=1)

    def git(*words: str) -> str:
        done = subprocess.run(["git", *words], cwd=ROOT, capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else "?"

    commit = git("rev-parse", "--short", "HEAD")
    dirty = git("status", "--porcelain", "--", "catalogue", "templates")
    changed = len(dirty.splitlines()) if dirty != "?" else "?"
    return f"snapshot of catalogue/ and templates/ at {commit}" + (f" + {changed} changed file(s)" if dirty else "")


def published(build_dir: Path) -> Path:
    return (build_dir / "current").resolve()


def walk(root: Path) -> list[tuple[str, int]]:
    """(relative path, size) of every file under ``root``, sorted; a file linked at several paths (the full
    build's spare links of its pages, under ``.cache/``) once, at a path outside hidden folders if it has one."""
    found = []
    for folder, _, names in os.walk(root):
        for name in names:
            path = os.path.join(folder, name)
            stat = os.stat(path)
            relative = os.path.relpath(path, root)
            found.append((relative.startswith("."), relative, stat.st_size, stat.st_ino))
    files, seen = [], set()
    for _hidden, relative, size, inode in sorted(found):
        if inode not in seen:
            seen.add(inode)
            files.append((relative, size))
    return sorted(files)


def written(root: Path) -> int:
    """Files under ``root`` with a single link: written by this build, not shared with the one before."""
    return sum(1 for folder, _, names in os.walk(root) for name in names
               if os.stat(os.path.join(folder, name)).st_nlink == 1)


def hashes(root: Path) -> dict[str, str]:
    out = {}
    for relative, _ in walk(root):
        with open(root / relative, "rb") as handle:
            out[relative] = hashlib.file_digest(handle, "blake2b").hexdigest()
    return out


def differences(before: dict[str, str], after: dict[str, str]) -> list[str]:
    """Files added, removed or changed between two hashed trees."""
    return sorted(path for path in before.keys() | after.keys() if before.get(path) != after.get(path))


def floor(files: list[tuple[str, int]], folder: Path) -> float:
    """Seconds plain Python takes to write ``files`` (same paths, same sizes) into a fresh ``folder``."""
    shutil.rmtree(folder, ignore_errors=True)
    chunk = os.urandom(1 << 20)
    folders = sorted({os.path.dirname(relative) for relative, _ in files})
    os.sync()  # as before each build (see run_build)
    start = time.perf_counter()
    for relative in folders:
        os.makedirs(folder / relative, exist_ok=True)
    for relative, size in files:
        with open(folder / relative, "wb") as handle:
            while size > 0:
                handle.write(chunk[: min(size, len(chunk))])
                size -= len(chunk)
    seconds = time.perf_counter() - start
    shutil.rmtree(folder, ignore_errors=True)
    return seconds


# --------------------------------------------------------------------------
# The runs
# --------------------------------------------------------------------------


@dataclass
class Run:
    full: Build
    nothing: Build
    one: Build
    percent: Build
    reference: Build  # a full build of the 1 % input
    floor_s: float
    files: int
    bytes: int
    site_files: int
    site_bytes: int
    identical_mismatches: list[str]  # the 1 % rebuild vs a full build of the same input
    one_changed: list[str]
    percent_changed: list[str]
    changed_bytes: dict[str, int]
    written: dict[str, int]  # site files written anew by each rebuild


def one_run(number: int, args, catalogue: Path, n: int) -> Run:
    work: Path = args.work
    build_dir = args.build_root / f"build-{n}-run{number}"
    content = args.build_root / f"input-{n}.xml"
    logs = work / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(build_dir, ignore_errors=True)
    middle = n // 2

    files_written: dict[str, int] = {}

    def measure(label: str, folder: Path = build_dir, full: bool = False) -> Build:
        build = run_build(label, content, folder, n, logs / f"{n}-run{number}-{label}", args.code, full)
        build.hashes = hashes(published(folder) / "site")
        # Nothing changed: no new build, the published one stays (its files were written before).
        files_written[label] = 0 if build.report.get("unchanged") else written(published(folder) / "site")
        print(f"  run {number}: {label:<8} {build.wall_s:7.1f} s (CPU {build.cpu_s:.1f} s), peak {build.peak / MB:,.0f} MB "
              f"(largest process {build.maxrss / MB:,.0f} MB), load {build.load:.2f}", flush=True)
        return build

    shutil.copyfile(catalogue, content)
    settle([build_dir], args.settle)
    full = measure("full")
    output = walk(published(build_dir))
    site = [f for f in output if f[0].startswith("site" + os.sep)]
    floor_s = floor(output, args.build_root / f"floor-{n}")
    print(f"  run {number}: floor    {floor_s:7.1f} s ({len(output):,} files, {sum(s for _, s in output) / MB:,.0f} MB)",
          flush=True)

    settle([build_dir], args.settle)  # the floor's files were just deleted
    nothing = measure("nothing")

    edited_copy(catalogue, content, every=None, only=middle)
    one = measure("one")
    one_changed = differences(nothing.hashes, one.hashes)

    count = edited_copy(catalogue, content, every=100, only=middle)
    assert count == len(range(middle % 100, n, 100)), count
    percent = measure("percent")
    percent_changed = differences(one.hashes, percent.hashes)
    reference_dir = args.build_root / f"build-{n}-run{number}-reference"
    shutil.rmtree(reference_dir, ignore_errors=True)
    settle([build_dir, reference_dir], args.settle)
    reference = measure("reference", reference_dir, full=True)
    mismatches = differences(reference.hashes, percent.hashes)
    shutil.rmtree(reference_dir, ignore_errors=True)
    if mismatches:
        print(f"  run {number}: {len(mismatches):,} site files differ between the 1 % rebuild and a full build "
              f"of the same input: {_by_folder(mismatches)}; e.g. {mismatches[0]}", flush=True)

    site_root = published(build_dir) / "site"
    changed_bytes = {path: (site_root / path).stat().st_size if (site_root / path).exists() else 0
                     for path in one_changed}
    if not args.keep:
        shutil.rmtree(build_dir, ignore_errors=True)
    content.unlink(missing_ok=True)
    return Run(full, nothing, one, percent, reference, floor_s, len(output), sum(s for _, s in output),
               len(site), sum(s for _, s in site), mismatches, one_changed, percent_changed, changed_bytes,
               files_written)


# --------------------------------------------------------------------------
# Printing
# --------------------------------------------------------------------------


def _median(values) -> float:
    return statistics.median(list(values))


def _yes(ok: bool) -> str:
    return "yes" if ok else "**no**"


#: Top folders of the site whose sub-folders are counted apart (the search shards: n/, t/, d/).
SPLIT_FOLDERS = ("recherche",)


def _by_folder(paths: list[str]) -> str:
    def key(path: str) -> str:
        parts = path.split(os.sep)
        depth = 2 if parts[0] in SPLIT_FOLDERS else 1
        return os.sep.join(parts[:depth]) + (os.sep if len(parts) > depth else "")

    counts = Counter(key(p) for p in paths)
    return ", ".join(f"{folder} {count:,}" for folder, count in counts.most_common(12))


def creation_cost(folder: Path, count: int = 2000) -> float:
    """Seconds to create ``count`` empty files in a fresh sub-folder of ``folder``: the file system's price."""
    probe = folder / f".probe-{os.getpid()}"
    shutil.rmtree(probe, ignore_errors=True)
    probe.mkdir(parents=True)
    start = time.perf_counter()
    for i in range(count):
        open(probe / str(i), "wb").close()
    seconds = time.perf_counter() - start
    shutil.rmtree(probe, ignore_errors=True)
    return seconds


def print_results(runs: list[Run], n: int, generated: dict, cross_run_mismatches: Optional[int], probe: str) -> None:
    floor_s = _median(r.floor_s for r in runs)
    full = _median(r.full.wall_s for r in runs)
    peak = max(r.full.peak for r in runs)
    tree_rss = max(r.full.tree_rss for r in runs)
    single = max(r.full.maxrss for r in runs)
    processes = max(r.full.processes for r in runs)
    nothing = _median(r.nothing.wall_s for r in runs)
    one = _median(r.one.wall_s for r in runs)
    percent = _median(r.percent.wall_s for r in runs)
    first = runs[0]
    one_changed = len(first.one_changed)
    one_bytes = sum(first.changed_bytes.values())
    percent_changed = len(first.percent_changed)
    mismatches = sum(len(r.identical_mismatches) for r in runs)
    site_files = first.site_files
    files, size = first.files, first.bytes
    edited = len(range((n // 2) % 100, n, 100))

    print()
    print(f"## Build benchmark: {n:,} formations ({generated.get('actions', '?'):,} actions, "
          f"{generated.get('sessions', '?'):,} sessions), {len(runs)} run(s), today {TODAY}")
    print()
    print("| figure | target | measured | ratio to floor | met? |")
    print("|---|---|---|---|---|")
    cpu = _median(r.full.cpu_s for r in runs)
    print(f"| full build: parse, validate, Whoosh index, static search index, every page | ≤ 120 s | "
          f"{full:.1f} s (CPU {cpu:.1f} s) | {full / floor_s:.1f} | {_yes(full <= TARGETS['full'])} |")
    print(f"| peak memory of the build (process tree, sum of PSS) | ≤ 2 GB, flat as the input grows | "
          f"{peak / GB:.2f} GB (largest process {single / GB:.2f} GB; sum of RSS {tree_rss / GB:.2f} GB; "
          f"{processes} processes; each at its largest: "
          f"{' + '.join(f'{v / GB:.2f}' for v in max((r.full for r in runs), key=lambda b: b.peak).process_peaks)} GB) "
          f"| — | {_yes(peak <= TARGETS['memory'])} (flat: see RSS by tenth) |")
    def kind(build: Build) -> str:
        if build.report.get("unchanged"):
            return "incremental: nothing to write, no new build"
        return "incremental" if build.report.get("incremental") else "**full build**"

    w = first.written
    print(f"| rebuild with nothing changed | ≤ 10 s | {nothing:.1f} s ({kind(first.nothing)}); "
          f"wrote {w['nothing']:,} site files | {nothing / floor_s:.1f} | {_yes(nothing <= TARGETS['nothing'])} |")
    print(f"| rebuild after one formation changed | ≤ 5 s, writing only the pages that depend on it | "
          f"{one:.1f} s ({kind(first.one)}); wrote {w['one']:,} of {site_files:,} site files, {one_changed:,} differ "
          f"({one_bytes / MB:,.1f} MB) | {one / floor_s:.1f} | {_yes(one <= TARGETS['one'])} |")
    print(f"| rebuild after 1 % of formations changed ({edited:,}) | ≤ 15 s | {percent:.1f} s "
          f"({kind(first.percent)}); wrote {w['percent']:,} site files, {percent_changed:,} differ "
          f"| {percent / floor_s:.1f} | {_yes(percent <= TARGETS['percent'])} |")
    identical = f"{mismatches} of {site_files:,} site files differ between the 1 % rebuild and a full build of its input"
    if cross_run_mismatches is not None:
        identical += f" (first builds of different runs: {cross_run_mismatches} differ)"
    ok = mismatches == 0 and not cross_run_mismatches
    print(f"| output byte-identical to a full build of the same input | identical | {identical} | — | {_yes(ok)} |")
    spread = f" (runs: {min(r.floor_s for r in runs):.1f} to {max(r.floor_s for r in runs):.1f} s)" if len(runs) > 1 else ""
    print(f"| floor: plain Python writing the same {files:,} files, {size / MB:,.0f} MB | — | {floor_s:.1f} s{spread} "
          f"| 1.0 | — |")
    print()
    print(f"times: median of {len(runs)} run(s); memory: largest of the runs. Build wall time includes "
          "the interpreter's start and imports.")

    print()
    print("### Phases (s, median of the runs)")
    print()
    kinds = [("full", "full"), ("nothing", "nothing changed"), ("one", "one changed"), ("percent", "1 % changed")]
    names: list[str] = []
    for r in runs:
        for name in r.full.report["timings"]:
            if name not in names:
                names.append(name)
    print("| phase | " + " | ".join(label for _, label in kinds) + " |")
    print("|---|" + "---|" * len(kinds))
    for name in names:
        cells = [_median(getattr(r, kind).report["timings"].get(name, 0.0) for r in runs) for kind, _ in kinds]
        print(f"| {name} | " + " | ".join(f"{c:.2f}" for c in cells) + " |")
    for label, get in (
        ("sum of phases", lambda b: sum(b.report["timings"].values())),
        ("outside phases (sinks set-up, Catalog.of, prune of old builds)",
         lambda b: b.report["build_s"] - sum(b.report["timings"].values())),
        ("start-up and imports", lambda b: b.wall_s - b.report["build_s"]),
        ("wall", lambda b: b.wall_s),
        ("CPU, user + system, whole tree", lambda b: b.cpu_s),
    ):
        cells = [_median(get(getattr(r, kind)) for r in runs) for kind, _ in kinds]
        print(f"| {label} | " + " | ".join(f"{c:.2f}" for c in cells) + " |")

    report = first.full.report
    print()
    print(f"read {report['read']:,}, published {report['published']:,} (archived {report['archived']:,}), "
          f"errors {report['errors']}, warnings {report['warnings']}")
    steps = report["rss_by_tenth"]
    if steps:
        print("RSS of the build process after each tenth of the formations (MB): "
              + ", ".join(f"{count // 1000 if count >= 1000 else count}{'k' if count >= 1000 else ''} {rss / MB:,.0f}"
                          for count, rss in steps))
        if len(steps) >= 2:
            (c0, r0), (c1, r1) = steps[0], steps[-1]
            print(f"  growth from the first to the last tenth: {(r1 - r0) / MB:,.0f} MB, "
                  f"{(r1 - r0) / max(1, c1 - c0) / 1e3:,.2f} KB per formation")
    print(f"output: {files:,} files, {size / MB:,.0f} MB (site/ {site_files:,} files, {first.site_bytes / MB:,.0f} MB)")
    print(f"site files that differ after one formation changed: {_by_folder(first.one_changed)}")
    big = sorted(first.changed_bytes.items(), key=lambda kv: -kv[1])[:5]
    print("  largest of them: " + ", ".join(f"{path} {size / MB:,.1f} MB" for path, size in big))
    print(f"site files that differ after 1 % changed (vs. one changed): {_by_folder(first.percent_changed)}")
    loads = [b.load for r in runs for b in (r.full, r.nothing, r.one, r.percent)]
    print(f"full build of the 1 % input, for the comparison: {_median(r.reference.wall_s for r in runs):.1f} s")
    print(f"load average (1 min) at the end of each build: {min(loads):.2f} to {max(loads):.2f} "
          f"on {os.cpu_count()} CPU(s)")
    print(probe)


# --------------------------------------------------------------------------


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--formations", type=int, default=100_000)
    parser.add_argument("--runs", type=int, help="default: 3 up to 10,000 formations, else 1")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--work", type=Path, default=ROOT / "bench" / "out", help="the catalogue and the logs")
    parser.add_argument("--build-root", type=Path, help="where builds and the floor go (default: --work)")
    parser.add_argument("--reuse", action="store_true", help="reuse WORK/catalogue-N.xml if it exists")
    parser.add_argument("--keep", action="store_true", help="keep the build folders")
    parser.add_argument("--settle", type=float, default=SETTLE_S,
                        help="seconds a full build waits after the last mass deletion (see SETTLE_S; 0: none)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--content", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--build-dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--code", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--full", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        child(args.content, args.build_dir, args.formations, args.code, args.full)
        return

    n = args.formations
    runs = args.runs or (3 if n <= 10_000 else 1)
    args.work = args.work.resolve()
    args.build_root = (args.build_root or args.work).resolve()
    args.work.mkdir(parents=True, exist_ok=True)
    args.build_root.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(args.build_root).free
    needed = n * DISK_PER_FORMATION
    print(f"# build benchmark: {n:,} formations, {runs} run(s); builds in {args.build_root} "
          f"({free / GB:,.0f} GB free, about {needed / GB:,.1f} GB needed); "
          f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} CPU(s)", flush=True)
    if free < needed:
        sys.exit(f"not enough disk in {args.build_root}: {free / GB:.1f} GB free, about {needed / GB:.1f} GB needed")

    catalogue = args.work / f"catalogue-{n}.xml"
    stats_file = catalogue.with_suffix(".json")
    generated = json.loads(stats_file.read_text()) if stats_file.exists() else {}
    if args.reuse and catalogue.exists() and generated.get("seed", SEED) == args.seed:
        print(f"reusing {catalogue} ({catalogue.stat().st_size / MB:,.0f} MB)", flush=True)
    else:
        from catalogue.generate import generate

        start = time.perf_counter()
        stats = generate(catalogue, n, seed=args.seed)
        generated = {**vars(stats), "seed": args.seed}
        stats_file.write_text(json.dumps(generated))
        print(f"generated {catalogue} in {time.perf_counter() - start:.1f} s ({stats.bytes / MB:,.0f} MB, "
              f"{stats.actions:,} actions, {stats.sessions:,} sessions)", flush=True)

    probes = [("builds' file system", args.build_root)]
    if Path("/dev/shm").is_dir() and os.access("/dev/shm", os.W_OK):
        probes.append(("tmpfs /dev/shm", Path("/dev/shm")))
    probe = "creating 2,000 empty files: " + "; ".join(
        f"{name} {creation_cost(folder) * 1000:,.0f} ms" for name, folder in probes)
    print(probe, flush=True)

    args.code = args.build_root / f"code-{os.getpid()}"
    code_note = f"code: {snapshot_code(args.code)}"
    print(code_note, flush=True)
    probe += "\n" + code_note
    try:
        results = [one_run(number, args, catalogue, n) for number in range(1, runs + 1)]
    finally:
        shutil.rmtree(args.code, ignore_errors=True)
    cross = None
    if len(results) > 1:
        cross = sum(len(differences(results[0].full.hashes, r.full.hashes)) for r in results[1:])
    print_results(results, n, generated, cross, probe)


if __name__ == "__main__":
    main()
