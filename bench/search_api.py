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

ROOT = Path(__file__).resolve().parent.parent
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--formations", type=int, default=100_000)
    parser.add_argument("--work", type=Path, default=ROOT / "bench" / "out")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--sinks", default="index", help="sinks, séparés par des virgules (défaut : index)")
    parser.add_argument("--reuse", action="store_true", help="réutiliser le catalogue LHEO déjà généré")
    parser.add_argument("--reuse-build", action="store_true", help="réutiliser le build existant (pas de build)")
    parser.add_argument("--procs", type=int, help="processus d'écriture Whoosh (défaut : celui de l'index)")
    parser.add_argument("--direct", action="store_true", help="formations générées passées aux sinks, sans LHEO")
    args = parser.parse_args()

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
