"""Benchmark of the static search: shard build time and memory, then bytes per query.

    .venv/bin/python bench/search_static.py [--formations 100000] [--work bench/out]
                                            [--top-k 1000] [--agreement]

1. ``catalogue.generate.generate_formations`` (the formations ``catalogue generate``
   writes, seed 0) is fed straight to the ``static-search`` sink (no LHEO written
   or parsed: the sink alone), in a child process; the same run without the sink
   gives the baseline. Printed: the sink's time (add, finish) and its peak memory
   (peak RSS of the run minus the baseline's).
2. The shards are read as the page reads them (:class:`ShardReader`): for a fixed
   set of queries (a Ref, its short form, an action numero, a SIRET, two-word,
   one-word common and rare...), the requests and bytes each needs, and "in all"
   for a first query: + the page, recherche.js and the manifest. Budgets: a Ref in
   at most 2 requests and 10 KB; a two-word query in 150 KB in all.
3. ``--agreement`` also builds the Whoosh index and prints, per query, whether
   the top 5 Refs of the static shards equal those of ``catalogue.search.query``.
4. ``--runs N`` (N ≥ 1) instead measures the sink's cost N times, alternating a full
   build in its worker process (the default) and in the build's own process
   (``worker=False``), each followed by a rebuild where 1 % of the formations
   changed (every hundredth's ``intitule`` edited): medians of the build process's
   CPU in ``add()`` (what the reading waits for), of the wall time of ``finish()``,
   of the worker's CPU, and their ratios; the two ways' files are compared byte for byte.

5. ``--rebuilds CONTENT --code NAME=CODE_DIR:BUILD_DIR ... [--every 100] [--rebuild-runs 6]`` compares
   the rebuild costs of code trees (e.g. ``git archive`` snapshots) on one content folder (holding
   ``catalogue.xml``): each run edits it (`` (modifiee)`` appended to the intitulé of one more
   formation, or with ``--every E`` of one more in E), then builds every tree into its own build
   folder, in alternating order, each in a fresh process (a tree's first build may be a full one:
   the build key holds the code). Printed: each run's ``finish:static-search`` wall time and the
   sink's CPU in ``finish()``, then their medians over the runs from the third (steady state: the
   build before the published one is an incremental one too) and the ratios to the first tree.

Bytes are raw (no compression assumed).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TODAY = dt.date(2026, 9, 1)
REF_BUDGET = (2, 10_000)
TWO_WORD_BUDGET = 150_000
FIXED_QUERIES = [
    ("deux mots", "agent sécurité"),
    ("deux mots", "assistant comptable"),
    ("deux mots", "titre professionnel"),
    ("un mot fréquent", "formation"),
    ("un mot fréquent", "professionnel"),
    ("ville", "Toulouse"),
]


def static_defaults():
    from catalogue.search.static import ShardOptions

    return ShardOptions()


def child_costs(build_dir: Path, count: int, worker: bool) -> dict:
    """A full build of the sink alone (in its worker or not), then a 1 % rebuild; their costs."""
    import resource

    from catalogue import build as build_module
    from catalogue.build import PreviousBuild, SinkContext
    from catalogue.catalog import Catalog, summarize
    from catalogue.generate import generate_formations
    from catalogue.model import Statut
    from catalogue.problems import Origin
    from catalogue.regions import geo
    from catalogue.search import static
    from catalogue.settings import Settings

    settings, places = Settings(), geo()
    formations = list(generate_formations(count, seed=0, reference=TODAY))

    def entry_of(i, formation):
        return summarize(formation, origin=Origin("generate", i + 1), statut=Statut.VALIDEE, today=TODAY,
                         settings=settings, geo=places)

    entries = [entry_of(i, f) for i, f in enumerate(formations)]
    if build_dir.exists():
        shutil.rmtree(build_dir)
    build_dir.mkdir(parents=True)
    result = {}

    def run(name, previous, changed):
        staging = build_module._new_staging(build_dir)
        context = SinkContext(staging, settings, TODAY, places, previous)
        sink = static.StaticSearchSink(context, worker=worker if previous is None else False)
        cpu, start = time.process_time(), time.perf_counter()
        for i, formation in enumerate(formations):
            if changed is None or i in changed:
                sink.add(formation, entries[i])
            else:
                sink.keep(entries[i])
        result[f"{name}_add_cpu"] = time.process_time() - cpu
        result[f"{name}_add_s"] = time.perf_counter() - start
        start = time.perf_counter()
        sink.finish(Catalog.of(entries, TODAY))
        sink.wait()
        result[f"{name}_finish_s"] = time.perf_counter() - start
        build_module._publish(build_dir, staging)
        return staging

    first = run("full", None, None)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    result["worker_cpu"] = children.ru_utime + children.ru_stime
    changed = set(range(0, count, 100))
    for i in changed:
        formations[i] = formations[i].model_copy(update={"intitule_formation": formations[i].intitule_formation + " (modifiee)"})
        entries[i] = entry_of(i, formations[i])
    run("percent", PreviousBuild(first, frozenset(e.ref for e in entries)), changed)
    return result


def compare_runs(args) -> None:
    """``--runs``: the sink in its worker and in the build's process, alternating; medians."""
    import statistics

    n = args.formations
    print(f"# static search sink, {n:,} formations: worker process vs the build's own process, {args.runs} runs each, alternating")
    runs: dict[bool, list[dict]] = {True: [], False: []}
    for number in range(args.runs):
        for worker in (True, False):
            out = subprocess.run([sys.executable, __file__, "--costs", str(args.work / f"costs-{int(worker)}"),
                                  "--formations", str(n)] + ([] if worker else ["--inprocess"]),
                                 check=True, capture_output=True, text=True, cwd=ROOT)
            runs[worker].append(json.loads(out.stdout.strip().splitlines()[-1]))
        same = tree_digests(args.work / "costs-1" / "site") == tree_digests(args.work / "costs-0" / "site")
        print(f"run {number + 1}: worker {runs[True][-1]}\n       in process {runs[False][-1]}\n"
              f"       files after the 1 % rebuild: {'identical' if same else 'DIFFERENT'}")
    print(f"{'figure (medians)':<44} {'worker':>9} {'in process':>11} {'ratio':>7}")
    for key, label in [("full_add_cpu", "full build: build process CPU in add() (s)"),
                       ("full_add_s", "full build: add() wall (s)"),
                       ("full_finish_s", "full build: finish() wall (s)"),
                       ("worker_cpu", "full build: worker CPU (s)"),
                       ("percent_finish_s", "1 % rebuild: finish() wall (s)")]:
        a = statistics.median(r[key] for r in runs[True])
        b = statistics.median(r[key] for r in runs[False])
        print(f"{label:<44} {a:>9.2f} {b:>11.2f} {a / b if b else float('nan'):>7.2f}")


def tree_digests(root: Path) -> dict[str, str]:
    import hashlib

    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in root.rglob("*") if p.is_file()}


def child_build(build_dir: Path, count: int, sinks: list[str], top_k: int, digits: int, shard_bytes: int) -> dict:
    """Feed generated formations to ``sinks`` and publish; what it cost (run in a child process)."""
    from catalogue import build as build_module
    from catalogue.build import SinkContext
    from catalogue.catalog import Catalog, summarize
    from catalogue.generate import generate_formations
    from catalogue.model import Statut
    from catalogue.problems import Origin
    from catalogue.regions import geo
    from catalogue.search import static
    from catalogue.settings import Settings

    if "index" in sinks:
        import catalogue.search.index  # noqa: F401
    if build_dir.exists():
        shutil.rmtree(build_dir)
    build_dir.mkdir(parents=True)
    staging = build_module._new_staging(build_dir)
    context = SinkContext(staging, Settings(), TODAY, geo())
    active = {}
    for name in sinks:
        if name == "static-search":
            active[name] = static.StaticSearchSink(context, static.ShardOptions(top_k=top_k, score_digits=digits, term_shard_bytes=shard_bytes))
        else:
            active[name] = build_module.SINKS[name](context)
    seconds = {name: 0.0 for name in sinks}
    entries = []
    start = time.perf_counter()
    for i, formation in enumerate(generate_formations(count, seed=0, reference=TODAY)):
        entry = summarize(
            formation, origin=Origin("generate", i + 1), statut=Statut.VALIDEE,
            today=TODAY, settings=context.settings, geo=context.geo,
        )
        entries.append(entry)
        for name, sink in active.items():
            t = time.perf_counter()
            sink.add(formation, entry)
            seconds[name] += time.perf_counter() - t
    feed = time.perf_counter() - start
    catalog = Catalog.of(entries, TODAY)
    finish = {}
    for name, sink in active.items():
        t = time.perf_counter()
        sink.finish(catalog)
        wait = getattr(sink, "wait", None)
        if wait is not None:
            wait()
        finish[name] = time.perf_counter() - t
    build_module._publish(build_dir, staging)
    return {
        "feed_s": feed,
        "add_s": seconds,
        "finish_s": finish,
        "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        # The sink's worker process (forked when the sink opens; its RSS counts the pages it shares).
        "worker_maxrss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
        "archived": sum(e.archived for e in entries),
    }


def run_child(build_dir: Path, count: int, sinks: list[str], top_k: int, digits: int, shard_bytes: int) -> dict:
    args = [sys.executable, __file__, "--child", str(build_dir), "--formations", str(count),
            "--sinks", ",".join(sinks), "--top-k", str(top_k), "--digits", str(digits),
            "--term-shard-bytes", str(shard_bytes)]
    out = subprocess.run(args, check=True, capture_output=True, text=True, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------
# Queries
# --------------------------------------------------------------------------


def tree_size(root: Path) -> tuple[int, int]:
    files = [p for p in root.rglob("*") if p.is_file()]
    return len(files), sum(p.stat().st_size for p in files)


def derived_queries(site: Path) -> list[tuple[str, str]]:
    """Numbers and a rare word taken from the built shards (the same for the same N)."""
    from catalogue.search.static import SITE_DIR

    root = site / SITE_DIR
    manifest = json.loads((root / "manifest.json").read_text())
    n = manifest["n"]
    docs = manifest["docs"]
    middle = n // 2
    row = json.loads((root / "d" / f"{middle // docs}.json").read_text())[middle % docs]
    ref = row[0]
    queries = [("Ref", ref)]
    short = ref.split("_", 1)[1] if "_" in ref else None
    numbers: dict[str, str] = {}
    for path in sorted((root / "n").glob("*.json"))[:64]:
        shard = json.loads(path.read_text())
        for key, codes in shard.get("k", {}).items():
            if key.isdigit() and len(key) == 14:
                numbers.setdefault("SIRET", key)
            elif "|" in key and key.count("|") == 1:
                numbers.setdefault("action (composite ref|action)", key)
    if short:
        queries.append(("Ref sans préfixe", short))
    if "action (composite ref|action)" in numbers:
        composite = numbers["action (composite ref|action)"]
        queries.append(("numéro d'action", composite.split("|")[1]))
        queries.append(("composite ref|action", composite))
    if "SIRET" in numbers:
        siret = numbers["SIRET"]
        queries.append(("SIRET (espaces)", f"{siret[:3]} {siret[3:6]} {siret[6:9]} {siret[9:]}"))
    rare = None
    for path in sorted((root / "t").glob("*.json")):
        for term, groups in sorted(json.loads(path.read_text()).items()):
            if term.isalpha() and len(term) >= 7 and len(groups) == 1 and len(groups[0]) == 2:
                rare = term
                break
        if rare:
            break
    if rare:
        queries.append(("un mot rare", rare))
    return queries + FIXED_QUERIES


def measure(site: Path, queries: list[tuple[str, str]]) -> list[dict]:
    from catalogue.search.static import SITE_DIR, ShardReader

    root = site / SITE_DIR
    page = (root / "index.html").stat().st_size
    script = (root / "recherche.js").stat().st_size
    manifest = (root / "manifest.json").stat().st_size
    rows = []
    for kind, query in queries:
        reader = ShardReader(site)
        t = time.perf_counter()
        results = reader.search(query)
        elapsed = time.perf_counter() - t
        shard_files = list(reader.fetched)
        shard_bytes = reader.bytes_fetched()
        no_manifest = [f for f in shard_files if f != "manifest.json"]
        in_all = page + script + shard_bytes
        rows.append({
            "kind": kind, "query": query, "requests": len(shard_files), "bytes": shard_bytes,
            "requests_without_manifest": len(no_manifest), "in_all": in_all,
            "page": page, "script": script, "manifest": manifest,
            "hits": len(results), "top": [r.ref for r in results[:5]], "python_ms": elapsed * 1000,
        })
    return rows


def sampled_queries(site: Path, count: int = 150) -> list[tuple[str, str]]:
    """One- and two-word queries drawn from titles (deterministic): a wider agreement check."""
    import random

    from catalogue.search.analysis import fold_terms

    root = site / "recherche"
    manifest = json.loads((root / "manifest.json").read_text())
    rng = random.Random(0)
    queries = []
    for _ in range(count):
        docnum = rng.randrange(manifest["n"])
        row = json.loads((root / "d" / f"{docnum // manifest['docs']}.json").read_text())[docnum % manifest["docs"]]
        words = [w for w in dict.fromkeys(fold_terms(row[1])) if w.isalpha() and len(w) > 2]
        if words:
            k = 1 if len(words) == 1 or rng.random() < 0.3 else 2
            queries.append(("tiré des intitulés", " ".join(rng.sample(words, k))))
    return queries


def agreement(build_dir: Path, queries: list[tuple[str, str]]) -> list[tuple[str, bool, list[str], list[str]]]:
    from catalogue.search.query import SearchParams, search
    from catalogue.search.static import ShardReader

    out = []
    for kind, query in queries:
        whoosh = [r.ref for r in search(build_dir, SearchParams(q=query, limit=5)).results]
        static = [r.ref for r in ShardReader(build_dir / "site").search(query, limit=5)]
        out.append((query, whoosh == static, whoosh, static))
    return out


def rebuild_child(code: Path, content: Path, build_dir: Path) -> dict:
    """One build of ``content`` with the code of ``code``: its phases, and the static sink's CPU in finish()."""
    sys.path.insert(0, str(code))
    from catalogue.build import BuildOptions, _load_sinks, build
    from catalogue.settings import load_settings

    _load_sinks()  # the sinks in their usual order (the build key holds it), before wrapping one
    from catalogue.search import static

    cpu = [0.0]
    finish = static.StaticSearchSink.finish

    def timed(self, catalog):
        start = time.process_time()
        try:
            return finish(self, catalog)
        finally:
            cpu[0] += time.process_time() - start

    static.StaticSearchSink.finish = timed
    start = time.perf_counter()
    report = build(BuildOptions(content=(content,), build_dir=build_dir, today=dt.date(2026, 11, 29)), load_settings(None))
    return {"wall": time.perf_counter() - start, "incremental": report.incremental, "finish_cpu": cpu[0],
            "finish_wall": report.timings.get("finish:static-search", 0.0), "emit": report.timings.get("emit:static", 0.0)}


def edit(xml: Path, index: int, every: int) -> None:
    """`` (modifiee)`` appended to the intitulé of formation ``index`` (or of each ``i % every == index % every``)."""
    end = b"</intitule-formation>"
    lines, i = [], 0
    with open(xml, "rb") as source:
        for line in source:
            if end in line:
                if i == index or (every and i % every == index % every):
                    line = line.replace(end, b" (modifiee)" + end, 1)
                i += 1
            lines.append(line)
    xml.with_suffix(".tmp").write_bytes(b"".join(lines))
    xml.with_suffix(".tmp").replace(xml)


def compare_rebuilds(args) -> None:
    import statistics

    trees = []
    for spec in args.code:
        name, _, dirs = spec.partition("=")
        code, _, build_dir = dirs.partition(":")
        trees.append((name, Path(code), Path(build_dir)))
    results: dict[str, list[dict]] = {name: [] for name, _, _ in trees}
    for run in range(args.rebuild_runs):
        edit(args.rebuilds / "catalogue.xml", 1000 + run, args.every)
        for name, code, build_dir in trees if run % 2 == 0 else trees[::-1]:
            out = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--rebuild-child", str(code), str(args.rebuilds),
                                  str(build_dir)],
                                 capture_output=True, text=True, check=True)
            row = json.loads(out.stdout.strip().splitlines()[-1])
            results[name].append(row)
            print(f"run {run} {name}: finish:static-search {row['finish_wall']:.2f} s wall, {row['finish_cpu']:.3f} s CPU, "
                  f"emit:static {row['emit']:.2f} s, build {row['wall']:.1f} s{'' if row['incremental'] else ' (full)'}", flush=True)
    first = None
    for name, rows in results.items():
        steady = rows[2:] or rows
        wall = statistics.median(r["finish_wall"] for r in steady)
        cpu = statistics.median(r["finish_cpu"] for r in steady)
        first = first or (wall, cpu)
        print(f"{name}: medians of {len(steady)}: finish:static-search {wall:.3f} s wall ({wall / first[0]:.2f}x), "
              f"{cpu:.3f} s CPU ({cpu / first[1]:.2f}x)")


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--rebuild-child"]:  # before anything imports the catalogue of this tree
        print(json.dumps(rebuild_child(*map(Path, argv[1:4]))))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--formations", type=int, default=100_000)
    parser.add_argument("--work", type=Path, default=ROOT / "bench" / "out")
    parser.add_argument("--top-k", type=int, default=1000)
    parser.add_argument("--digits", type=int, default=6, help="significant digits of the stored term scores")
    parser.add_argument("--term-shard-bytes", type=int, default=static_defaults().term_shard_bytes)
    parser.add_argument("--agreement", action="store_true", help="also build the Whoosh index and compare top 5")
    parser.add_argument("--sinks", default="static-search")
    parser.add_argument("--runs", type=int, default=0, help="compare the worker process and the build's process, N runs each")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--costs", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--inprocess", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--rebuilds", type=Path, help="compare rebuilds of this content folder (holding catalogue.xml)")
    parser.add_argument("--code", action="append", default=[], help="NAME=CODE_DIR:BUILD_DIR, with --rebuilds (repeat)")
    parser.add_argument("--every", type=int, default=0, help="with --rebuilds: edit one formation in EVERY (0: one)")
    parser.add_argument("--rebuild-runs", type=int, default=6)
    args = parser.parse_args(argv)

    if args.rebuilds:
        compare_rebuilds(args)
        return
    if args.costs:
        print(json.dumps(child_costs(args.costs, args.formations, not args.inprocess)))
        return
    if args.runs:
        compare_runs(args)
        return

    if args.child:
        sinks = [s for s in args.sinks.split(",") if s]
        print(json.dumps(child_build(args.child, args.formations, sinks, args.top_k, args.digits, args.term_shard_bytes)))
        return

    n = args.formations
    build_dir = args.work / f"static-{n}"
    sinks = ["static-search"] + (["index"] if args.agreement else [])
    print(f"# static search, {n:,} formations (generate seed 0, today {TODAY}), top_k {args.top_k}, score digits {args.digits}, "
          f"term shards ≤ {args.term_shard_bytes:,} B")
    base = run_child(args.work / f"baseline-{n}", n, [], args.top_k, args.digits, args.term_shard_bytes)
    shutil.rmtree(args.work / f"baseline-{n}", ignore_errors=True)
    run = run_child(build_dir, n, sinks, args.top_k, args.digits, args.term_shard_bytes)
    add = run["add_s"]["static-search"]
    finish = run["finish_s"]["static-search"]
    print(f"archived: {run['archived']:,}")
    print(f"sink time: {add + finish:.1f} s (add {add:.1f} s, finish {finish:.1f} s; the generation waits for the worker "
          f"when it is quicker than the analysis); "
          f"generation alone {base['feed_s']:.1f} s")
    print(f"peak RSS: {run['maxrss_mb']:.0f} MB with the sink{' and the Whoosh index' if args.agreement else ''} "
          f"+ {run['worker_maxrss_mb']:.0f} MB in the sink's worker process, "
          f"{base['maxrss_mb']:.0f} MB without: sink ≈ {run['maxrss_mb'] + run['worker_maxrss_mb'] - base['maxrss_mb']:.0f} MB "
          f"(the worker's shared pages counted twice)")

    site = build_dir / "site"
    root = site / "recherche"
    for sub in ("n", "t", "d"):
        count, size = tree_size(root / sub)
        print(f"shards {sub}/: {count:,} files, {size / 1e6:.1f} MB (mean {size / max(count, 1) / 1e3:.1f} KB, "
              f"max {max((p.stat().st_size for p in (root / sub).glob('*.json')), default=0) / 1e3:.1f} KB)")
    count, size = tree_size(root)
    print(f"total: {count:,} files, {size / 1e6:.1f} MB; manifest {(root / 'manifest.json').stat().st_size / 1e3:.1f} KB, "
          f"page {(root / 'index.html').stat().st_size / 1e3:.1f} KB, "
          f"recherche.js {(root / 'recherche.js').stat().st_size / 1e3:.1f} KB (served without comments)")

    queries = derived_queries(site)
    print()
    print(f"{'kind':<30} {'query':<34} {'req':>4} {'bytes':>9} {'in all':>9} {'hits':>5}  budget")
    for row in measure(site, queries):
        budget = ""
        if row["kind"] == "Ref":
            ok = row["requests"] <= REF_BUDGET[0] and row["bytes"] <= REF_BUDGET[1]
            budget = f"{'OK' if ok else 'OVER'} (≤ {REF_BUDGET[0]} req, ≤ {REF_BUDGET[1] // 1000} KB)"
        elif row["kind"] == "deux mots":
            ok = row["in_all"] <= TWO_WORD_BUDGET
            budget = f"{'OK' if ok else 'OVER'} (≤ {TWO_WORD_BUDGET // 1000} KB in all)"
        print(f"{row['kind']:<30} {row['query'][:34]:<34} {row['requests']:>4} {row['bytes']:>9,} "
              f"{row['in_all']:>9,} {row['hits']:>5}  {budget}")
    print("(bytes: shards and manifest the query reads; in all: + the page and recherche.js)")
    sample = measure(site, sampled_queries(site))
    totals = sorted(row["in_all"] for row in sample)
    requests = sorted(row["requests"] for row in sample)
    over = sum(t > TWO_WORD_BUDGET for t in totals)
    print(f"{len(sample)} one- and two-word queries drawn from titles, in all: median {totals[len(totals) // 2]:,} B, "
          f"p90 {totals[int(len(totals) * 0.9)]:,} B, max {totals[-1]:,} B ({over} over {TWO_WORD_BUDGET // 1000} KB); "
          f"requests median {requests[len(requests) // 2]}, max {requests[-1]}")

    if args.agreement:
        print()
        rows = agreement(build_dir, queries)
        same = sum(ok for _, ok, _, _ in rows)
        print(f"agreement of the top 5 with the Whoosh search: {same}/{len(rows)} fixed queries")
        for query, ok, whoosh, static in rows:
            if not ok:
                print(f"  differs for {query!r}:\n    whoosh {whoosh}\n    static {static}")
        sample = agreement(build_dir, sampled_queries(site))
        same = sum(ok for _, ok, _, _ in sample)
        first = sum(w[:1] == s[:1] for _, _, w, s in sample)
        overlap = sum(len(set(w) & set(s)) for _, _, w, s in sample) / max(1, sum(len(w) for _, _, w, _ in sample))
        print(f"sampled title queries: same top 5 {same}/{len(sample)}, same first {first}/{len(sample)}, "
              f"top-5 overlap {overlap:.1%}")
        for query, ok, whoosh, static in sample:
            if not ok:
                print(f"  differs for {query!r}:\n    whoosh {whoosh}\n    static {static}")


if __name__ == "__main__":
    main()
