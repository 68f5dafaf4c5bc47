"""The static search shards: format, numbers, scores, determinism, byte budget, and the JS analysis port."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import marshal
import os
import random
import re
from pathlib import Path

import pytest

from catalogue.build import SinkContext
from catalogue.catalog import Catalog, summarize
from catalogue.generate import generate
from catalogue.lheo_export import write_lheo
from catalogue.model import Statut
from catalogue.problems import Origin
from catalogue.regions import geo
from catalogue.search import static
from catalogue.search.analysis import FIELD_BOOSTS, analyse, fold_terms, round_score, stem
from catalogue.search.static import ShardOptions, ShardReader, StaticSearchSink, leaf_of, plan_split
from catalogue.settings import Settings

from browser import browser, build_site, page, serve  # noqa: F401  (fixtures)
from factories import SIRET_TOULOUSE, SIRET_VEIGNE, ADRESSE_TOURS, action, make_formation, organisme, session

TODAY = dt.date(2026, 11, 29)
ENDED = session("20240101", "20240601", numero="15_SE_0000000099-1")


def formations():
    """A small catalogue where each number kind and ranking rule has a witness."""
    return [
        make_formation(
            numero="15_AF_0000910001",
            intitule="Électricien d'équipement du bâtiment",
            actions=[action(numero="15_SE_0000123456", sessions=[session(numero="15_SE_0000123456-1")])],
            certifications=[{"code_rncp": "RNCP12345"}],
        ),
        make_formation(
            numero="15_AF_0000910002",
            intitule="Comptabilité et gestion",
            objectif_formation="Tenir la comptabilité d'un électricien artisan.",
        ),
        make_formation(
            numero="15_AF_0000910003",
            intitule="Électricien réseaux",
            actions=[action(numero="15_SE_0000000099", sessions=[ENDED])],
        ),
        make_formation(
            numero="07_52482",
            intitule="Assistant comptable",
            org=organisme(siret=SIRET_VEIGNE, nom="Centre Val Formation", adresse=ADRESSE_TOURS),
            actions=[action(numero="07_281515", lieux=[ADRESSE_TOURS])],
        ),
        make_formation(numero="15_AF_0000910005", intitule="Ελληνικά για αρχάριους"),
    ]


def feed(root: Path, items, options: ShardOptions = ShardOptions(), worker=None) -> Path:
    """Feed formations straight to the sink (no LHEO); returns the site folder."""
    context = SinkContext(root, Settings(), TODAY, geo())
    sink = StaticSearchSink(context, options, worker=worker)
    entries = []
    for i, formation in enumerate(items):
        entry = summarize(
            formation, origin=Origin("test", i + 1), statut=Statut.VALIDEE, today=TODAY, settings=Settings(), geo=context.geo
        )
        entries.append(entry)
        sink.add(formation, entry)
    sink.finish(Catalog.of(entries, TODAY))
    sink.wait()  # a full build's worker writes the files after finish()
    return root / "site"


def tree(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


def refs(results) -> list[str]:
    return [r.ref for r in results]


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    return feed(tmp_path_factory.mktemp("static"), formations())


# --------------------------------------------------------------------------
# Numbers
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        "15_AF_0000910001",
        "15_af_0000910001",
        "AF_0000910001",
        "0000910001",
        "15_SE_0000123456",
        "15_SE_0000123456-1",
        "15_AF_0000910001|15_SE_0000123456",
        "15_AF_0000910001|15_SE_0000123456|15_SE_0000123456-1",
        "RNCP12345",
        "rncp 12345",
        "12345",
    ],
)
def test_every_number_leads_to_its_formation_first(site, query):
    results = ShardReader(site).search(query)
    assert refs(results)[:1] == ["15_AF_0000910001"]
    assert results[0].match == "numero" and results[0].score is None


def test_siret_with_spaces_lists_the_organisme_in_ref_order_archived_included(site):
    spaced = " ".join([SIRET_TOULOUSE[:3], SIRET_TOULOUSE[3:6], SIRET_TOULOUSE[6:9], SIRET_TOULOUSE[9:]])
    expected = ["15_AF_0000910001", "15_AF_0000910002", "15_AF_0000910003", "15_AF_0000910005"]
    for include_archived in (False, True):  # a number always finds its formations, archived ones flagged
        found = [r for r in ShardReader(site).search(spaced, include_archived=include_archived) if r.match == "numero"]
        assert refs(found) == expected
        assert [r.archived for r in found] == [False, False, True, False]


def test_a_ref_costs_one_small_request_and_its_row_is_in_it(site):
    reader = ShardReader(site)
    results = reader.search("15_AF_0000910001")
    assert reader.fetched == [reader.fetched[0]] and reader.fetched[0].startswith("n/")
    assert reader.bytes_fetched() < 10_000
    row = results[0]
    assert (row.intitule, row.organisme, row.ville, row.codepostal) == (
        "Électricien d'équipement du bâtiment", "UT2J FC", "Toulouse", "31500")
    assert row.datemaj == "02/11/2026" and row.url == "/formations/15_AF_0000910001.html"


def test_an_action_numero_costs_two_requests_at_most(site):
    reader = ShardReader(site)
    assert refs(reader.search("07_281515")) == ["07_52482"]
    assert len(reader.fetched) <= 2


def test_a_key_shared_by_many_formations_gets_a_file_of_its_own(tmp_path):
    site = feed(tmp_path, formations(), ShardOptions(big_key_codes=2))
    big = sorted((site / "recherche" / "n").glob("g*.json"))
    assert big, "the SIRET of 4 formations should have its own file"
    reader = ShardReader(site)
    found = [r for r in reader.search(SIRET_TOULOUSE) if r.match == "numero"]
    assert refs(found) == ["15_AF_0000910001", "15_AF_0000910002", "15_AF_0000910003", "15_AF_0000910005"]
    assert any(f.startswith("n/g") for f in reader.fetched)


def test_unknown_number_falls_back_to_text(site):
    assert ShardReader(site).search("15_AF_9999999999") == []


# --------------------------------------------------------------------------
# Text
# --------------------------------------------------------------------------


def test_accents_and_plurals_meet_and_titles_weigh_more(site):
    for query in ("électriciens", "ELECTRICIEN", "electricien"):
        found = ShardReader(site).search(query)
        # Both titles come before the formation that only mentions it in its objective.
        assert refs(found) == ["15_AF_0000910001", "15_AF_0000910002"], query
        assert all(r.match == "texte" and r.score > 0 for r in found)
        assert found[0].score > found[1].score


def test_and_semantics_and_archived_on_demand(site):
    assert refs(ShardReader(site).search("électricien réseaux")) == []
    assert refs(ShardReader(site).search("électricien réseaux", include_archived=True)) == ["15_AF_0000910003"]
    archived = ShardReader(site).search("électricien réseaux", include_archived=True)[0]
    assert archived.archived is True


def test_non_latin_titles_are_found(site):
    assert refs(ShardReader(site).search("ελληνικά")) == ["15_AF_0000910005"]


def test_term_scores_are_whooshs_bm25f(tmp_path):
    """Every (term, formation) score of the shards is Whoosh's own BM25F with the rounded average
    lengths (RoundedBM25F), to the stored precision."""
    from whoosh.query import Or, Term

    from catalogue.search.analysis import RoundedBM25F, average_length
    from catalogue.search.index import open_index

    content = tmp_path / "content"
    content.mkdir()
    items = formations() + [make_formation(numero="15_AF_0000910009", intitule="Électricien " + "câbleur " * 6)]
    write_lheo(items, content / "a.xml")
    build_dir = build_site([content], tmp_path / "build", sinks=["static-search", "index"], today=TODAY)
    root = build_dir / "site" / "recherche"
    manifest = json.loads((root / "manifest.json").read_text())
    index = open_index(build_dir)
    # The averages are rounded (19 terms in the titles of 6 formations: 3.2, not 3.1666...):
    titles = sum(len(analyse(x.intitule_formation)) for x in items)
    assert manifest["avg"]["intitule"] == average_length(titles, 6) != titles / 6
    searcher = index.ix.searcher(weighting=RoundedBM25F())
    refs_by_docnum = index.refs()
    static_refs = [row[0] for k in range(len(list((root / "d").glob("*.json")))) for row in json.loads((root / "d" / f"{k}.json").read_text())]
    checked = 0
    for shard in sorted((root / "t").glob("*.json")):
        for term, groups in json.loads(shard.read_text()).items():
            stored = {static_refs[code >> 1]: score for code, score in static._ungroup(g for g in groups if isinstance(g, list))}
            whoosh = {}
            for leaf, offset in searcher.leaf_searchers():
                query = Or([Term(field, term, boost=boost) for field, boost in FIELD_BOOSTS.items()])
                matcher = query.matcher(leaf, searcher.context())
                while matcher.is_active():
                    whoosh[refs_by_docnum[matcher.id() + offset]] = round_score(matcher.score(), ShardOptions().score_digits)
                    matcher.next()
            assert stored == whoosh, term
            checked += len(stored)
    assert checked > 50 and manifest["n"] == 6


def test_postings_are_cut_to_top_k_per_page_best_first(tmp_path):
    items = [make_formation(numero=f"15_AF_{i:010d}", intitule="Comptable " + "mot " * i) for i in range(1, 8)]
    items.append(make_formation(numero="15_AF_0000000100", intitule="Comptable",
                                actions=[action(sessions=[session("20240101", "20240601")])]))
    site = feed(tmp_path, items, ShardOptions(top_k=2, top_k_archived=1, max_pages=2))
    root = site / "recherche"
    manifest = json.loads((root / "manifest.json").read_text())
    shard = json.loads((root / "t" / f"{static.leaf_file(leaf_of('comptabl', set(manifest['split'])))}.json").read_text())
    head, *groups = shard["comptabl"]
    assert head == {"p": 2, "c": 1}  # 7 current formations: 2 per page, 2 pages kept, the rest dropped
    first = list(static._ungroup(groups))
    assert sorted(c & 1 for c, _ in first) == [0, 0, 1]
    scores = [s for c, s in first if not c & 1]
    assert scores == sorted(scores, reverse=True)
    second = json.loads((root / "p" / f"{static.page_file('comptabl', 1)}.json").read_text())["comptabl"]
    assert max(s for _, s in static._ungroup(second)) <= min(scores)
    # Shortest titles first (BM25 length normalisation): formations 1 and 2.
    current = [site_ref(root, c) for c, _ in first if not c & 1]
    assert current == ["15_AF_0000000001", "15_AF_0000000002"]


def site_ref(root: Path, code: int) -> str:
    docnum, docs = code >> 1, json.loads((root / "manifest.json").read_text())["docs"]
    return json.loads((root / "d" / f"{docnum // docs}.json").read_text())[docnum % docs][0]


def test_pages_are_fetched_until_the_first_results_are_sure(tmp_path):
    """Two common words: the formation holding both ranks low in each list, yet comes first."""
    items = []
    for i in range(6):
        items.append(make_formation(numero=f"15_AF_A{i:04d}", intitule="Soudeur soudeur soudeur"))
        items.append(make_formation(numero=f"15_AF_B{i:04d}", intitule="Chaudronnier chaudronnier chaudronnier"))
    items.append(make_formation(numero="15_AF_C0001", intitule="Soudeur chaudronnier " + "mot " * 30))
    site = feed(tmp_path, items, ShardOptions(top_k=3, top_k_archived=1, max_pages=20))
    reader = ShardReader(site)
    assert refs(reader.search("soudeur chaudronnier")) == ["15_AF_C0001"]
    assert any(f.startswith("p/") for f in reader.fetched)


def test_beyond_the_pages_the_members_of_each_term_still_find_every_formation(tmp_path):
    """Pages cut short: which formations hold each term (no scores) still makes the AND complete."""
    items = []
    for i in range(20):
        items.append(make_formation(numero=f"15_AF_A{i:04d}", intitule="Soudeur soudeur soudeur"))
        items.append(make_formation(numero=f"15_AF_B{i:04d}", intitule="Chaudronnier chaudronnier chaudronnier"))
    items.append(make_formation(numero="15_AF_C0001", intitule="Soudeur chaudronnier " + "mot " * 30))
    items.append(make_formation(numero="15_AF_C0002", intitule="Soudeur chaudronnier",
                                actions=[action(sessions=[session("20240101", "20240601")])]))
    site = feed(tmp_path, items, ShardOptions(top_k=2, top_k_archived=1, max_pages=3))
    reader = ShardReader(site)
    assert refs(reader.search("soudeur chaudronnier")) == ["15_AF_C0001"]
    assert sum(f.startswith("b/") for f in reader.fetched) == 2
    # Scores not fetched count as their page's bound: the order is an estimate, the set is right.
    found = ShardReader(site).search("soudeur chaudronnier", include_archived=True)
    assert sorted(refs(found)) == ["15_AF_C0001", "15_AF_C0002"]


def test_the_page_follows_pages_and_members_as_the_python_model(tmp_path, page):  # noqa: F811
    """recherche.js and ShardReader: same Refs, same files, when pages and members come into play."""
    items = [make_formation(numero=f"15_AF_A{i:04d}", intitule="Soudeur " + "soudeur " * (i % 4) + "mot " * i)
             for i in range(30)]
    items += [make_formation(numero=f"15_AF_B{i:04d}", intitule="Chaudronnier soudeur " + "mot " * i,
                             actions=[action(sessions=[session("20240101", "20240601")])] if i % 3 == 0 else None)
              for i in range(12)]
    site = feed(tmp_path, items, ShardOptions(top_k=2, top_k_archived=1, max_pages=4))
    cases = [(q, a) for q in ("soudeur", "chaudronnier", "soudeur chaudronnier", "mot soudeur", "mot chaudronnier")
             for a in (False, True)]
    expected = []
    for query, archived in cases:
        reader = ShardReader(site)
        expected.append([refs(reader.search(query, include_archived=archived, limit=5)), reader.fetched])
    assert any(f.startswith("b/") for _, fetched in expected for f in fetched)
    assert any(f.startswith("p/") for _, fetched in expected for f in fetched)
    with serve(site) as base:
        page.goto(base + "/recherche/")
        actual = page.evaluate(
            """async (cases) => {
                const R = CatalogueRecherche, out = [];
                for (const [q, archived] of cases) {
                    const shards = R.Shards(R.page.shards.config);
                    const found = await R.search(shards, q, {includeArchived: archived, need: 5});
                    const rows = await R.results(shards, found, 0, 5);
                    out.push([rows.map(r => r.ref), shards.fetched]);
                }
                return out;
            }""",
            cases,
        )
    assert actual == expected


def test_member_sets_round_trip():
    rng = random.Random(0)
    for n in (1, 7, 100, 5000):
        for k in (0, 1, n // 10, n // 2, n):
            docnums = sorted(rng.sample(range(n), k))
            encoded = static.encode_set(docnums, n)
            assert static.decode_set(encoded) == docnums
            assert len(encoded) <= max(n // 6 + 3, 2 * k + 2)


def test_split_prefixes_keep_shards_small_and_every_term_findable(tmp_path):
    site = feed(tmp_path, formations(), ShardOptions(term_shard_bytes=40))
    root = site / "recherche"
    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest["split"], "a tiny shard size must split some prefixes"
    for f in formations():
        for term in analyse(f.intitule_formation):
            leaf = leaf_of(term, set(manifest["split"]))
            shard = json.loads((root / "t" / f"{static.leaf_file(leaf)}.json").read_text())
            assert term in shard
    assert ShardReader(site).search("électricien équipement")[0].ref == "15_AF_0000910001"


def test_plan_split_bounds_shards_and_sends_a_split_prefix_term_to_its_own_shard():
    sizes = {"form": 50, "format": 50, "formateur": 50, "forge": 50, "fort": 50, "abc": 10}
    split = plan_split(sizes, 120)
    leaves: dict[str, int] = {}
    for term, size in sizes.items():
        leaf = leaf_of(term, split)
        assert term.startswith(leaf.rstrip("_"))
        leaves[leaf] = leaves.get(leaf, 0) + size
    assert all(total <= 120 for total in leaves.values())
    assert leaf_of("form", split) == "form_"


# --------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------


def test_same_input_same_bytes_whatever_the_input_order(tmp_path):
    first = feed(tmp_path / "a", formations())
    second = feed(tmp_path / "b", list(reversed(formations())))
    assert tree(first / "recherche") == tree(second / "recherche")


def test_the_worker_process_writes_what_the_build_process_would(tmp_path):
    """A full build runs the sink in a process of its own: same files, same cache, byte for byte."""
    from catalogue.generate import generate_formations

    items = list(generate_formations(400, seed=3, reference=TODAY)) + formations()
    # Small shards: many number buckets, keys with files of their own, split term prefixes.
    options = ShardOptions(top_k=20, top_k_archived=5, number_shard_bytes=600, big_key_codes=4, term_shard_bytes=2000)
    inline = feed(tmp_path / "inline", items, options, worker=False)
    forked = feed(tmp_path / "forked", items, options, worker=True)
    files = tree(inline / "recherche")
    assert len(files) > 300 and any(re.match(r"n/g[0-9a-f]{8}\.json", f) for f in files)
    assert tree(forked / "recherche") == files
    # The cache holds the same values (marshal may share equal strings differently: its bytes may differ).
    caches = [folder / ".cache" / "static-search" for folder in (tmp_path / "inline", tmp_path / "forked")]
    names = tree(caches[0]).keys()
    assert names == tree(caches[1]).keys() and "meta" in names
    for name in names:
        if name.startswith(static.SPARE_DIR + "/"):  # links of the search files and of the cache's (below)
            continue
        values = [marshal.loads((cache / name).read_bytes()) for cache in caches]
        if name.startswith("records/"):  # Ref → record, each marshalled on its own
            values = [{ref: marshal.loads(blob) for ref, blob in value.items()} for value in values]
        assert values[0] == values[1], name
    # Each build's spare folder links its very search and cache files.
    for folder in (tmp_path / "inline", tmp_path / "forked"):
        spare = folder / ".cache" / "static-search" / static.SPARE_DIR
        for name in tree(spare):
            top, _, relative = name.partition("/")
            own = folder / ("site/recherche" if top == "recherche" else ".cache/static-search") / relative
            assert os.path.samefile(spare / name, own), name
        assert {n for n in tree(spare) if n.startswith("recherche/")} == {f"recherche/{f}" for f in files if "/" in f}


def test_the_worker_process_is_used_and_its_error_stops_the_build(tmp_path, monkeypatch):
    context = SinkContext(tmp_path / "ok", Settings(), TODAY, geo())
    sink = StaticSearchSink(context, worker=True)
    assert sink._worker is not None and sink._worker._process.is_alive()  # a full build forks its worker
    sink.abort()
    assert not sink._worker._process.is_alive()

    def broken(*args):
        raise ValueError("analyse impossible")

    monkeypatch.setattr(static, "_make_record", broken)  # the worker is forked: it inherits the patch
    sink = StaticSearchSink(SinkContext(tmp_path / "ko", Settings(), TODAY, geo()), worker=True)
    entries = []
    for i, formation in enumerate(formations()):
        entry = summarize(formation, origin=Origin("test", i + 1), statut=Statut.VALIDEE, today=TODAY,
                          settings=Settings(), geo=geo())
        entries.append(entry)
        sink.add(formation, entry)
    with pytest.raises(RuntimeError, match="static-search : .*analyse impossible"):
        sink.finish(Catalog.of(entries, TODAY))
        sink.wait()  # the worker's error comes with its answer
    assert not sink._worker._process.is_alive() if sink._worker else True


def test_file_names_are_computed_never_raw_input(site):
    names = re.compile(r"^(index\.html|manifest\.json|recherche\.js|n/(g[0-9a-f]{8}x*|[0-9a-f]+)\.json|"
                       r"t/(-[0-9a-f]+|[a-z0-9]+)_?\.json|[pb]/[0-9a-f]{8}-\d+\.json|d/\d+\.json)$")
    files = tree(site / "recherche")
    assert all(names.match(f) for f in files), [f for f in files if not names.match(f)]
    assert any(f.startswith("t/-") for f in files)  # the Greek title's shard


def test_the_page_script_is_served_without_comments(site):
    source = (Path(static.__file__).parents[2] / "templates" / "static" / "recherche.js").read_text()
    served = (site / "recherche" / "recherche.js").read_text()
    assert len(served) < 0.85 * len(source)
    assert not any(line.startswith(("//", "/**")) for line in served.splitlines()[1:])
    code = [line.strip() for line in source.splitlines() if line.strip() and not line.strip().startswith(("//", "/*", "*"))]
    assert [line for line in served.splitlines() if not line.startswith(("/*", "*"))] == code
    assert re.search(r'src="/recherche/recherche\.js\?v=[0-9a-f]{10}"', (site / "recherche" / "index.html").read_text())


def test_manifest_carries_the_analysis_data(site):
    manifest = json.loads((site / "recherche" / "manifest.json").read_text())
    from catalogue.search.analysis import STOP_WORDS

    assert set(manifest["stop"]) == STOP_WORDS
    assert manifest["n"] == 5 and manifest["docs"] == ShardOptions().docs_per_shard
    assert {"combining", "digit"} <= set(manifest["unicode"])


def test_page_carries_the_number_lookup_parameters(site):
    html = (site / "recherche" / "index.html").read_text()
    assert 'action="/recherche/"' in html and 'name="q"' in html
    assert re.search(r'data-numeros="\d+"', html) and re.search(r'data-version="[0-9a-f]{12}"', html)
    assert "Inclure les formations archivées" in html


# --------------------------------------------------------------------------
# Byte budget on a generated catalogue
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("generated")
    (root / "content").mkdir()
    generate(root / "content" / "catalogue.xml", 3000, seed=0)
    return build_site([root / "content"], root / "build", today=dt.date(2026, 9, 1))


def test_byte_budget_for_a_ref_and_for_a_two_word_query(generated):
    site = generated / "site"
    root = site / "recherche"
    manifest = json.loads((root / "manifest.json").read_text())
    row = json.loads((root / "d" / "40.json").read_text())[3]
    reader = ShardReader(site)
    assert refs(reader.search(row[0]))[:1] == [row[0]]
    assert len(reader.fetched) <= 2 and reader.bytes_fetched() <= 10_000

    reader = ShardReader(site)
    assert reader.search("agent sécurité")
    first_query = (
        (root / "index.html").stat().st_size
        + (root / "recherche.js").stat().st_size
        + reader.bytes_fetched()  # manifest, term shards, pages, rows
    )
    assert "manifest.json" in reader.fetched
    assert first_query <= 150_000, first_query
    assert manifest["n"] > 2000


# --------------------------------------------------------------------------
# The JavaScript port of the analysis chain, run in Chromium
# --------------------------------------------------------------------------

EDGE_CASES = [
    "électriciens", "Électricien", "ÉLECTRICIEN", "comptabilité", "comptabilite", "l'électricien", "aujourd'hui",
    "œuvre", "Straße", "ﬁnance", "Ærø", "Łódź", "Đakovo", "ıi", "İstanbul", "ΣΊΣΥΦΟΣ", "ǅemal", "𝐀𝐁𝐂 𝐝𝐞𝐟",
    "①②", "¹²³", "٣٤٥", "፩፪ ethiopic", "naïveté", "crème brûlée", "x\u0301\u0302y", "Hello_World", "e\u0327",
    "ﬀ", "Ⅻ", "queue", "payer", "tuyau", "heureusement", "activement", "finissaient", "mangeassions",
    "ambiguë", "évidemment", "puissamment", "vraiment", "parlions", "chevaux", "travaux", "colère", "paraître",
    "🙂 émoji", "a𝐀ies", "Ｆｏｒｍａｔｉｏｎ", "ｶﾀｶﾅ", "㍿", "15_AF_0000910001", "SIRET 193 113 834 00389",
]


def _words() -> list[str]:
    """A few thousand words: French town names, every stemmer suffix on various stems, edge cases."""
    from whoosh.lang.snowball.french import FrenchStemmer

    towns = (Path(static.__file__).parents[1] / "data" / "geo" / "communes.csv").read_text(encoding="utf-8")
    names = sorted(set(re.findall(r"[^\W\d_]+", towns)))
    rng = random.Random(0)
    names = rng.sample(names, min(2500, len(names)))
    suffixes = sorted({
        s.lower() for s in FrenchStemmer._FrenchStemmer__step1_suffixes + FrenchStemmer._FrenchStemmer__step2a_suffixes
        + FrenchStemmer._FrenchStemmer__step2b_suffixes + FrenchStemmer._FrenchStemmer__step4_suffixes
    } | {"s", "es", "x", "ivement", "ativement", "eusement", "iquement", "ablement", "ièrement", "icité",
         "abilité", "ivité", "ication", "ativité", "guë", "quement"})
    stems = ["parl", "fin", "col", "tap", "par", "chant", "abandonn", "aim", "act", "ann", "électr", "heur",
             "nation", "ég", "cré", "oui", "ai", "eau", "qu", "quai", "pay", "tuy", "roy", "vi", "ru", "ou",
             "réal", "sécur", "form", "compt", "acqu", "gu", "emm", "éd", "int", "ii", "y", "a", "é", "ç", "prix"]
    made = [s + x for s in stems for x in suffixes]
    return names + rng.sample(made, 2000) + EDGE_CASES


def test_javascript_analysis_equals_python(generated, page):  # noqa: F811
    words = _words()
    assert len(words) > 3000
    with serve(generated / "site") as base:
        page.goto(base + "/recherche/")
        js = page.evaluate(
            """async (words) => {
                const m = await (await fetch('/recherche/manifest.json')).json();
                const a = CatalogueRecherche.Analysis(m);
                return words.map(w => [a.analyse(w), a.foldTerms(w), a.stem(w.toLowerCase())]);
            }""",
            words,
        )
    python = [[analyse(w), fold_terms(w), stem(w.lower())] for w in words]
    mismatches = [(w, p, j) for w, p, j in zip(words, python, js) if p != j]
    assert mismatches == []
    assert page.errors == []


def test_javascript_helpers_equal_python(generated, page):  # noqa: F811
    from catalogue.search.analysis import normalise_number

    rng = random.Random(1)
    scores = [rng.uniform(0, 60) for _ in range(2000)] + [0.0, 1e-9, 999.95, 9999.5, 12.345, 0.0012345]
    keys = ["15_AF_0000910001", "AF_0000910001", "15_AF_1|15_SE_2|3", "19311383400389", "RNCP12345", "", "A_", "é_x"]
    terms = ["form", "formation", "ελληνικα", "a1", "zz"]
    split = {"f", "fo", "for", "form", "ε"}
    queries = [" 15_af_0000910001 ", "193 113\u00a0834\t00389", "rncp 123"]
    sets = [sorted(rng.sample(range(3000), k)) for k in (0, 1, 40, 600, 2900)]
    encoded = [static.encode_set(docnums, 3000) for docnums in sets]
    with serve(generated / "site") as base:
        page.goto(base + "/recherche/")
        js = page.evaluate(
            """([scores, keys, terms, split, queries, encoded]) => {
                const R = CatalogueRecherche, s = new Set(split);
                return [scores.map(R.roundScore), keys.map(k => [R.crc32(R.canonical(k)), R.canonical(k)]),
                        terms.map(t => [R.leafOf(t, s), R.leafFile(R.leafOf(t, s)), R.pageFile(t, 3)]),
                        queries.map(R.normaliseNumber), encoded.map(R.decodeSet)];
            }""",
            [scores, keys, terms, sorted(split), queries, encoded],
        )
    import zlib

    assert js[0] == [round_score(s) for s in scores]
    assert js[1] == [[zlib.crc32(static.canonical(k).encode()), static.canonical(k)] for k in keys]
    assert js[2] == [[leaf_of(t, split), static.leaf_file(leaf_of(t, split)), static.page_file(t, 3)] for t in terms]
    assert js[3] == [normalise_number(q) for q in queries]
    assert js[4] == sets


def test_field_boosts_are_the_contract():
    assert list(FIELD_BOOSTS) == list(static.FIELDS)


def test_a_full_build_s_worker_answers_at_wait(tmp_path):
    """finish() hands the shards to the worker and returns; wait() collects them (the build calls it
    once every sink has finished)."""
    context = SinkContext(tmp_path, Settings(), TODAY, geo())
    sink = StaticSearchSink(context, worker=True)
    entries = []
    for i, formation in enumerate(formations()):
        entry = summarize(formation, origin=Origin("test", i + 1), statut=Statut.VALIDEE, today=TODAY,
                          settings=Settings(), geo=context.geo)
        entries.append(entry)
        sink.add(formation, entry)
    assert sink.hands_off  # the build finishes it first
    sink.finish(Catalog.of(entries, TODAY))
    worker = sink._worker
    assert worker is not None  # still at work
    sink.wait()
    assert sink._worker is None and not worker._process.is_alive()
    assert (tmp_path / "site" / "recherche" / "manifest.json").exists()
    sink.wait()  # once is enough


def test_number_shards_written_apart_are_those_written_in_line(tmp_path, monkeypatch):
    """A full build writes its number and doc shards in a forked process: the same files, the same cache."""
    from catalogue.generate import generate_formations

    # A title holding a number key: a number query whose text search finds something ("texted").
    titled = make_formation(numero="15_AF_0000910009", intitule="Préparation au titre 12345")
    items = list(generate_formations(300, seed=5, reference=TODAY)) + formations() + [titled]
    options = ShardOptions(top_k=20, top_k_archived=5, number_shard_bytes=600, big_key_codes=4, term_shard_bytes=2000)
    forks = []
    real = static._Apart.__init__
    monkeypatch.setattr(static._Apart, "__init__", lambda self, function: (forks.append(1), real(self, function))[1])
    apart = feed(tmp_path / "apart", items, options, worker=False)
    assert forks == [1]
    monkeypatch.setattr(static, "NUMBERS_APART", False)
    in_line = feed(tmp_path / "in-line", items, options, worker=False)
    assert forks == [1]
    files = tree(in_line / "recherche")
    assert sum(f.startswith("n/") for f in files) > 10 and sum(f.startswith("d/") for f in files) > 1
    assert tree(apart / "recherche") == files
    caches = [folder / ".cache" / "static-search" for folder in (tmp_path / "apart", tmp_path / "in-line")]
    assert tree(caches[0]).keys() == tree(caches[1]).keys()
    meta = [marshal.loads((cache / "meta").read_bytes()) for cache in caches]
    assert meta[0] == meta[1] and meta[0]["big"] and meta[0]["texted"]
    assert [marshal.loads((cache / "keywords").read_bytes()) for cache in caches][0] == marshal.loads(
        (caches[1] / "keywords").read_bytes()
    )
    # Its spare links hold the number and doc shards as well.
    spare = caches[0] / static.SPARE_DIR / "recherche"
    assert all(os.path.samefile(spare / f, apart / "recherche" / f) for f in files if f.startswith(("n/", "d/")))


def test_an_error_writing_the_number_shards_apart_stops_the_build(tmp_path, monkeypatch, capfd):
    def broken(*args):
        raise ValueError("numéros impossibles")

    monkeypatch.setattr(static, "_write_numbers", broken)  # the process is forked: it inherits the patch
    with pytest.raises(RuntimeError, match="static-search : ValueError: numéros impossibles"):
        feed(tmp_path, formations(), worker=False)
    assert "numéros impossibles" in capfd.readouterr().err  # the whole traceback, on the build's stderr


def test_a_failing_build_stops_the_number_shards_process(tmp_path, monkeypatch):
    started = []
    real = static._Apart.__init__

    def spy(self, function):
        real(self, function)
        started.append(self._pid)

    def broken(self, groups, members=True):
        raise ValueError("notes impossibles")

    monkeypatch.setattr(static._Apart, "__init__", spy)
    monkeypatch.setattr(static._Scorer, "output", broken)
    with pytest.raises(ValueError, match="notes impossibles"):
        feed(tmp_path, formations(), worker=False)
    assert len(started) == 1
    with pytest.raises(ProcessLookupError):  # killed and its exit collected: no such process left
        os.kill(started[0], 0)
