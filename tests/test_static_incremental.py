"""Incremental builds of the static search: the same bytes as a full build, and only the files that changed.

Two ways in: ``catalogue.build.build`` run twice on one build folder (the
second build is incremental by itself), and the sink driven directly with a
``PreviousBuild`` (to reach the corners: split prefixes, big keys, averages
that move, texted number queries) with small shard options.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Optional

import pytest

from catalogue.build import BuildOptions, PreviousBuild, SinkContext, build
from catalogue.catalog import Catalog, summarize
from catalogue.lheo_export import write_lheo
from catalogue.model import Formation, Statut
from catalogue.problems import Origin
from catalogue.regions import geo
from catalogue.search import static
from catalogue.search.static import CACHE_DIR, SITE_DIR, ShardOptions, ShardReader, StaticSearchSink
from catalogue.settings import Settings

from factories import SIRET_TOULOUSE, SIRET_VEIGNE, ADRESSE_TOURS, action, make_formation, organisme, session

TODAY = dt.date(2026, 11, 29)
WORDS = ["soudeur", "chaudronnier", "cuisinier", "comptable", "électricien", "maçon", "boulanger", "fleuriste",
         "plombier", "menuisier", "peintre", "carreleur", "couvreur", "serrurier", "vendeur", "coiffeur"]
TEXT = ("Acquérir les compétences du métier : sécurité, qualité, gestes professionnels, "
        "communication avec la clientèle et travail en équipe.")


def catalogue(count: int = 40) -> list[Formation]:
    """Formations sharing words in various fields, a few archived, two organismes."""
    items = []
    for i in range(count):
        words = " ".join(WORDS[(i * k) % len(WORDS)] for k in (1, 3, 7)[: 1 + i % 3])
        ended = i % 9 == 4
        items.append(make_formation(
            numero=f"15_AF_{i:010d}",
            intitule=f"Formation {words}" + (" niveau avancé" if i % 5 == 0 else ""),
            objectif_formation=TEXT + " " + " ".join(WORDS[(i + k) % len(WORDS)] for k in range(i % 4)),
            org=organisme(siret=SIRET_VEIGNE, nom="Centre Val Formation", adresse=ADRESSE_TOURS) if i % 4 == 0 else None,
            actions=[action(numero=f"15_SE_{i:010d}",
                            sessions=[session("20240101", "20240601", numero=f"15_SE_{i:010d}-1")] if ended
                            else [session(numero=f"15_SE_{i:010d}-1")])],
            certifications=[{"code_rncp": f"RNCP{30000 + i % 3}"}],
        ))
    return items


def retitled(formation: Formation, intitule: str) -> Formation:
    return formation.model_copy(update={"intitule_formation": intitule})


def entry_of(formation: Formation, i: int = 1):
    return summarize(formation, origin=Origin("test", i), statut=Statut.VALIDEE, today=TODAY, settings=Settings(), geo=geo())


def tree(folder: Path) -> dict[str, str]:
    root = folder / "site" / SITE_DIR
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def rewritten(folder: Path, previous: Path) -> list[str]:
    """The search files of ``folder`` that are not the previous build's very files (hard links)."""
    root, before = folder / "site" / SITE_DIR, previous / "site" / SITE_DIR
    out = []
    for path in sorted(root.rglob("*")):
        if path.is_file():
            old = before / path.relative_to(root)
            if not old.exists() or not os.path.samefile(path, old):
                out.append(path.relative_to(root).as_posix())
    return out


# --------------------------------------------------------------------------
# The sink driven directly
# --------------------------------------------------------------------------


class Builds:
    """Full and incremental builds of the sink alone, in numbered folders under ``root``."""

    def __init__(self, root: Path, options: ShardOptions = ShardOptions()):
        self.root = root
        self.options = options
        self.count = 0
        self.made = 0  # formations analysed by the last build (the incremental one, after check())

    def full(self, items: list[Formation]) -> Path:
        return self._build(items, None, set())

    def incremental(self, items: list[Formation], previous: Path, changed: set[str]) -> Path:
        return self._build(items, previous, changed)

    def _build(self, items: list[Formation], previous: Optional[Path], changed: set[str]) -> Path:
        self.count += 1
        folder = self.root / str(self.count)
        folder.mkdir(parents=True)
        before = None
        if previous is not None:
            before = PreviousBuild(previous, frozenset(json.loads((previous / "refs.json").read_text())))
        sink = StaticSearchSink(SinkContext(folder, Settings(), TODAY, geo(), before), self.options)
        entries = []
        made = 0
        for i, formation in enumerate(items):
            entry = entry_of(formation, i + 1)
            entries.append(entry)
            if before is None or entry.ref in changed or entry.ref not in before.refs:
                sink.add(formation, entry)
                made += 1
            else:
                sink.keep(entry)
        sink.finish(Catalog.of(entries, TODAY))
        sink.wait()  # a full build's worker writes the files after finish()
        (folder / "refs.json").write_text(json.dumps(sorted(e.ref for e in entries)))
        self.made = made
        return folder

    def check(self, items: list[Formation], previous: Path, changed: set[str]) -> Path:
        """An incremental build of ``items`` from ``previous`` gives a full build's bytes."""
        incremental = self.incremental(items, previous, changed)
        made = self.made
        full = self.full(items)
        assert tree(incremental) == tree(full)
        self.made = made
        return incremental


@pytest.fixture
def builds(tmp_path) -> Builds:
    return Builds(tmp_path)


def test_one_changed_formation_gives_a_full_builds_bytes_and_rewrites_a_few_files(builds):
    items = catalogue()
    first = builds.full(items)
    changed = list(items)
    changed[17] = retitled(items[17], items[17].intitule_formation + " (modifiée)")
    second = builds.check(changed, first, {changed[17].numero})
    assert builds.made == 1  # only the changed formation was analysed
    files = rewritten(second, first)
    folders = {f.split("/")[0] for f in files}
    # Its terms' shards, its doc shard, the number shard of its Ref (its row), the page.
    assert "index.html" in files and "d" in folders and "t" in folders
    assert sum(f.startswith("d/") for f in files) == 1
    assert sum(f.startswith("n/") for f in files) == 1
    assert len(files) < 0.2 * len(tree(second)), files
    # The page finds the new title, and the rest as before.
    reader = ShardReader(second / "site")
    assert [r.ref for r in reader.search("modifiée")] == [changed[17].numero]


def test_added_and_removed_formations_give_a_full_builds_bytes(builds):
    items = catalogue()
    first = builds.full(items)
    added = items + [make_formation(numero="15_AF_0000000017B", intitule="Boulanger pâtissier")]
    second = builds.check(added, first, set())
    assert builds.made == 1
    removed = [f for i, f in enumerate(added) if i not in (3, 20)]
    third = builds.check(removed, second, set())
    # Added, removed and changed at once.
    mixed = [retitled(f, "Fleuriste décorateur") if i == 5 else f for i, f in enumerate(removed[1:])]
    mixed.append(make_formation(numero="15_AF_9999999999", intitule="Serrurier métallier"))
    builds.check(mixed, third, {mixed[5].numero})
    assert ShardReader(third / "site").search("15_AF_0000000003") == []


def test_a_chain_of_incremental_builds_stays_a_full_builds_bytes(builds):
    """Each build starts from the previous incremental one: the cache carries over."""
    items = catalogue()
    previous = builds.full(items)
    for step, i in enumerate((2, 11, 2, 30)):
        items = list(items)
        items[i] = retitled(items[i], f"{WORDS[step]} {WORDS[step + 5]} étape {step}")
        previous = builds.check(items, previous, {items[i].numero})


def test_archived_and_number_changes(builds):
    items = catalogue()
    first = builds.full(items)
    changed = list(items)
    # Archived now: its sessions ended. New action numero, another SIRET, another RNCP code.
    changed[6] = make_formation(numero=items[6].numero, intitule=items[6].intitule_formation, actions=[
        action(numero="15_SE_0000000006", sessions=[session("20240101", "20240601", numero="15_SE_0000000006-1")])])
    changed[9] = make_formation(numero=items[9].numero, intitule=items[9].intitule_formation,
                                actions=[action(numero="15_SE_NOUVEAU", sessions=[session(numero="15_SE_NOUVEAU-2")])],
                                org=organisme(siret=SIRET_VEIGNE, nom="Centre Val Formation", adresse=ADRESSE_TOURS),
                                certifications=[{"code_rncp": "RNCP99999"}])
    second = builds.check(changed, first, {changed[6].numero, changed[9].numero})
    reader = ShardReader(second / "site")
    assert [r.ref for r in reader.search("15_SE_NOUVEAU")] == [items[9].numero]
    assert [r.ref for r in reader.search("15_SE_0000000009")] == []
    assert [(r.ref, r.archived) for r in reader.search(items[6].numero)] == [(items[6].numero, True)]


def test_big_keys_and_split_prefixes_follow_the_changes(tmp_path):
    builds = Builds(tmp_path, ShardOptions(term_shard_bytes=300, big_key_codes=9, top_k=3, top_k_archived=1, max_pages=3))
    items = catalogue()
    first = builds.full(items)
    manifest = json.loads((first / "site" / SITE_DIR / "manifest.json").read_text())
    assert manifest["split"] and list((first / "site" / SITE_DIR / "n").glob("g*.json"))
    # Formations leave the big SIRET, a word floods a prefix, a term's pages change.
    changed = list(items)
    touched = set()
    for i in (0, 4, 8, 12):
        changed[i] = make_formation(numero=items[i].numero, intitule="Soudeur soudeur soudage soudure soudé",
                                    org=organisme(siret=SIRET_TOULOUSE), certifications=[{"code_rncp": "RNCP30000"}])
        touched.add(items[i].numero)
    second = builds.check(changed, first, touched)
    assert json.loads((second / "site" / SITE_DIR / "manifest.json").read_text())["split"] != manifest["split"]
    # And back.
    builds.check(items, second, touched)


def test_a_text_naming_a_number_makes_its_query_search_the_texts_too(builds):
    """``t`` of a number shard: the number queries whose own text search finds something."""
    items = catalogue()
    first = builds.full(items)
    shard = static.bucket_of("30001", json.loads((first / "site" / SITE_DIR / "manifest.json").read_text())["numeros"])

    def texted(folder: Path) -> list[str]:
        path = folder / "site" / SITE_DIR / "n" / f"{shard:x}.json"
        return json.loads(path.read_text())["t"] if path.exists() else []

    assert "30001" not in texted(first)
    changed = list(items)
    changed[3] = items[3].model_copy(update={"objectif_formation": "Préparer la certification 30001 du RNCP."})
    second = builds.check(changed, first, {items[3].numero})
    assert "30001" in texted(second)
    found = ShardReader(second / "site").search("30001", limit=50)
    assert [r.match for r in found][:1] == ["numero"] and items[3].numero in [r.ref for r in found if r.match == "texte"]
    builds.check(items, second, {items[3].numero})


def test_a_number_query_whose_words_meet_in_a_changed_text(builds, monkeypatch):
    """Its words were all indexed, apart: only the formations' postings change, not the vocabulary."""

    def every_shard_again(*args):
        raise AssertionError("the number shards should be updated, not written again")

    monkeypatch.setattr(static._Update, "_numbers_again", every_shard_again)
    items = catalogue()
    items[1] = items[1].model_copy(update={"objectif_formation": "Module AF de remise à niveau."})
    items[2] = items[2].model_copy(update={"objectif_formation": "Dossier 0000000005 du financeur."})
    first = builds.full(items)
    query = "AF_0000000005"  # the short form of the Ref 15_AF_0000000005
    buckets = json.loads((first / "site" / SITE_DIR / "manifest.json").read_text())["numeros"]
    path = Path("site") / SITE_DIR / "n" / f"{static.bucket_of(query, buckets):x}.json"
    assert query not in json.loads((first / path).read_text())["t"]
    changed = list(items)
    changed[7] = items[7].model_copy(update={"objectif_formation": "Voir AF 0000000005."})
    second = builds.check(changed, first, {items[7].numero})
    assert query in json.loads((second / path).read_text())["t"]
    found = ShardReader(second / "site").search(query)
    assert [(r.ref, r.match) for r in found] == [(items[5].numero, "numero"), (items[7].numero, "texte")]
    builds.check(items, second, {items[7].numero})


def test_the_number_of_number_shards_moves(tmp_path):
    """The shards' count is the power of 2 their weight needs: one more key may double it."""
    import marshal

    items = catalogue()
    weight = marshal.loads((Builds(tmp_path / "probe").full(items) / CACHE_DIR / "meta").read_bytes())["weight"]
    builds = Builds(tmp_path / "builds", ShardOptions(number_shard_bytes=-(-weight // 4)))
    first = builds.full(items)
    changed = list(items)
    changed[8] = make_formation(numero=items[8].numero, intitule=items[8].intitule_formation,
                                actions=[action(numero="15_SE_0000000008"), action(numero="15_SE_EN_PLUS")])
    second = builds.check(changed, first, {items[8].numero})
    numeros = [json.loads((f / "site" / SITE_DIR / "manifest.json").read_text())["numeros"] for f in (first, second)]
    assert numeros == [4, 8]
    assert [r.ref for r in ShardReader(second / "site").search("15_SE_EN_PLUS")] == [items[8].numero]


def test_an_average_length_that_moves_rescores_every_term(builds):
    items = catalogue(12)
    first = builds.full(items)
    changed = list(items)
    changed[1] = retitled(items[1], " ".join(WORDS * 3))  # the titles' average moves a lot
    second = builds.check(changed, first, {items[1].numero})
    before = json.loads((first / "site" / SITE_DIR / "manifest.json").read_text())["avg"]
    after = json.loads((second / "site" / SITE_DIR / "manifest.json").read_text())["avg"]
    assert before["intitule"] != after["intitule"] and before["texte"] == after["texte"]


def test_the_cache_is_private_and_linked_when_unchanged(builds):
    items = catalogue()
    first = builds.full(items)
    cache = first / CACHE_DIR
    assert (cache / "meta").is_file() and list((cache / "records").iterdir()) and list((cache / "terms").iterdir())
    assert not (first / "site" / SITE_DIR / ".cache").exists()
    second = builds.incremental(items, first, set())
    assert tree(second) == {**tree(first), "index.html": tree(second)["index.html"]}
    linked = [p for p in (second / CACHE_DIR).rglob("*") if p.is_file() and p.name != "meta"]
    assert linked and all(os.path.samefile(p, cache / p.relative_to(second / CACHE_DIR)) for p in linked)
    # Nothing of the previous build was written to: its files are as they were.
    assert tree(first) == tree(builds.full(items))


# --------------------------------------------------------------------------
# Through catalogue.build
# --------------------------------------------------------------------------


def run_build(content: Path, build_dir: Path, full: bool = False):
    report = build(BuildOptions(content=(content,), build_dir=build_dir, today=TODAY, full=full), Settings(),
                   sinks=["static-search"])
    assert report.errors == []
    return report


def test_build_twice_links_what_did_not_change(tmp_path):
    content = tmp_path / "content"
    content.mkdir()
    items = catalogue()
    write_lheo(items[:20], content / "a.xml")
    write_lheo(items[20:], content / "b.xml")
    build_dir = tmp_path / "build"
    run_build(content, build_dir)
    first = (build_dir / "current").resolve()

    changed = [retitled(f, f.intitule_formation + " bis") if i == 25 else f for i, f in enumerate(items)]
    write_lheo(changed[20:], content / "b.xml")
    report = run_build(content, build_dir)
    second = (build_dir / "current").resolve()
    assert report.incremental and second != first

    full_dir = tmp_path / "full"
    run_build(content, full_dir, full=True)
    assert tree(second) == tree((full_dir / "current").resolve())
    files = rewritten(second, first)
    assert sum(f.startswith("d/") for f in files) == 1 and len(files) < 15, files

    # A formation removed (the whole second file's last one).
    write_lheo(changed[20:-1], content / "b.xml")
    run_build(content, build_dir)
    shutil.rmtree(full_dir)
    run_build(content, full_dir, full=True)
    assert tree((build_dir / "current").resolve()) == tree((full_dir / "current").resolve())


def test_terms_sharing_a_page_file(tmp_path, monkeypatch):
    """Page files are named by the crc32 of the term: on a clash, two terms share one file."""
    monkeypatch.setattr(static, "page_file", lambda term, page: f"0000000{len(term) % 2}-{page}")
    builds = Builds(tmp_path, ShardOptions(top_k=2, top_k_archived=1, max_pages=3))
    items = catalogue()
    first = builds.full(items)
    shared = json.loads((first / "site" / SITE_DIR / "p" / "00000000-1.json").read_text())
    assert len(shared) > 1
    changed = list(items)
    changed[10] = retitled(items[10], "Soudeur chaudronnier tuyauteur")
    second = builds.check(changed, first, {items[10].numero})
    found = ShardReader(second / "site").search("soudeur chaudronnier")
    assert found and found[0].ref == items[10].numero


def test_a_term_whose_formations_stay_keeps_its_members_without_encoding_them(tmp_path, monkeypatch):
    """An intitulé that gets longer moves the scores of its terms, not which formations hold them:
    the b/ members of those terms stay the previous build's (not encoded again), and the bytes are a full build's."""
    builds = Builds(tmp_path, ShardOptions(top_k=3, top_k_archived=1, max_pages=3))
    items = catalogue()
    first = builds.full(items)
    members = first / "site" / SITE_DIR / "b" / f"{static.page_file('format', 0)}.json"
    assert "format" in json.loads(members.read_text())  # a term of every title, paged with its members
    changed = list(items)
    for i in (7, 22):
        changed[i] = retitled(items[i], items[i].intitule_formation + " formation")
    calls = []
    encode = static.encode_set
    monkeypatch.setattr(static, "encode_set", lambda docnums, n: calls.append(n) or encode(docnums, n))
    second = builds.incremental(changed, first, {items[7].numero, items[22].numero})
    assert calls == []
    monkeypatch.setattr(static, "encode_set", encode)
    assert tree(second) == tree(builds.full(changed))
    assert os.path.samefile(second / "site" / SITE_DIR / "b" / members.name, members)
    # A formation leaving the term (its title without the word): the members are encoded again.
    changed[7] = retitled(items[7], "Soudure")
    monkeypatch.setattr(static, "encode_set", lambda docnums, n: calls.append(n) or encode(docnums, n))
    third = builds.incremental(changed, second, {items[7].numero})
    assert calls
    monkeypatch.setattr(static, "encode_set", encode)
    assert tree(third) == tree(builds.full(changed))


def test_a_rebuild_takes_over_the_search_folder_and_cache_of_the_build_before_the_published_one(tmp_path):
    """From the third build on, the search folder and the cache of the build before the published one are
    renamed into the new build (not ~50,000 files linked one by one) and only what differs from the
    published build is moved aside and linked or written again: each build still gives a full build's
    bytes, the published build is never touched, and the older build's files left over are gone. Not
    when the two builds share at most half their files (after a full build, or formations added)."""
    from catalogue.build import BUILDS_DIR, PUBLISHED_MARK

    content = tmp_path / "content"
    content.mkdir()
    items = catalogue()
    build_dir = tmp_path / "build"
    write_lheo(items, content / "a.xml")
    run_build(content, build_dir)
    soudeur = make_formation(numero="15_AF_0000000900", intitule="Soudeur tuyauteur",
                             certifications=[{"code_rncp": "RNCP30001"}])
    versions = [
        [retitled(f, f.intitule_formation + " bis") if i == 25 else f for i, f in enumerate(items)],  # links, as before
        [retitled(f, "Maçon coffreur") if i == 3 else f for i, f in enumerate(items)],  # 25 back, 3 changed
        [f for i, f in enumerate(items) if i != 7] + [soudeur],  # formations added and removed: every file again
        [f for i, f in enumerate(items) if i != 7] + [retitled(soudeur, "Soudeur")],
        items,
    ]
    taken = 0
    for number, version in enumerate(versions):
        published = (build_dir / "current").resolve()
        older = [p for p in sorted((build_dir / BUILDS_DIR).iterdir()) if p.name < published.name and (p / PUBLISHED_MARK).exists()]
        inodes = [(older[-1] / sub).stat().st_ino for sub in ("site/" + SITE_DIR, CACHE_DIR)] if older else None
        left = {p.relative_to(older[-1] / "site" / SITE_DIR).as_posix() for p in (older[-1] / "site" / SITE_DIR).rglob("*")
                if p.is_file()} if older else set()
        before = tree(published)
        # (but for the full build's spare links, which the first rebuild takes over)
        cache_before = {p: p.read_bytes() for p in (published / CACHE_DIR).rglob("*")
                        if p.is_file() and static.SPARE_DIR not in p.relative_to(published / CACHE_DIR).parts}
        write_lheo(version, content / "a.xml")
        report = run_build(content, build_dir)
        assert report.incremental
        assert tree(published) == before  # the published build's files were not written to
        assert all(p.read_bytes() == data for p, data in cache_before.items())
        current = (build_dir / "current").resolve()
        full_dir = tmp_path / f"full{number}"
        run_build(content, full_dir, full=True)
        assert tree(current) == tree((full_dir / "current").resolve())
        if number == 3:
            # The published build (formations added and removed) rewrote most files: the older
            # build shares few with it, and moving them aside would cost more than linking.
            assert (current / "site" / SITE_DIR).stat().st_ino != inodes[0]
        elif inodes is not None:
            assert [(current / sub).stat().st_ino for sub in ("site/" + SITE_DIR, CACHE_DIR)] == inodes
            taken += 1
            # The files that did not change are the published build's very files (the older build's
            # copies were replaced by links); the older build's files this one lacks are gone (tree above).
            assert left
            if number in (1, 3):  # the same Refs: a few files written
                assert len(rewritten(current, published)) < len(tree(current)) / 2
    assert taken == 3
    # After a full build, the older build shares no file with the published one: nothing is taken over.
    run_build(content, build_dir, full=True)
    published = (build_dir / "current").resolve()
    older = [p for p in sorted((build_dir / BUILDS_DIR).iterdir()) if p.name < published.name and (p / PUBLISHED_MARK).exists()]
    folder = (older[-1] / "site" / SITE_DIR).stat().st_ino
    write_lheo(versions[0], content / "a.xml")
    run_build(content, build_dir)
    current = (build_dir / "current").resolve()
    assert (current / "site" / SITE_DIR).stat().st_ino != folder and not rewritten(current, published) == []
    run_build(content, tmp_path / "full_last", full=True)
    assert tree(current) == tree((tmp_path / "full_last" / "current").resolve())


def test_raw_members_give_each_value_as_written():
    """A kept term's value is copied from the previous file's text, not parsed and written again."""
    values = {
        "soudeur": static._dumps([{"c": 1, "p": 3}, [12.5, 4, 2, 6], [1.25e-05, 9]]),
        'clé "guillemets" \\ [crochet] {accolade} : ,': static._dumps([[3.0, 2]]),
        "é": json.dumps("b-_AZaz09"),
        "vide": static._dumps([]),
        "ligne": static._dumps({"k": {"A|B": [2, 4]}, "t": ["x"]}),
    }
    text = static._object_text(values)
    assert static._raw_members(text) == values
    assert {k: static._dumps(v) for k, v in json.loads(text).items()} == values
    assert static._raw_members("{}") == {}


def test_the_scorer_gives_bm25s_scores_to_the_bit():
    """The scorer computes bm25() without calling it (a signature's part shared by terms): same floats."""
    import random

    from catalogue.search.analysis import B, FIELD_BOOSTS, K1, bm25, idf, round_score

    rng = random.Random(5)
    n, averages = 1000, [3.2, 41.0, 7.5, 120.0]
    scorer = static._Scorer(n, averages, ShardOptions(top_k=10_000, top_k_archived=10_000))
    sigs = set()
    while len(sigs) < 300:
        tfs = [rng.choice([0, 0, 1, 2, 3, 17]) for _ in range(4)]
        if any(tfs):
            sigs.add((*tfs, *[rng.randint(1, 300) if tf else 0 for tf in tfs], 0))
    groups = sorted((sig, [i]) for i, sig in enumerate(sigs))
    df = [sum(1 for sig, _ in groups if sig[f]) for f in range(4)]
    boosts = [FIELD_BOOSTS[f] for f in static.FIELDS]
    expected = {}
    for sig, docs in groups:
        score = 0.0
        for f in range(4):
            if sig[f]:
                score += boosts[f] * bm25(sig[f], sig[4 + f], averages[f], idf(n, df[f]), B, K1)
        expected[docs[0] * 2] = round_score(score, 6)
    got = {code: score for group in json.loads(scorer.output(groups).entry) for code, score in static._ungroup([group])}
    assert got == expected
