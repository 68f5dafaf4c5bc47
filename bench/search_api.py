"""Benchmark of the search API: index build time and size, then query latency over HTTP.

    .venv/bin/python bench/search_api.py [--formations 100000] [--work bench/out] [--rounds 5]
                                         [--sinks index] [--procs N] [--reuse] [--reuse-build] [--direct]

1. A catalogue of N formations is generated with ``catalogue.generate.generate``
   (WORK/content-N/catalogue.xml, reused with ``--reuse``) and built with the
   given sinks into WORK/build-N/. ``--direct`` feeds ``generate_formations``
   straight to the sinks instead (no LHEO written or parsed): the index alone.
2. uvicorn serves the build on 127.0.0.1 (a free port, loopback only); a fixed
   set of 20 queries (titles, towns, organismes, Refs, SIRETs, typos, filters) is
   sent ``--rounds`` times; p50/p95 per kind and overall are printed (median over
   rounds), with the build time and the index size.

Old code against new, the index sink alone (``--compare REV``)::

    .venv/bin/python bench/search_api.py --compare HEAD~1 --formations 20000 --runs 3 \\
        [--only catalogue/search/index.py]

``catalogue/`` and ``templates/`` at git revision REV ("avant") and as they are
in the working tree ("après"; or REV's with only the files of ``--only`` from
the working tree) are copied under WORK/compare/. A catalogue of N
formations is generated (reused with ``--reuse``), and a copy with every
hundredth ``intitule-formation`` edited (1 %). Each run, alternating the two
codes, builds in a child process the index sink alone: a full build, then the
1 % rebuild into the same folder (incremental). Printed per phase: the median
of the runs of wall time and of the main thread's CPU time (the build's
bottleneck: the machine is shared, wall times are noisy), and the ratio
après / avant; the CPU of the writer and store processes; then whether the
two codes' rebuilds answer the queries of this benchmark alike (opened by the
working tree's code).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Optional

ROOT = Path(__file__).resolve().parent.parent
if __name__ == "__main__" and sys.argv[1:2] == ["--child"]:
    sys.path.insert(0, sys.argv[2])  # the code under test (a snapshot), before the editable install
else:
    sys.path.insert(0, str(ROOT))

from catalogue.build import BuildOptions, SinkContext, build  # noqa: E402
from catalogue.settings import Settings  # noqa: E402

#: The generator's reference day: about a third of its formations are archived on it.
TODAY = dt.date(2026, 9, 1)


# --------------------------------------------------------------------------
# Building
# --------------------------------------------------------------------------


def _load_sinks(sinks: list[str]) -> None:
    """Register the sinks asked for (``index`` alone needs neither Jinja2 nor the static shards)."""
    from catalogue import build as build_module

    if sinks == ["index"]:
        import catalogue.search.index  # noqa: F401
    elif not build_module.SINKS:
        build_module._load_sinks()


def build_direct(build_dir: Path, count: int, sinks: list[str]) -> float:
    """Feed ``generate_formations`` straight to the sinks (no LHEO written or read), then publish."""
    from catalogue import build as build_module
    from catalogue.catalog import Catalog, summarize
    from catalogue.generate import generate_formations
    from catalogue.model import Statut
    from catalogue.problems import Origin
    from catalogue.regions import geo

    _load_sinks(sinks)
    build_dir.mkdir(parents=True, exist_ok=True)
    staging = build_module._new_staging(build_dir)
    context = SinkContext(staging, Settings(), TODAY, geo())
    active = [build_module.SINKS[name](context) for name in sinks]
    entries = []
    start = time.perf_counter()
    for i, formation in enumerate(generate_formations(count, seed=0, reference=TODAY)):
        entry = summarize(
            formation, origin=Origin("generate", i + 1), statut=Statut.VALIDEE,
            today=TODAY, settings=context.settings, geo=context.geo,
        )
        entries.append(entry)
        for sink in active:
            sink.add(formation, entry)
    catalog = Catalog.of(entries, TODAY)
    for sink in active:
        sink.finish(catalog)
    for sink in active:  # as the build does: work a finish() left running elsewhere
        wait = getattr(sink, "wait", None)
        if wait is not None:
            wait()
    build_module._publish(build_dir, staging)
    return time.perf_counter() - start


def build_generated(work: Path, build_dir: Path, count: int, sinks: list[str], reuse: bool) -> tuple[float, float]:
    """Generate an LHEO file of ``count`` formations (reused with ``--reuse``) and build it.

    Returns the build's wall time and the CPU counter at its start."""
    from catalogue.generate import generate

    content = work / f"content-{count}"
    source = content / "catalogue.xml"
    if not (reuse and source.exists()):
        shutil.rmtree(content, ignore_errors=True)
        content.mkdir(parents=True)
        start = time.perf_counter()
        generate(source, count, seed=0, version="2.3", reference=TODAY)
        print(f"génération : {time.perf_counter() - start:.1f} s ({source.stat().st_size / 1e6:.0f} Mo)", flush=True)
    _load_sinks(sinks)
    cpu = cpu_seconds()
    start = time.perf_counter()
    options = BuildOptions(content=(content,), build_dir=build_dir, today=TODAY, skip_invalid=True)
    report = build(options, Settings(), sinks=sinks)
    elapsed = time.perf_counter() - start
    print(f"build : {report.published} formations publiées ({report.archived} archivées) ; phases : "
          + ", ".join(f"{k} {v:.1f} s" for k, v in sorted(report.timings.items())), flush=True)
    return elapsed, cpu


def cpu_seconds() -> float:
    """CPU time of this process and its finished children (Whoosh's writer processes)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def folder_size(path: Path) -> int:
    return sum(p.stat().st_size for p in Path(os.path.realpath(path)).rglob("*") if p.is_file())


# --------------------------------------------------------------------------
# Queries
# --------------------------------------------------------------------------


def query_set(build_dir: Path) -> list[tuple[str, dict]]:
    """20 queries by kind; numbers are taken from the built index itself."""
    from catalogue.search.index import open_index

    index = open_index(build_dir)
    searcher = index.searcher()
    refs = sorted(index.refs())  # docnum order depends on the writer's segments; Ref order does not
    ref = refs[len(refs) // 2]
    other = refs[len(refs) // 3]
    stored = searcher.stored_fields(index.docnums()[ref])
    ville = (stored.get("lieu") or ("Toulouse", None))[0] or "Toulouse"
    siret = next(iter(sorted(_sirets(index, 2))))
    return [
        ("titre", {"q": "électricien"}),
        ("titre", {"q": "comptabilite gestion"}),
        ("titre", {"q": "cuisine"}),
        ("titre", {"q": "aide soignant"}),
        ("titre", {"q": "formation"}),
        ("ville", {"q": ville}),
        ("ville", {"q": "maçon toulouse"}),
        ("organisme", {"q": stored["nom"]}),
        ("organisme", {"q": "horizon"}),
        ("numero", {"q": ref}),
        ("numero", {"q": other.split("_", 1)[-1]}),
        ("numero", {"q": siret}),
        ("numero", {"q": f"{siret[:3]} {siret[3:6]} {siret[6:9]} {siret[9:]}"}),
        ("faute", {"q": "restauraton"}),
        ("faute", {"q": "electricen batiment"}),
        ("faute", {"q": "comptabilitee"}),
        ("filtre", {"q": "cuisine", "region": "76", "certifiante": "true"}),
        ("filtre", {"q": "anglais", "cpf": "false", "distance": "true"}),
        ("filtre", {"q": "", "departement": "31", "debut_apres": "2026-01-01"}),
        ("filtre", {"q": "soudeur", "near": ville, "rayon_km": "50"}),
    ]


def _sirets(index, n: int) -> list[str]:
    rows = index.store().execute(
        "SELECT DISTINCT id FROM number WHERE length(id) = 14 AND id NOT GLOB '*[^0-9]*' ORDER BY id LIMIT ?", (n,)
    ).fetchall()
    return [row[0] for row in rows]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(build_dir: Path, port: int) -> subprocess.Popen:
    code = (
        "import sys; from pathlib import Path; from catalogue.server import run; "
        f"run(Path({str(build_dir)!r}), '127.0.0.1', {port})"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/openapi.json", timeout=2).read()
            return proc
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(proc.stderr.read().decode())
            time.sleep(0.2)
    proc.terminate()
    raise RuntimeError("le serveur ne répond pas")


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def run_queries(port: int, queries: list[tuple[str, dict]], rounds: int) -> dict[str, list[list[float]]]:
    """Latencies in ms, per kind, per round (the first warm-up round is not counted)."""
    per_round: list[dict[str, list[float]]] = []
    totals: dict[str, int] = {}
    for round_no in range(rounds + 1):
        times: dict[str, list[float]] = {}
        for kind, params in queries:
            url = f"http://127.0.0.1:{port}/api/search?" + urllib.parse.urlencode(params)
            start = time.perf_counter()
            with urllib.request.urlopen(url, timeout=30) as response:
                body = json.loads(response.read())
            elapsed = (time.perf_counter() - start) * 1000
            totals[json.dumps(params, ensure_ascii=False)] = body["total"]
            if round_no:
                times.setdefault(kind, []).append(elapsed)
        if round_no:
            per_round.append(times)
    for params, total in totals.items():
        print(f"  {total:>7}  {params}")
    return per_round


def report_latencies(per_round: list[dict[str, list[float]]]) -> None:
    kinds = list(per_round[0])
    print(f"{'type':<10} {'p50 ms':>8} {'p95 ms':>8}")
    for kind in kinds + ["tout"]:
        p50s, p95s = [], []
        for times in per_round:
            values = [t for k, ts in times.items() for t in ts] if kind == "tout" else times[kind]
            p50s.append(percentile(values, 50))
            p95s.append(percentile(values, 95))
        print(f"{kind:<10} {statistics.median(p50s):8.1f} {statistics.median(p95s):8.1f}")


# --------------------------------------------------------------------------
# Old code against new (--compare)
# --------------------------------------------------------------------------

INTITULE_END = b"</intitule-formation>"
EDIT = b" (modifiee)"
#: Phases of a build of the index sink alone, as printed.
PHASES = ["read", "emit:index", "finish:index", "report", "publish"]


def child(code: str, content: str, build_dir: str, mode: str) -> None:
    """One build of the index sink (``--child``): print its phases, wall and main-thread CPU, as JSON."""
    import catalogue
    from catalogue import build as build_module

    assert str(Path(catalogue.__file__).resolve()).startswith(str(Path(code).resolve())), catalogue.__file__

    class Clock:
        """The build's phase timer reads wall time + 1j * this thread's CPU time: one sum gives both."""

        def __getattr__(self, name):
            return getattr(time, name)

        @staticmethod
        def perf_counter() -> complex:
            return complex(time.perf_counter(), time.thread_time())

    build_module.time = Clock()
    options = BuildOptions(content=(Path(content),), build_dir=Path(build_dir), today=TODAY, skip_invalid=True,
                           full=mode == "full")
    start = time.perf_counter()
    report = build(options, Settings(), sinks=["index"])
    total = time.perf_counter() - start
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(json.dumps({
        "total": total,
        "incremental": report.incremental,
        "wall": {k: v.real for k, v in report.timings.items()},
        "cpu": {k: v.imag for k, v in report.timings.items()},
        "process_cpu": own.ru_utime + own.ru_stime,
        "children_cpu": children.ru_utime + children.ru_stime,
    }))


def edited_copy(source: Path, target: Path, every: int) -> int:
    """``source`` with every ``every``-th ``intitule-formation`` edited (the generator writes one element a line)."""
    edited = index = 0
    with open(source, "rb") as src, open(target, "wb") as dst:
        for line in src:
            if INTITULE_END in line:
                if index % every == 0:
                    line = line.replace(INTITULE_END, EDIT + INTITULE_END, 1)
                    edited += 1
                index += 1
            dst.write(line)
    return edited


def snapshot(rev: Optional[str], dest: Path) -> Path:
    """``catalogue/`` and ``templates/`` at git revision ``rev`` (or of a folder holding them), or of the
    working tree (``None``), in ``dest``."""
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    if rev is None or Path(rev).is_dir():
        for folder in ("catalogue", "templates"):
            shutil.copytree(Path(rev or ROOT) / folder, dest / folder, ignore=shutil.ignore_patterns("__pycache__"))
    else:
        archive = subprocess.run(["git", "archive", rev, "catalogue", "templates"], cwd=ROOT, check=True,
                                 capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest


def run_child(code: Path, content: Path, build_dir: Path, mode: str) -> dict:
    result = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--child", str(code), str(content), str(build_dir), mode],
        cwd=code, capture_output=True, text=True,
    )
    if result.returncode:
        raise RuntimeError(result.stderr)
    return json.loads(result.stdout.strip().splitlines()[-1])


def answers(build_dir: Path, queries: list[tuple[str, dict]]) -> list:
    from catalogue.search.query import SearchParams, search

    found = []
    for _kind, params in queries:
        for extra in ({}, {"include_archived": True, "limit": 100}):
            found.append(search(build_dir, SearchParams(**{**params, **extra})).model_dump())
    return found


def compare(args) -> None:
    work = args.work / "compare"
    work.mkdir(parents=True, exist_ok=True)
    codes = {"avant": snapshot(args.compare, work / "code-avant")}
    if args.only:
        # The same code but these files, as in the working tree: other changes of the tree stay out.
        codes["après"] = snapshot(args.compare, work / "code-apres")
        for path in args.only:
            shutil.copyfile(ROOT / path, codes["après"] / path)
    else:
        codes["après"] = snapshot(None, work / "code-apres")
    commit = subprocess.run(["git", "rev-parse", "--short", args.compare], cwd=ROOT, capture_output=True, text=True)
    if commit.returncode:
        commit.stdout = "dossier"
    print(f"avant : {args.compare} ({commit.stdout.strip()}) ; après : "
          + (f"le même, avec {', '.join(args.only)} de l'arbre de travail" if args.only else "l'arbre de travail"),
          flush=True)
    source = work / f"catalogue-{args.formations}.xml"
    edited = work / f"catalogue-{args.formations}-1pc.xml"
    if not (args.reuse and source.exists() and edited.exists()):
        from catalogue.generate import generate

        generate(source, args.formations, seed=0, version="2.3", reference=TODAY)
        print(f"{edited_copy(source, edited, 100)} formations modifiées sur {args.formations}", flush=True)
    runs: dict[str, dict[str, list[dict]]] = {name: {"full": [], "incr": []} for name in codes}
    for run in range(args.runs):
        for name, code in codes.items():
            slug = "avant" if name == "avant" else "apres"
            content, build_dir = work / f"content-{slug}", work / f"build-{slug}"
            shutil.rmtree(build_dir, ignore_errors=True)
            content.mkdir(exist_ok=True)
            shutil.copyfile(source, content / "catalogue.xml")
            full = run_child(code, content, build_dir, "full")
            shutil.copyfile(edited, content / "catalogue.xml")
            incr = run_child(code, content, build_dir, "incr")
            assert not full["incremental"] and incr["incremental"], (full, incr)
            runs[name]["full"].append(full)
            runs[name]["incr"].append(incr)
            print(f"exécution {run + 1}, {name} : complet {full['total']:.1f} s, 1 % {incr['total']:.1f} s", flush=True)

    def median(name: str, kind: str, get) -> float:
        return statistics.median(get(r) for r in runs[name][kind])

    for kind, title in (("full", "build complet"), ("incr", "reconstruction, 1 % changé")):
        print(f"\n{title} ({args.formations} formations, index seul ; médianes de {args.runs}) :")
        print(f"{'':28} {'avant':>9} {'après':>9} {'après/avant':>12}")
        rows = []
        for phase in PHASES:
            rows.append((f"{phase}, mur (s)", lambda r, p=phase: r["wall"].get(p, 0.0)))
            rows.append((f"{phase}, CPU fil principal", lambda r, p=phase: r["cpu"].get(p, 0.0)))
        rows.append(("index (emit+finish), mur", lambda r: r["wall"].get("emit:index", 0) + r["wall"].get("finish:index", 0)))
        rows.append(("index (emit+finish), CPU", lambda r: r["cpu"].get("emit:index", 0) + r["cpu"].get("finish:index", 0)))
        rows.append(("build entier, mur", lambda r: r["total"]))
        rows.append(("CPU processus principal", lambda r: r["process_cpu"]))
        rows.append(("CPU processus fils", lambda r: r["children_cpu"]))
        for label, get in rows:
            before, after = median("avant", kind, get), median("après", kind, get)
            ratio = f"{after / before:.2f}" if before > 0.05 else "-"
            print(f"{label:28} {before:9.2f} {after:9.2f} {ratio:>12}")
    builds = {name: work / f"build-{'avant' if name == 'avant' else 'apres'}" for name in codes}
    queries = query_set(builds["après"])
    same = answers(builds["avant"], queries) == answers(builds["après"], queries)
    print(f"\nmêmes réponses des deux reconstructions à {len(queries) * 2} requêtes : {'oui' if same else 'NON'}")


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        child(*sys.argv[2:6])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--formations", type=int, default=100_000)
    parser.add_argument("--work", type=Path, default=ROOT / "bench" / "out")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--sinks", default="index", help="sinks, séparés par des virgules (défaut : index)")
    parser.add_argument("--reuse", action="store_true", help="réutiliser le catalogue LHEO déjà généré")
    parser.add_argument("--reuse-build", action="store_true", help="réutiliser le build existant (pas de build)")
    parser.add_argument("--procs", type=int, help="processus d'écriture Whoosh (défaut : celui de l'index)")
    parser.add_argument("--direct", action="store_true", help="formations générées passées aux sinks, sans LHEO")
    parser.add_argument("--compare", metavar="REV",
                        help="comparer le code de la révision REV (ou d'un dossier) à l'arbre de travail")
    parser.add_argument("--runs", type=int, default=3, help="exécutions de --compare (alternées)")
    parser.add_argument("--only", nargs="+", metavar="PATH",
                        help="avec --compare : n'y prendre de l'arbre de travail que ces fichiers")
    args = parser.parse_args()
    if args.compare:
        compare(args)
        return

    sinks = args.sinks.split(",")
    if args.procs:
        import catalogue.search.index as index_module

        index_module.WRITER_PROCS = args.procs
    build_dir = args.work / f"build-{args.formations}{'-direct' if args.direct else ''}"
    if not (args.reuse_build and (build_dir / "index").exists()):
        if args.direct:
            cpu = cpu_seconds()
            elapsed = build_direct(build_dir, args.formations, sinks)
        else:
            elapsed, cpu = build_generated(args.work, build_dir, args.formations, sinks, args.reuse)
        cpu = cpu_seconds() - cpu
        print(f"build ({','.join(sinks)}) de {args.formations} formations : {elapsed:.1f} s "
              f"({cpu:.1f} s de CPU, processus d'écriture compris)", flush=True)
    print(f"taille de l'index : {folder_size(build_dir / 'index') / 1e6:.1f} Mo", flush=True)

    queries = query_set(build_dir)
    port = free_port()
    proc = serve(build_dir, port)
    try:
        per_round = run_queries(port, queries, args.rounds)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    report_latencies(per_round)


if __name__ == "__main__":
    main()
