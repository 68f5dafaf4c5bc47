"""The Whoosh index: its schema, the build sink ``"index"``, and opening it for search.

What ``BUILD/index`` holds (written in the build's staging folder, published
with the site in one rename):

- the Whoosh index: the scored text fields (:data:`~catalogue.search.analysis.FIELD_BOOSTS`)
  with a length column each, keyword filter fields, per-document columns
  (yes/no flags, latest session start) and the few stored fields a result shows;
- ``formations.sqlite``: each formation's whole JSON (zlib), by Ref, for
  ``/api/formations/{ref}``; every number a user may type (:func:`id_terms`) →
  Ref; every place of training with coordinates, for the radius filter; and the
  vocabulary (folded, unstemmed words → stem) searched with spelling tolerance.
  One file for 100,000 formations, written in one transaction.

Spelling tolerance works on the vocabulary rather than on a second, unstemmed
text field: a misspelt query word is matched (Levenshtein automaton, first
letter kept) against the folded words of the catalogue, and the stems of the
words found are searched in the scored fields. The same words are found as
with a "fuzzy" field, at no cost in postings, and the ranking stays BM25F.
Numbers live in SQLite rather than in Whoosh for the same reason: each is a
term of one posting, and Whoosh's cost per term is high at build time.
"""

from __future__ import annotations

import bisect
import json
import math
import os
import re
import sqlite3
import threading
import weakref
import zlib
from contextlib import closing
from pathlib import Path
from typing import Iterable, Optional

from whoosh import index as whoosh_index
from whoosh.codec.whoosh3 import W3Codec
from whoosh.columns import NumericColumn
from whoosh.fields import COLUMN, ID, KEYWORD, STORED, TEXT, Schema
from whoosh.automata.fsa import find_all_matches
from whoosh.automata.lev import levenshtein_automaton
from whoosh.query import Term

from ..build import SinkContext, register_sink
from ..catalog import Catalog, Entry
from ..model import Formation
from whoosh.util.numeric import byte_to_length, length_to_byte

from .analysis import B, FIELD_BOOSTS, K1, TermsTokenizer, analyse_both, field_texts, fold, normalise_number, stem

INDEX_DIR = "index"
STORE_FILE = "formations.sqlite"

#: Whoosh writer processes: with 2, the main process only pickles documents while
#: two sub-processes pool and write one segment each (``multisegment``), in
#: parallel with the rest of the build. See ``bench/search_api.py`` for numbers.
WRITER_PROCS = 2
#: Memory of each writer process's posting pool (Whoosh's estimate, MB). Past it,
#: Whoosh sorts runs to disk and merges them at commit, which doubles the
#: index's time; 1024 holds 100,000 formations without a run (about 700 MB of
#: real memory per process at 100,000).
WRITER_LIMITMB = 1024


#: Bits of the ``flags`` column.
FLAG_ARCHIVED, FLAG_CERTIFIANTE, FLAG_CPF, FLAG_DISTANCE, FLAG_ESP = 1, 2, 4, 8, 16
FLAGS = {"archived": FLAG_ARCHIVED, "certifiante": FLAG_CERTIFIANTE, "cpf": FLAG_CPF, "distance": FLAG_DISTANCE, "esp": FLAG_ESP}

#: Words of the vocabulary kept for spelling tolerance: letters only, at least this long
#: (a 5-letter query word at one edit meets words of 4 letters or more).
VOCABULARY_MIN_LENGTH = 4

EARTH_RADIUS_KM = 6371.0088


def make_schema() -> Schema:
    """A lean schema: postings only for what is searched (text, numbers, a few keyword filters).

    Text fields receive the terms of :func:`~catalogue.search.analysis.analyse`
    (analysed once by the sink), unstored and without positions; each has a
    ``len_<field>`` column holding its length as Whoosh stores it, which the query
    reads to compute BM25F. Yes/no filters and the latest session start are
    columns too (no postings), read once per opened index.
    """
    text = dict(analyzer=TermsTokenizer(), phrase=False)
    lengths = {f"len_{name}": COLUMN(NumericColumn("B")) for name in FIELD_BOOSTS}
    return Schema(
        ref=ID(stored=True, unique=True, sortable=True),
        # scored text (boosts applied at query time)
        intitule=TEXT(**text),
        organisme=TEXT(**text),
        ville=TEXT(**text),
        texte=TEXT(**text),
        **lengths,
        # filters (scorable only to keep a length column: at commit, Whoosh stats a file
        # per posting of a field without one)
        regions=KEYWORD(commas=False, scorable=True),
        departements=KEYWORD(commas=False, scorable=True),
        financeurs=KEYWORD(commas=False, scorable=True),
        flags=COLUMN(NumericColumn("B")),
        #: Latest session start, AAAAMMJJ: "a session starts on or after D" is debut_max >= D.
        debut_max=COLUMN(NumericColumn("I")),
        # shown in results
        titre=STORED(),
        nom=STORED(),
        lieu=STORED(),  # (ville, codepostal) of the first place
        datemaj=STORED(),
        archived=STORED(),
    )


def flags_of(entry: Entry) -> int:
    return (
        FLAG_ARCHIVED * entry.archived
        | FLAG_CERTIFIANTE * entry.certifiante
        | FLAG_CPF * entry.eligible_cpf
        | FLAG_DISTANCE * entry.a_distance
        | FLAG_ESP * entry.entrees_sorties_permanentes
    )


def id_terms(entry: Entry) -> list[str]:
    """Every number a user may type to find this formation, normalised."""
    ids = {entry.ref}
    ids.update(ref_without_prefix(entry.ref))
    ids.update(entry.action_numeros)
    ids.update(entry.session_numeros)
    for action, session in entry.action_sessions:
        if action:
            ids.add(f"{entry.ref}|{action}")
            if session:
                ids.add(f"{entry.ref}|{action}|{session}")
    ids.add(entry.siret)
    ids.update(f"RNCP{code}" for code in entry.rncp)
    return sorted(normalise_number(i) for i in ids if i)


def ref_without_prefix(ref: str) -> list[str]:
    """``15_AF_0000910001`` → ``AF_0000910001`` and ``0000910001``."""
    parts = ref.split("_", 2)
    if len(parts) < 2 or not parts[1]:
        return []
    result = [ref.split("_", 1)[1]]
    if len(parts) == 3 and parts[1].isalpha() and parts[2]:
        result.append(parts[2])
    return result


def document(formation: Formation, entry: Entry, vocabulary: Optional[set[str]] = None) -> dict:
    """The Whoosh document of a formation; its words of :data:`VOCABULARY_MIN_LENGTH` letters or
    more go into ``vocabulary`` when given."""
    fields: dict[str, object] = {}
    for name, text in field_texts(formation, entry).items():
        folded, stems = analyse_both(text)
        fields[name] = " ".join(stems)
        fields[f"len_{name}"] = length_to_byte(len(stems))
        if vocabulary is not None:
            vocabulary.update(w for w in folded if len(w) >= VOCABULARY_MIN_LENGTH and w.isalpha())
    place = entry.place
    return dict(
        ref=entry.ref,
        **fields,
        regions=" ".join(entry.regions),
        departements=" ".join(entry.departements),
        financeurs=" ".join(entry.financeurs),
        flags=flags_of(entry),
        debut_max=int(max(entry.debuts)) if entry.debuts else 0,
        archived=entry.archived,
        titre=entry.intitule,
        nom=entry.organisme,
        lieu=(place.ville, place.codepostal) if place else (None, None),
        datemaj=entry.datemaj,
    )


class LeanCodec(W3Codec):
    """Whoosh's codec without per-block length statistics.

    Whoosh uses them only to skip blocks in its own top-k scoring, which the
    query does not use (it computes BM25F from the postings); collecting them
    reads a document length back for every posting at commit, a quarter of the
    commit's time.
    """

    length_stats = False


class IndexSink:
    """Streams every published formation into one Whoosh writer and the formation store."""

    def __init__(self, context: SinkContext):
        self.folder = context.staging / INDEX_DIR
        self.folder.mkdir(parents=True, exist_ok=True)
        ix = whoosh_index.create_in(str(self.folder), make_schema())
        options = dict(limitmb=WRITER_LIMITMB, codec=LeanCodec())
        if WRITER_PROCS > 1:
            self.writer = ix.writer(procs=WRITER_PROCS, multisegment=True, **options)
        else:
            self.writer = ix.writer(**options)
        # A build that fails never calls finish(): Whoosh's writer processes would wait
        # for work forever, and Python waits for them at exit. Stop them then.
        self._stop_tasks = weakref.finalize(self, _stop_writer_tasks, getattr(self.writer, "tasks", []))
        self.store = FormationStoreWriter(self.folder / STORE_FILE)
        self.vocabulary: set[str] = set()

    def add(self, formation: Formation, entry: Entry) -> None:
        self.writer.add_document(**document(formation, entry, self.vocabulary))
        self.store.add(formation, entry)

    def finish(self, catalog: Catalog) -> None:
        self.writer.commit()
        self._stop_tasks.detach()
        self.store.add_vocabulary(self.vocabulary)
        self.store.close()


    def abort(self) -> None:
        """The build failed: stop the writer processes now rather than at exit."""
        self._stop_tasks()
        self.store.discard()


def _stop_writer_tasks(tasks: list) -> None:
    for task in tasks:
        if task.is_alive():
            task.terminate()
    for task in tasks:
        task.join(timeout=10)


@register_sink("index")
def index_sink(context: SinkContext) -> IndexSink:
    return IndexSink(context)


# --------------------------------------------------------------------------
# The formation store: whole JSON by Ref, and the places with coordinates
# --------------------------------------------------------------------------


class FormationStoreWriter:
    def __init__(self, path: Path):
        self.db = sqlite3.connect(path)
        self.db.executescript(
            """
            PRAGMA journal_mode = OFF;
            PRAGMA synchronous = OFF;
            CREATE TABLE formation (ref TEXT NOT NULL, json BLOB NOT NULL);
            CREATE TABLE place (ref TEXT NOT NULL, ville TEXT, codepostal TEXT,
                                latitude REAL NOT NULL, longitude REAL NOT NULL);
            CREATE TABLE vocabulary (word TEXT PRIMARY KEY, stem TEXT NOT NULL) WITHOUT ROWID;
            CREATE TABLE number (id TEXT NOT NULL, ref TEXT NOT NULL);
            """
        )
        self.db.execute("BEGIN")

    def add(self, formation: Formation, entry: Entry) -> None:
        blob = zlib.compress(formation.model_dump_json(exclude_none=True).encode(), 1)
        self.db.execute("INSERT INTO formation VALUES (?, ?)", (entry.ref, blob))
        self.db.executemany("INSERT INTO number VALUES (?, ?)", [(number, entry.ref) for number in id_terms(entry)])
        self.db.executemany(
            "INSERT INTO place VALUES (?, ?, ?, ?, ?)",
            [
                (entry.ref, p.ville, p.codepostal, p.latitude, p.longitude)
                for p in entry.places
                if p.latitude is not None and p.longitude is not None
            ],
        )

    def add_vocabulary(self, words: Iterable[str]) -> None:
        """The folded, unstemmed words searched with spelling tolerance, and their stems."""
        self.db.executemany("INSERT INTO vocabulary VALUES (?, ?)", ((w, stem(w)) for w in sorted(words)))

    def discard(self) -> None:
        if self.db is not None:
            self.db.close()
            self.db = None

    def close(self) -> None:
        if self.db is not None:
            # One sort at the end rather than a B-tree insert per row.
            self.db.execute("CREATE UNIQUE INDEX formation_ref ON formation (ref)")
            self.db.execute("CREATE INDEX number_id ON number (id)")
            self.db.commit()
            self.db.close()
            self.db = None


# --------------------------------------------------------------------------
# Opening the published index
# --------------------------------------------------------------------------


class SearchError(ValueError):
    """A search that cannot be answered as asked; the message is for the user (French)."""


class IndexMissing(SearchError):
    """No published index under the build folder."""


class Places:
    """The places of training with coordinates, for the radius filter.

    Towns are found by folded name or postal code; points are sorted by latitude
    so that a radius only looks at a band of them.
    """

    def __init__(self, rows: Iterable[tuple[str, Optional[str], Optional[str], float, float]]):
        self.by_town: dict[str, list[tuple[float, float]]] = {}
        points = []
        for ref, ville, codepostal, latitude, longitude in rows:
            if ville:
                self.by_town.setdefault(town_key(ville), []).append((latitude, longitude))
            if codepostal:
                self.by_town.setdefault(codepostal, []).append((latitude, longitude))
            points.append((latitude, longitude, ref))
        points.sort()
        self.latitudes = [p[0] for p in points]
        self.points = points

    def centre(self, town: str) -> Optional[tuple[float, float]]:
        """The centroid of the places of a town (name or postal code), or ``None`` when unknown."""
        found = self.by_town.get(town_key(town)) or self.by_town.get("".join(town.split()).upper())
        if not found:
            return None
        return sum(p[0] for p in found) / len(found), sum(p[1] for p in found) / len(found)

    def refs_within(self, latitude: float, longitude: float, rayon_km: float) -> set[str]:
        band = rayon_km / 110.574  # km per degree of latitude
        lo = bisect.bisect_left(self.latitudes, latitude - band)
        hi = bisect.bisect_right(self.latitudes, latitude + band)
        return {
            ref
            for lat, lon, ref in self.points[lo:hi]
            if haversine_km(latitude, longitude, lat, lon) <= rayon_km
        }


def town_key(name: str) -> str:
    """``Saint-Étienne``, ``ST ETIENNE``... → ``saint etienne``: folded words, ``st`` read ``saint``."""
    words = [fold(w) for w in re.findall(r"[^\W_]+", name.lower())]
    return " ".join("saint" if w == "st" else "sainte" if w == "ste" else w for w in words)


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    dphi = phi2 - phi1
    dlmb = math.radians(lon2 - lon1)
    a = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlmb / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))


class SearchIndex:
    """An opened, published index: the Whoosh index, its store, and what is read once from them.

    Per-document columns (Ref, flags, latest start) are read on first use and
    kept for the lifetime of this object, i.e. of the published build.
    """

    def __init__(self, path: Path):
        self.path = path  # the real folder (not the symlink)
        self.ix = whoosh_index.open_dir(str(path))
        self.generation = self.ix.latest_generation()
        self._local = threading.local()
        self._lock = threading.Lock()
        self._docsets: dict[tuple, frozenset[int]] = {}
        self._columns: dict[str, list] = {}
        self._docnums: Optional[dict[str, int]] = None
        self._places: Optional[Places] = None
        self._vocabulary: Optional[tuple[list[str], list[str]]] = None

    def is_current(self) -> bool:
        """Whether the folder still holds the generation opened (a rebuild in place makes a new one)."""
        try:
            return self.ix.latest_generation() == self.generation
        except OSError:
            return False

    def searcher(self):
        """A searcher for this thread (Whoosh searchers are not shared between threads)."""
        searcher = getattr(self._local, "searcher", None)
        if searcher is None:
            searcher = self._local.searcher = self.ix.searcher()
        return searcher

    def column(self, name: str) -> list:
        """The values of a column field, by docnum."""
        values = self._columns.get(name)
        if values is None:
            reader = self.searcher().reader()
            column = reader.column_reader(name)
            values = self._columns[name] = [column[d] for d in range(reader.doc_count_all())]
        return values

    def norms(self, fieldname: str) -> list[float]:
        """Per docnum, BM25's length normalisation of a text field: ``K1 * (1 - B + B * len / avglen)``."""
        key = f"norm_{fieldname}"
        values = self._columns.get(key)
        if values is None:
            reader = self.searcher().reader()
            avg = (reader.field_length(fieldname) / reader.doc_count_all()) if reader.doc_count_all() else 0
            avg = avg or 1
            values = [K1 * ((1 - B) + B * byte_to_length(b) / avg) for b in self.column(f"len_{fieldname}")]
            self._columns[key] = values
        return values

    def refs(self) -> list[str]:
        """Ref of each docnum."""
        return self.column("ref")

    def ref_order(self) -> list[int]:
        """Every docnum, in Ref order."""
        order = self._columns.get("ref_order")
        if order is None:
            refs = self.refs()
            order = self._columns["ref_order"] = sorted(range(len(refs)), key=refs.__getitem__)
        return order

    def docnums(self) -> dict[str, int]:
        """Ref → docnum."""
        if self._docnums is None:
            self._docnums = {ref: d for d, ref in enumerate(self.refs())}
        return self._docnums

    def _cached(self, key: tuple, compute) -> frozenset[int]:
        result = self._docsets.get(key)
        if result is None:
            result = frozenset(compute())
            with self._lock:
                if len(self._docsets) > 256:
                    self._docsets.clear()
                self._docsets[key] = result
        return result

    def term_docs(self, fieldname: str, text: str) -> frozenset[int]:
        """Docnums holding a term of a keyword field (cached)."""
        return self._cached((fieldname, text), lambda: self.searcher().docs_for_query(Term(fieldname, text)))

    def flag_docs(self, flag: int, value: bool) -> frozenset[int]:
        """Docnums whose ``flags`` column has ``flag`` set (``value``) or not (cached)."""
        flags = self.column("flags")
        return self._cached(("flags", flag, value), lambda: (d for d, f in enumerate(flags) if bool(f & flag) == value))

    def starting_from(self, day: int) -> frozenset[int]:
        """Docnums with a session starting on ``day`` (AAAAMMJJ) or later (cached)."""
        debuts = self.column("debut_max")
        return self._cached(("debut_max", day), lambda: (d for d, v in enumerate(debuts) if v >= day))

    def places(self) -> Places:
        """The places of training with coordinates."""
        if self._places is None:
            with closing(self.connect()) as db:
                rows = db.execute("SELECT ref, ville, codepostal, latitude, longitude FROM place").fetchall()
            self._places = Places(rows)
        return self._places

    def near(self, town: str, rayon_km: float) -> Optional[frozenset[int]]:
        """Docnums with a place within ``rayon_km`` of ``town`` (cached), ``None`` for an unknown town."""
        places = self.places()
        centre = places.centre(town)
        if centre is None:
            return None
        docnums = self.docnums()
        return self._cached(
            ("near", centre, rayon_km),
            lambda: (docnums[r] for r in places.refs_within(*centre, rayon_km) if r in docnums),
        )

    def vocabulary(self) -> tuple[list[str], list[str]]:
        """The folded words of the indexed texts, sorted, and their stems."""
        if self._vocabulary is None:
            with closing(self.connect()) as db:
                rows = db.execute("SELECT word, stem FROM vocabulary ORDER BY word").fetchall()
            self._vocabulary = ([r[0] for r in rows], [r[1] for r in rows])
        return self._vocabulary

    def words_within(self, word: str, maxdist: int, prefix: int) -> list[str]:
        """Vocabulary words within ``maxdist`` edits (Levenshtein) of ``word``, sharing its first ``prefix`` letters."""
        words, _ = self.vocabulary()
        dfa = levenshtein_automaton(word, maxdist, prefix).to_dfa()

        def first_at_least(key: str) -> Optional[str]:
            i = bisect.bisect_left(words, key)
            return words[i] if i < len(words) else None

        return list(find_all_matches(dfa, first_at_least))

    def stems_within(self, word: str, maxdist: int, prefix: int) -> list[str]:
        """Stems of the vocabulary words near ``word``."""
        words, stems = self.vocabulary()
        return sorted({stems[bisect.bisect_left(words, w)] for w in self.words_within(word, maxdist, prefix)})

    def connect(self) -> sqlite3.Connection:
        return sqlite3.connect(f"file:{self.path / STORE_FILE}?mode=ro", uri=True, check_same_thread=False)

    def store(self) -> sqlite3.Connection:
        """This thread's read-only connection to the formation store."""
        db = getattr(self._local, "store", None)
        if db is None:
            db = self._local.store = self.connect()
        return db

    def formation_bytes(self, ref: str) -> Optional[bytes]:
        """The whole formation as JSON (UTF-8), as stored at build time, or ``None`` for an unknown Ref."""
        row = self.store().execute("SELECT json FROM formation WHERE ref = ?", (ref,)).fetchone()
        return zlib.decompress(row[0]) if row else None

    def formation_json(self, ref: str) -> Optional[dict]:
        data = self.formation_bytes(ref)
        return json.loads(data) if data is not None else None

    def number_docs(self, numbers: list[str]) -> set[int]:
        """Docnums of the formations holding one of these numbers (normalised: :func:`id_terms`)."""
        if not numbers:
            return set()
        marks = ",".join("?" * len(numbers))
        rows = self.store().execute(f"SELECT DISTINCT ref FROM number WHERE id IN ({marks})", numbers).fetchall()
        docnums = self.docnums()
        return {docnums[ref] for (ref,) in rows if ref in docnums}


_opened: dict[str, SearchIndex] = {}
_opened_lock = threading.Lock()


def open_index(build_dir: Path) -> SearchIndex:
    """The published index of ``build_dir``, opened once per published build.

    ``build_dir/index`` is re-resolved on every call: when a new build has been
    published (the link points elsewhere, or the index folder has a new
    generation), the new index is opened and the old one forgotten (its files
    stay readable by searches still running on it).
    """
    link = Path(build_dir) / INDEX_DIR
    real = Path(os.path.realpath(link))
    key = os.path.realpath(build_dir)
    current = _opened.get(key)
    if current is not None and current.path == real and current.is_current():
        return current
    with _opened_lock:
        current = _opened.get(key)
        if current is None or current.path != real or not current.is_current():
            if not whoosh_index.exists_in(str(real)):
                raise IndexMissing(f"{link} : aucun index de recherche ; lancez « catalogue build » d'abord")
            current = _opened[key] = SearchIndex(real)
    return current
