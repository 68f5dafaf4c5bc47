"""Benchmark of the site sink's ``finish`` (listing pages, sitemap, organisme pages) in incremental builds,
old code against new code in the same run.

    .venv/bin/python bench/render.py [--formations 20000] [--runs 3] [--old HEAD] [--work /tmp/render/bench]
                                     [--profile]

1. ``catalogue generate`` writes ``WORK/catalogue-N.xml`` (seed 0) unless it is there, and two edited copies:
   one formation's ``intitule-formation`` edited ("one"), and every hundredth formation's ("percent"), as
   ``bench/build.py`` does; "steady" is a third build: "one", then another formation edited ("one-b"), timed.
2. Two snapshots of the code: "old" is ``git archive OLD catalogue templates``; "new" is the same tree with
   the working copy's ``catalogue/render.py`` and ``templates/`` (only this benchmark's subject differs,
   whatever else the tree holds uncommitted).
3. Each code builds the catalogue once in full, with the site sink alone (``sinks=["site"]``), into
   ``WORK/<code>/base``. Then, for each run, alternating which code goes first, and for each of "one" and
   "percent": the base build folder is copied with hard links (``cp -al``: a build never writes into the
   published folder) and rebuilt incrementally from the edited input, in a child process: "one" and "percent"
   are the first rebuild after a full build, "steady" the second (it takes over the full build's folders,
   as every later one does). The child prints the build's phase timings; the figures are ``finish:site``,
   ``emit:render``, the build's process CPU and the whole build (in-process).
4. Byte-identical: each code's rebuild of "percent" is compared, file by file, with a full build of the
   same input by the old code (``--no-reference``: skipped), and the two codes' rebuilds with each other.

Printed: per scenario and code, the medians of ``finish:site`` and of the build over the runs, and the
ratio old / new of the medians (and the median of the per-run ratios, measured side by side).
``--profile`` has the last run's children profile ``finish`` and print the top functions by cumulative time.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import filecmp
import io
import json
import os
import pstats
import shutil
import statistics
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Optional

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from build import edited_copy  # noqa: E402  (the same edits as bench/build.py)
TODAY = dt.date(2026, 11, 29)
SCENARIOS = ("one", "percent", "steady")


def child(code: Path, content: Path, build_dir: Path, full: bool, profile: Optional[Path]) -> None:
    sys.path.insert(0, str(code))
    from catalogue import build as build_module
    from catalogue.build import BuildOptions, build
    from catalogue.settings import load_settings

    assert Path(build_module.__file__).resolve().is_relative_to(code.resolve()), build_module.__file__
    if profile is not None:
        from catalogue import render

        finish = render.SiteSink.finish
        profiler = cProfile.Profile()

        def profiled(self, catalog):
            profiler.enable()
            try:
                return finish(self, catalog)
            finally:
                profiler.disable()
                profiler.dump_stats(str(profile))

        render.SiteSink.finish = profiled
    start, cpu = time.perf_counter(), time.process_time()
    report = build(BuildOptions(content=(content,), build_dir=build_dir, today=TODAY, full=full),
                   load_settings(None), sinks=["site"])
    children = os.times()
    print(json.dumps({"build_s": time.perf_counter() - start, "timings": report.timings,
                      "cpu_s": time.process_time() - cpu, "children_cpu_s": children[2] + children[3],
                      "incremental": report.incremental, "published": report.published}))


def run_child(code: Path, content: Path, build_dir: Path, full: bool = False,
              profile: Optional[Path] = None) -> dict:
    command = [sys.executable, __file__, "--child", str(code), str(content), str(build_dir)]
    if full:
        command.append("--full")
    if profile is not None:
        command += ["--profile-to", str(profile)]
    os.sync()
    done = subprocess.run(command, capture_output=True, text=True, cwd="/")
    if done.returncode != 0:
        raise SystemExit(f"build failed ({code.name}, {build_dir}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])




def snapshot(dest: Path, old: str, new: bool) -> None:
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    data = subprocess.run(["git", "archive", old, "catalogue", "templates"], cwd=ROOT, capture_output=True,
                          check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        archive.extractall(dest, filter="data")
    if new:
        shutil.copy2(ROOT / "catalogue" / "render.py", dest / "catalogue" / "render.py")
        shutil.rmtree(dest / "templates")
        shutil.copytree(ROOT / "templates", dest / "templates")


def use_input(variant: Path, content: Path) -> None:
    """The input the build reads, always at the same path (``content``), as ``variant``'s bytes."""
    tmp = content.with_suffix(".tmp")
    if tmp.exists():
        tmp.unlink()
    os.link(variant, tmp)
    os.replace(tmp, content)


def published_site(build_dir: Path) -> Path:
    return (build_dir / "current").resolve() / "site"


def compare(a: Path, b: Path) -> int:
    """How many files differ or exist in one tree only."""
    names_a = {p.relative_to(a) for p in a.rglob("*") if p.is_file()}
    names_b = {p.relative_to(b) for p in b.rglob("*") if p.is_file()}
    differ = len(names_a ^ names_b)
    for name in names_a & names_b:
        if not filecmp.cmp(a / name, b / name, shallow=False):
            differ += 1
    return differ


def print_profile(path: Path, top: int = 25) -> None:
    out = io.StringIO()
    pstats.Stats(str(path), stream=out).sort_stats("cumulative").print_stats(top)
    print(out.getvalue())


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--formations", type=int, default=20000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--old", default="HEAD")
    parser.add_argument("--work", type=Path, default=Path("/tmp/render/bench"))
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--reuse-bases", action="store_true",
                        help="keep the full builds of a previous run of the same codes (WORK/<code>/base)")
    parser.add_argument("--no-reference", action="store_true",
                        help="skip the full build of the 1 %% input (at 100,000 formations, minutes)")
    args = parser.parse_args(argv)
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    n = args.formations

    source = work / f"catalogue-{n}.xml"
    if not source.exists():
        subprocess.run([str(ROOT / ".venv/bin/catalogue"), "generate", "--formations", str(n), "--out", str(source)],
                       check=True)
    variants = {"base": source}
    for name, every, index in (("one", None, n // 2), ("percent", 100, n // 2), ("one-b", None, n // 2 + 1)):
        target = work / f"catalogue-{n}-{name}.xml"
        if not target.exists():
            edited_copy(source, target, every, index)
        variants[name] = target

    codes = {"old": work / "code-old", "new": work / "code-new"}
    for label, folder in codes.items():
        snapshot(folder, args.old, new=label == "new")
    full_builds = {}
    for label, folder in codes.items():
        base = work / label / "base"
        if args.reuse_bases and (base / "current").exists():
            print(f"{label}: full build of a previous run reused", flush=True)
            continue
        shutil.rmtree(work / label, ignore_errors=True)
        base.mkdir(parents=True)
        content = work / label / "input.xml"
        use_input(variants["base"], content)
        full_builds[label] = run_child(folder, content, base, full=True)
        print(f"{label}: full build {full_builds[label]['build_s']:.1f} s, "
              f"finish:site {full_builds[label]['timings']['finish:site']:.2f} s, "
              f"CPU {full_builds[label]['cpu_s']:.1f} s + workers {full_builds[label]['children_cpu_s']:.1f} s",
              flush=True)
    if not args.reuse_bases:
        print("full builds' sites, old against new: files differing:",
              compare(published_site(work / "old" / "base"), published_site(work / "new" / "base")), flush=True)

    results: dict[tuple[str, str], list[dict]] = {}
    for number in range(args.runs):
        order = list(codes) if number % 2 == 0 else list(reversed(codes))
        for scenario in SCENARIOS:
            for label in order:
                folder = work / label / f"run-{scenario}"
                shutil.rmtree(folder, ignore_errors=True)
                subprocess.run(["cp", "-al", str(work / label / "base"), str(folder)], check=True)
                content = work / label / "input.xml"
                if scenario == "steady":  # the first rebuild, untimed
                    use_input(variants["one"], content)
                    run_child(codes[label], content, folder)
                use_input(variants["one-b" if scenario == "steady" else scenario], content)
                profile = work / f"{label}-{scenario}.prof" if args.profile and number == args.runs - 1 else None
                result = run_child(codes[label], content, folder, profile=profile)
                assert result["incremental"], result
                results.setdefault((scenario, label), []).append(result)
                print(f"run {number + 1} {scenario:8} {label}: finish:site {result['timings']['finish:site']:.3f} s, "
                      f"emit:render {result['timings'].get('emit:render', 0):.3f} s, CPU {result['cpu_s']:.2f} s, "
                      f"build {result['build_s']:.2f} s", flush=True)

    for scenario in SCENARIOS:
        differ = compare(published_site(work / "old" / f"run-{scenario}"), published_site(work / "new" / f"run-{scenario}"))
        print(f"{scenario} rebuilds, old code against new: {differ} files differ")
    if not args.no_reference:
        reference = work / "reference"
        shutil.rmtree(reference, ignore_errors=True)
        reference.mkdir()
        content = work / "old" / "input.xml"
        use_input(variants["percent"], content)
        run_child(codes["old"], content, reference, full=True)
        for label in codes:
            differ = compare(published_site(work / label / "run-percent"), published_site(reference))
            print(f"{label}: 1 % rebuild against a full build of the same input: {differ} files differ")

    print(f"\n{n} formations, {args.runs} runs, medians (s)")
    print("| scenario | figure | old | new | old / new | median of per-run ratios |")
    print("|---|---|---|---|---|---|")
    for scenario in SCENARIOS:
        for figure, get in (("finish:site", lambda r: r["timings"]["finish:site"]),
                            ("emit:render", lambda r: r["timings"].get("emit:render", 0.0)),
                            ("build CPU", lambda r: r["cpu_s"]), ("build", lambda r: r["build_s"])):
            old = [get(r) for r in results[(scenario, "old")]]
            new = [get(r) for r in results[(scenario, "new")]]
            ratios = [o / w for o, w in zip(old, new)]
            print(f"| {scenario} | {figure} | {statistics.median(old):.3f} | {statistics.median(new):.3f} | "
                  f"{statistics.median(old) / statistics.median(new):.2f} | {statistics.median(ratios):.2f} |")
    if args.profile:
        for scenario in SCENARIOS:
            for label in codes:
                print(f"\n== profile of finish, {scenario}, {label}")
                print_profile(work / f"{label}-{scenario}.prof")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        words = sys.argv[2:]
        profile_to = None
        if "--profile-to" in words:
            at = words.index("--profile-to")
            profile_to = Path(words[at + 1])
            del words[at : at + 2]
        full = "--full" in words
        words = [w for w in words if w != "--full"]
        child(Path(words[0]), Path(words[1]), Path(words[2]), full, profile_to)
    else:
        main()
