"""The Whoosh index: its schema, the build sink ``"index"``, and opening it for search.

What ``BUILD/index`` holds (written in the build's staging folder, published
with the site in one rename):

- the Whoosh index: the scored text fields (:data:`~catalogue.search.analysis.FIELD_BOOSTS`)
  with a length column each, keyword filter fields, per-document columns
  (yes/no flags, latest session start) and the few stored fields a result shows;
- ``formations.sqlite``: each formation's whole JSON (zlib), by Ref, for
  ``/api/formations/{ref}``; every number a user may type (:func:`id_terms`) →
  Ref; every place of training with coordinates, for the radius filter; and the
  vocabulary (folded, unstemmed words → stem, and how many formations hold
  each) searched with spelling tolerance. One file for 100,000 formations,
  written in one transaction (by a process of its own in a full build: :class:`StoreProcess`).

An incremental build starts from the previous build's index rather than from
nothing (:class:`IndexSink`): each document keeps what it holds in its ``terms``
column, so that the next build can take it out exactly, and the answers are
those of a full build of the same formations (:class:`Excess`).

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
import errno
import functools
import json
import math
import multiprocessing
import os
import pickle
import queue
import re
import shutil
import sqlite3
import threading
import weakref
import zlib
from collections import Counter, _count_elements
from contextlib import closing
from pathlib import Path
from typing import Iterable, Iterator, Optional

from whoosh import index as whoosh_index
from whoosh.codec.whoosh3 import LENGTHS_COLUMN, W3Codec, W3PerDocWriter
from whoosh.index import TOC
from whoosh.multiproc import MpWriter, SubWriterTask
from whoosh.reading import SegmentReader
from whoosh.writing import IndexingError, SegmentWriter
from whoosh.columns import NumericColumn, VarBytesColumn
from whoosh.analysis import KeywordAnalyzer
from whoosh.fields import COLUMN, ID, KEYWORD, STORED, TEXT, Schema
from whoosh.formats import Frequency
from whoosh.automata.fsa import find_all_matches
from whoosh.automata.lev import levenshtein_automaton
from whoosh.query import Term
from whoosh.util import random_name
from zlib_ng import zlib_ng as deflate

from ..build import PreviousBuild, SinkContext, register_sink
from ..catalog import Catalog, Entry
from ..incremental import link_file
from ..model import Formation
from whoosh.system import pack_uint
from whoosh.util.numeric import length_to_byte

from .analysis import FIELD_BOOSTS, TermsTokenizer, analyse_both, field_texts, fold, normalise_number, stem

INDEX_DIR = "index"
STORE_FILE = "formations.sqlite"
#: Whoosh's name for the index in its folder (its default): files ``_MAIN_<n>.toc`` and ``MAIN_<id>.seg``.
WHOOSH_INDEX_NAME = "MAIN"

#: Whoosh writer processes: with 2, the main process only pickles documents while
#: two sub-processes pool and write the segments, in parallel with the rest of the
#: build. See ``bench/search_api.py`` for numbers.
WRITER_PROCS = 2
#: Documents per segment of a writer process (see :class:`SegmentedTask`): what bounds its
#: memory. At 100,000 formations, with the index sink alone: 12,500 gives a peak of 1.0 GB for
#: the build (sum of PSS; 0.33 GB per writer process) and 9 segments; one segment per process
#: gave 2.5 GB (1.1 GB per process), and no faster: its segments were all written at the end.
SEGMENT_DOCS = 12_500
#: Memory of each writer process's posting pool (Whoosh's estimate, MB). Past it, Whoosh
#: sorts runs to disk and merges them when the segment is written, which costs more time
#: than it saves memory (limitmb 256 instead of 1024 without :data:`SEGMENT_DOCS`: 1.1 GB
#: but +22 s at 100,000). :data:`SEGMENT_DOCS` documents stay well below it.
WRITER_LIMITMB = 1024
#: The writer of an incremental build: one process (the changed formations only); its pool
#: holds a merge of :data:`SEGMENT_DOCS` documents without sorting runs to disk.
UPDATE_LIMITMB = 256
#: An incremental build updates the index and the store in a process of its own (:class:`UpdateProcess`),
#: in parallel with the rest of the build; documents per message to it after the first.
UPDATE_PROCESS = True
UPDATE_BATCH = 32
#: A full build writes ``formations.sqlite`` in a process of its own (:class:`StoreProcess`):
#: compressing each formation's JSON and inserting its rows cost the main process about
#: half of what the index sink costs it; it is the build's bottleneck.
STORE_PROCESS = True
#: Formations per message to that process, and messages waiting at most (bounds memory).
STORE_BATCH = 128
STORE_QUEUE = 16
#: Each formation's JSON is compressed with a preset dictionary: the end of the JSON of the
#: first formations written (kept in the store's ``meta`` table, and used by the incremental
#: builds that update the store). Formations share their keys and much of their wording: the
#: store is about two fifths smaller than compressed alone (copied faster by incremental
#: builds), and compressing is no slower.
ZDICT_FORMATIONS = 16
ZDICT_SIZE = 32_768
#: Merging in incremental builds (see :func:`segments_to_merge`): segments whose live documents
#: are within the same power of MERGE_FACTOR form a tier, merged once it has MERGE_FACTOR of them...
MERGE_FACTOR = 8
#: ... and a segment is rewritten once this share of its documents are deleted.
MAX_DELETED_SHARE = 0.3


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
    text = dict(analyzer=TermsTokenizer())
    lengths = {f"len_{name}": COLUMN(NumericColumn("B")) for name in FIELD_BOOSTS}
    return Schema(
        ref=ID(stored=True, unique=True, sortable=True),
        # scored text (boosts applied at query time)
        intitule=AnalysedText(**text),
        organisme=AnalysedText(**text),
        ville=AnalysedText(**text),
        texte=AnalysedText(**text),
        **lengths,
        #: What the scored fields hold (:class:`IndexedTerms`), read by later incremental builds.
        terms=COLUMN(VarBytesColumn()),
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


class AnalysedText(TEXT):
    """A text field without positions, given the terms of :func:`~catalogue.search.analysis.analyse`:
    as a sequence (:func:`document_of`; :class:`LeanSegmentWriter` counts them itself), or
    joined by spaces (:class:`TermsTokenizer`).

    Whoosh would run the tokenizer, a token object per term, and its frequency
    format over them: a quarter of its writer processes' time. The postings are
    counted here instead, as the format counts them: each distinct term once,
    in the order first met, with its frequency, its weight (the frequency, every
    token's boost being 1) and the frequency packed as the format stores it.
    """

    def __init__(self, **kwargs):
        super().__init__(phrase=False, **kwargs)

    def index(self, value, **kwargs):
        """``value``: the terms joined by spaces, or the sequence of them (what :func:`document_of` gives)."""
        boost = self.format.field_boost
        terms = value.split() if isinstance(value, str) else value
        return [(term.encode(), freq, freq * boost, pack_uint(freq)) for term, freq in Counter(terms).items()]


def flags_of(entry: Entry) -> int:
    return (
        FLAG_ARCHIVED * entry.archived
        | FLAG_CERTIFIANTE * entry.certifiante
        | FLAG_CPF * entry.eligible_cpf
        | FLAG_DISTANCE * entry.a_distance
        | FLAG_ESP * entry.entrees_sorties_permanentes
    )


def id_terms(entry: Entry) -> list[str]:
    """Every number a user may type to find this formation, normalised.

    The index and the static search both ask, one after the other, for the same
    entry (an immutable one): the last answer is kept.
    """
    last, terms = _last_id_terms[0]
    if last is entry:
        return list(terms)
    result = _id_terms(entry)
    _last_id_terms[0] = (entry, tuple(result))
    return result


#: The last entry :func:`id_terms` was asked about, and its answer (one tuple: read at once).
_last_id_terms: list[tuple] = [(None, ())]


def _id_terms(entry: Entry) -> list[str]:
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
    ids.discard(None)
    ids.discard("")
    if all(map(_NORMAL_NUMBER.fullmatch, ids)):
        # Already as normalise_number() makes them (the usual case): no call per number.
        return sorted(ids)
    return sorted(normalise_number(i) for i in ids)


#: A number :func:`normalise_number` leaves as it is: no blank, no lowercase letter, no ``Ref :``
#: label (it has a colon): nothing but ASCII capitals, digits and a few marks.
_NORMAL_NUMBER = re.compile(r"[0-9A-Z_|./\-]+")


def ref_without_prefix(ref: str) -> list[str]:
    """``15_AF_0000910001`` → ``AF_0000910001`` and ``0000910001``."""
    parts = ref.split("_", 2)
    if len(parts) < 2 or not parts[1]:
        return []
    result = [ref.split("_", 1)[1]]
    if len(parts) == 3 and parts[1].isalpha() and parts[2]:
        result.append(parts[2])
    return result


#: What the build's process sends the index's writers of a formation (:func:`index_row`): the
#: texts of the scored fields, not yet analysed, and the other fields' values, in a tuple.
IndexRow = tuple


def index_row(formation: Formation, entry: Entry) -> IndexRow:
    """What the writers need of a formation to make its document (:func:`document_of`).

    The build's process, the bottleneck of a full build, only gathers the texts: the
    analysis runs where the document is written (the writer processes, the update process),
    and a tuple of plain values pickles faster than a document's dict.
    """
    place = entry.place
    return (
        entry.ref,
        tuple(map(field_texts(formation, entry).__getitem__, _FIELD_NAMES)),
        " ".join(entry.regions),
        " ".join(entry.departements),
        " ".join(entry.financeurs),
        flags_of(entry),
        int(max(entry.debuts)) if entry.debuts else 0,
        entry.archived,
        entry.intitule,
        entry.organisme,
        (place.ville, place.codepostal) if place else (None, None),
        entry.datemaj,
    )


def document_of(row: IndexRow) -> tuple[dict, "IndexedTerms"]:
    """The Whoosh document of an :func:`index_row`, and the terms it holds (also in its ``terms`` column).

    The scored fields get their terms as a tuple (:class:`AnalysedText` counts them).
    """
    ref, texts, regions, departements, financeurs, flags, debut_max, archived, titre, nom, lieu, datemaj = row
    doc: dict[str, object] = {"ref": ref}
    lengths: list[int] = []
    words: list[list[str]] = []
    found: set[str] = set()
    for name, text in zip(_FIELD_NAMES, texts):
        folded, stems = analyse_both(text)
        count = len(stems)
        doc[name] = stems
        doc[_LENGTH_FIELDS[name]] = _LENGTH_BYTES[count] if count < len(_LENGTH_BYTES) else length_to_byte(count)
        lengths.append(count)
        distinct = list(dict.fromkeys(folded))
        words.append(distinct)
        found.update(distinct)
    terms = IndexedTerms(lengths, words, vocabulary_of(found))
    doc.update(
        terms=terms.to_bytes(),
        regions=regions,
        departements=departements,
        financeurs=financeurs,
        flags=flags,
        debut_max=debut_max,
        archived=archived,
        titre=titre,
        nom=nom,
        lieu=lieu,
        datemaj=datemaj,
    )
    return doc, terms


_FIELD_NAMES = tuple(FIELD_BOOSTS)
_LENGTH_FIELDS = {name: f"len_{name}" for name in FIELD_BOOSTS}
#: :func:`length_to_byte` of the usual lengths, looked up rather than bisected per field.
_LENGTH_BYTES = [length_to_byte(n) for n in range(4096)]


def is_vocabulary_word(word: str) -> bool:
    """Whether a folded word goes into the vocabulary searched with spelling tolerance."""
    return len(word) >= VOCABULARY_MIN_LENGTH and word.isalpha()


def vocabulary_of(found: set[str]) -> set[str]:
    """The vocabulary words (:func:`is_vocabulary_word`) among a document's distinct folded words.

    A catalogue repeats the same few tens of thousands of words: each is judged once,
    and a document's words are then sorted out by set operations.
    """
    new = found - _judged
    if new:
        if len(_judged) >= _JUDGED_LIMIT:
            _judged.clear()
            _vocabulary_words.clear()
            new = found
        _judged.update(new)
        _vocabulary_words.update(filter(is_vocabulary_word, new))
    return found & _vocabulary_words


#: Folded words judged so far, and those of them that are vocabulary words (emptied past the limit).
_judged: set[str] = set()
_vocabulary_words: set[str] = set()
_JUDGED_LIMIT = 500_000


class IndexedTerms:
    """What a document holds in the scored fields, kept in its ``terms`` column for later builds.

    Per field (:data:`FIELD_BOOSTS` order): the number of terms (the length
    BM25 uses) and the distinct folded words, from which come the distinct
    stems (the terms) and the vocabulary words. When the document is deleted,
    they say what it still counts in Whoosh's statistics (:class:`Excess`) and
    which vocabulary words it held.
    """

    __slots__ = ("lengths", "words", "vocabulary")

    def __init__(self, lengths: list[int], words: list[list[str]], vocabulary: Optional[set[str]] = None):
        self.lengths = lengths
        self.words = words
        if vocabulary is None:
            vocabulary = {w for field in words for w in field if is_vocabulary_word(w)}
        self.vocabulary = vocabulary

    def to_bytes(self) -> bytes:
        return "\n".join([" ".join(map(str, self.lengths)), *(" ".join(field) for field in self.words)]).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> "IndexedTerms":
        lengths, *fields = data.decode().split("\n")
        return cls([int(n) for n in lengths.split()], [field.split() for field in fields])

    def stems(self) -> list[set[str]]:
        """Each field's distinct terms, as :func:`~catalogue.search.analysis.analyse` makes them."""
        return [{s for s in map(stem, field) if len(s) >= 2} for field in self.words]


class LeanCodec(W3Codec):
    """Whoosh's codec without per-block length statistics.

    Whoosh uses them only to skip blocks in its own top-k scoring, which the
    query does not use (it computes BM25F from the postings); collecting them
    reads a document length back for every posting at commit, a quarter of the
    commit's time.
    """

    length_stats = False


# --------------------------------------------------------------------------
# The sink
# --------------------------------------------------------------------------


@register_sink("index")
class IndexSink:
    """Streams the published formations into the Whoosh index and the formation store.

    A full build (``context.previous`` is None) writes everything, with
    :data:`WRITER_PROCS` writer processes, and the store's process
    (:class:`StoreProcess`): this process only gathers each formation's texts and values
    (:func:`index_row`) and its store rows (:func:`store_rows`); the writer processes analyse
    the texts. An incremental build starts from the previous build's index (:class:`IndexUpdate`),
    in a process forked when the sinks open (:class:`UpdateProcess`), which analyses the changed
    formations' texts.
    ``keep()`` has nothing to do. :class:`Excess` says why the answers are those of a full build.
    """

    def __init__(self, context: SinkContext):
        self.previous = context.previous
        self.folder = context.staging / INDEX_DIR
        self.folder.mkdir(parents=True, exist_ok=True)
        self.writer = None
        self.store: Optional[FormationStoreWriter | StoreProcess] = None
        #: Vocabulary words → formations holding them (full build).
        self.word_counts: Counter[str] = Counter()
        self._stop_tasks = None
        #: An incremental build's update (:class:`IndexUpdate`), or its process (:class:`UpdateProcess`).
        self.update: Optional[IndexUpdate | UpdateProcess] = None
        #: Whether an incremental build gave the update a formation.
        self.added = False
        self._waiting = False  # finish() told the update to commit; wait() has not yet seen it done
        if self.previous is None:
            self._start_full()
        else:
            check_previous(self.previous)
            update = IndexUpdate(self.previous.folder / INDEX_DIR, self.previous.refs, self.folder)
            self.update = UpdateProcess(update) if UPDATE_PROCESS else update

    def _start_full(self) -> None:
        ix = whoosh_index.create_in(str(self.folder), make_schema())
        options = dict(limitmb=WRITER_LIMITMB, codec=LeanCodec())
        if WRITER_PROCS > 1:
            self.writer = SegmentedMpWriter(ix, procs=WRITER_PROCS, **options)
        else:
            self.writer = ix.writer(**options)
        # A build that fails never calls finish(): Whoosh's writer processes would wait
        # for work forever, and Python waits for them at exit. Stop them then.
        if STORE_PROCESS:
            self.store = StoreProcess(self.folder / STORE_FILE)
            processes = [self.store.process]
        else:
            self.store = FormationStoreWriter(self.folder / STORE_FILE)
            processes = []
        self._stop_tasks = weakref.finalize(self, _stop_writer_tasks, getattr(self.writer, "tasks", []), processes)

    # -- the protocol

    def add(self, formation: Formation, entry: Entry) -> None:
        row = index_row(formation, entry)
        if self.update is not None:
            self.added = True
            self.update.add(row, store_rows(formation, entry))
            return
        if isinstance(self.writer, SegmentedMpWriter):
            self.writer.add_row(row)  # analysed, and its words counted, by the writer processes
        else:
            doc, terms = document_of(row)
            self.writer.add_document(**doc)
            self.word_counts.update(terms.vocabulary)
        self.store.add(formation, entry)

    def keep(self, entry: Entry) -> None:
        """Unchanged since the previous build: its document and rows come with the previous files."""

    def finish(self, catalog: Catalog) -> None:
        if self.previous is None:
            if isinstance(self.writer, SegmentedMpWriter):
                # The writer processes count the words; the store's last rows go as soon as they
                # have, and its process finishes while they write their last segments.
                self.writer.commit(words=self.store.add_vocabulary)
            else:
                self.store.add_vocabulary(self.word_counts)
                self.writer.commit()
            self.store.close()
            self._stop_tasks.detach()
            return
        removed = self.previous.refs - {entry.ref for entry in catalog.entries}
        if not self.added and not removed:
            # Nothing changed for the index: its files are the previous build's (what the
            # update may have begun is dropped).
            self.update.discard()
            shutil.rmtree(self.folder)
            self.folder.mkdir()
            _link_unchanged(self.previous.folder / INDEX_DIR, self.folder)
            return
        self.update.finish(sorted(removed))
        self._waiting = True

    def wait(self) -> None:
        """An incremental build's update process commits while the other sinks finish: wait for it."""
        if self._waiting:
            self._waiting = False
            wait = getattr(self.update, "wait", None)
            if wait is not None:
                wait()

    def abort(self) -> None:
        """The build failed: stop the writer processes now rather than at exit."""
        if self._stop_tasks is not None:
            self._stop_tasks()
        elif self.writer is not None and not self.writer.is_closed:
            self.writer.cancel()
        if self.store is not None:
            self.store.discard()
        if self.update is not None:
            self.update.discard()


def _link_unchanged(previous_index: Path, folder: Path) -> None:
    """Nothing changed: the new build's index is the previous one's files."""
    for name in [*_whoosh_files(previous_index), STORE_FILE]:
        link_file(previous_index / name, folder / name)


class IndexUpdate:
    """An incremental build's index: the previous build's, updated with the changed formations.

    Whoosh's segment files, which Whoosh never writes again once made (deletions
    go to a new table of contents), are hard-linked; the store is copied (never
    modified where it is: the previous build is being served). The documents of
    the changed and removed formations are marked deleted, the changed and new
    ones are written into one new segment, and a few small segments may be
    merged (:func:`segments_to_merge`). Runs in :class:`UpdateProcess` (or in the
    build's process when :data:`UPDATE_PROCESS` is off): the same steps in the same order.
    """

    def __init__(self, previous_index: Path, previous_refs: frozenset[str], folder: Path):
        self.previous_index = previous_index
        self.previous_refs = previous_refs
        self.folder = folder
        self.writer = None
        self.store: Optional[FormationStoreWriter] = None
        #: The change in the number of formations holding each vocabulary word.
        self.word_counts: Counter[str] = Counter()
        #: What Whoosh's statistics count beyond the live documents once the deletions are done.
        self.excess = Excess()
        #: A reader of the previous segments, to find the documents to delete, while adding.
        self.reader = None
        self.leaves: list[tuple] = []

    def start(self) -> None:
        """Start from the previous build's index: link Whoosh's files, copy the store."""
        if self.writer is not None:
            return
        for name in _whoosh_files(self.previous_index):
            link_file(self.previous_index / name, self.folder / name)
        shutil.copyfile(self.previous_index / STORE_FILE, self.folder / STORE_FILE)
        ix = whoosh_index.open_dir(str(self.folder))
        self.writer = ix.writer(limitmb=UPDATE_LIMITMB, codec=LeanCodec())
        self.store = FormationStoreWriter.reopen(self.folder / STORE_FILE)

    def add(self, row: IndexRow, rows: "StoreRows") -> None:
        """A new or changed formation: what its document is made of (:func:`index_row`), and its
        rows (:func:`store_rows`)."""
        self.start()
        doc, terms = document_of(row)
        self.writer.add_document(**doc)
        self.store.add_rows(rows)
        self.word_counts.update(terms.vocabulary)
        ref = row[0]
        if ref in self.previous_refs:
            # Changed: its previous document is deleted now rather than at the end (same deletions).
            self._delete_documents([ref])

    def finish(self, removed: list[str]) -> None:
        """Take out the formations no longer published, commit the index, write the store."""
        self.start()
        self.store.remove(removed)
        self._delete_documents(removed)
        if self.reader is not None:
            self.reader.close()
            self.reader = None
        excess = self.excess
        self.writer.commit(mergetype=lambda writer, segments: self._merge(writer, segments, excess))
        self.writer = None
        segments = {s.segment_id() for s in whoosh_index.open_dir(str(self.folder))._segments()}
        self.store.add_excess(excess, segments)
        self.store.update_vocabulary(self.word_counts)
        self.store.close()

    def _delete_documents(self, refs: list[str]) -> None:
        """Mark deleted the live documents of these Refs in the previous segments (not this build's
        documents); note what they still count (:attr:`excess`), and the vocabulary words they held."""
        if self.reader is None:
            self.reader = self.writer.reader()
            self.leaves = [(leaf, offset, leaf.segment().segment_id(), {}) for leaf, offset in self.reader.leaf_readers()]
        for leaf, offset, segment, columns in self.leaves:
            for ref in refs:
                if ("ref", ref) not in leaf:
                    continue
                for docnum in leaf.postings("ref", ref).all_ids():  # live documents only
                    column = columns.get("terms")
                    if column is None:
                        column = columns["terms"] = leaf.column_reader("terms")
                    terms = IndexedTerms.from_bytes(column[docnum])
                    self.writer.delete_document(offset + docnum)
                    self.excess.deleted(segment, terms)
                    self.word_counts.subtract(terms.vocabulary)

    def _merge(self, writer, segments: list, excess: "Excess") -> list:
        """Whoosh merge policy: copy the live documents of the segments :func:`segments_to_merge`
        picks into the new segment."""
        chosen = segments_to_merge(segments)
        new_segment = writer.newsegment.segment_id()
        for segment in chosen:
            reader = SegmentReader(writer.storage, writer.schema, segment)
            try:
                excess.copied(new_segment, reader)
                writer.add_reader(reader)
            finally:
                reader.close()
        merged = {segment.segment_id() for segment in chosen}
        return [s for s in segments if s.segment_id() not in merged]

    def discard(self) -> None:
        if self.reader is not None:
            self.reader.close()
            self.reader = None
        if self.writer is not None and not self.writer.is_closed:
            self.writer.cancel()
        self.writer = None
        if self.store is not None:
            self.store.discard()


class _ChildProcess:
    """A process forked during the build (so it dies with it) that takes jobs in order and answers once:
    ``None``, or its error (:func:`_error_of`), raised in the build by :meth:`_wait` or the next send."""

    #: What the process writes, for the message of an error that is not the file system's.
    what = ""

    def _start(self, target, payload, name: str) -> None:
        context = multiprocessing.get_context("fork")
        self.jobs = context.Queue(STORE_QUEUE)
        # At exit, do not wait for jobs a dead process will never read (_wait() waits for its answer,
        # which comes after it read them all).
        self.jobs.cancel_join_thread()
        self.results = context.Queue()
        self.process = context.Process(target=target, args=(payload, self.jobs, self.results), name=name, daemon=True)
        self.process.start()

    def _send(self, job) -> None:
        while True:
            try:
                self.jobs.put(job, timeout=1)
                return
            except queue.Full:
                self._check_alive()

    def _check_alive(self) -> None:
        if not self.process.is_alive():
            try:
                result = self.results.get(timeout=1)
            except queue.Empty:
                result = ("ProcessError", None, f"code de sortie {self.process.exitcode}", None)
            _raise_from_process(result, self.what)

    def _wait(self) -> None:
        while True:
            try:
                result = self.results.get(timeout=1)
                break
            except queue.Empty:
                if not self.process.is_alive():
                    self._check_alive()
        self.process.join()
        if result is not None:
            _raise_from_process(result, self.what)

    def discard(self) -> None:
        if self.process.is_alive():
            self.process.terminate()
        self.process.join(timeout=10)


class UpdateProcess(_ChildProcess):
    """:class:`IndexUpdate` in a process of its own, forked when the sinks open.

    It links and copies the previous build's files while the build reads on;
    the build's process only gathers each changed formation's texts and rows
    (:func:`index_row`, :func:`store_rows`) and sends them, in
    batches (:data:`UPDATE_BATCH`; the first one alone, so that the process
    starts at once). Whoosh's writer, the store's compression and inserts, the
    analysis, the deletions and the commit are the process's, in the order a single process
    would do them: the same files. Messages are bounded (:data:`STORE_QUEUE`).
    """

    what = "écriture de l'index"

    def __init__(self, update: IndexUpdate):
        self._start(_run_update, update, "catalogue-index")
        self.batch: list[tuple] = []
        self.sent = 0

    def add(self, row: IndexRow, rows: "StoreRows") -> None:
        self.batch.append((row, rows))
        if len(self.batch) >= (UPDATE_BATCH if self.sent else 1):
            self._flush()

    def _flush(self) -> None:
        if self.batch:
            self._send(("add", self.batch))
            self.sent += len(self.batch)
            self.batch = []

    def finish(self, removed: list[str]) -> None:
        """Send the last documents and the removed Refs: the process commits while the build goes on."""
        self._flush()
        self._send(("finish", removed))

    def wait(self) -> None:
        """Wait for the index and store to be written; the process's error, if any, raised here."""
        self._wait()


def _run_update(update: IndexUpdate, jobs, results) -> None:
    """The update process: documents in, the index and store out; ``None`` or the error on ``results``."""
    try:
        update.start()
        while True:
            kind, payload = jobs.get()
            if kind == "add":
                for row, rows in payload:
                    update.add(row, rows)
            else:
                update.finish(payload)
                break
    except BaseException as exc:  # noqa: BLE001  (whatever it is, the build hears of it)
        update.discard()
        results.put(_error_of(exc))
    else:
        results.put(None)


def _error_of(exc: BaseException) -> tuple:
    """What a process tells the build of its error: its class name, errno, message and file."""
    code = exc.errno if isinstance(exc, OSError) else None
    if isinstance(exc, sqlite3.OperationalError) and "disk is full" in str(exc):
        code = errno.ENOSPC
    message = str(exc) if code is None else (exc.strerror if isinstance(exc, OSError) and exc.strerror else os.strerror(code))
    return (exc.__class__.__name__, code, message, getattr(exc, "filename", None))


def _raise_from_process(result: tuple, what: str) -> None:
    """Raise, in the build's process, the error a process reported (:func:`_error_of`): an OSError
    with its errno and file (a missing file of the previous build makes a full build), or an IndexingError."""
    name, code, message, filename = result
    if code is not None:
        raise OSError(code, message, filename) if filename is not None else OSError(code, message)
    raise IndexingError(f"{what} : {name} : {message}")


#: The name tests and older callers use.
index_sink = IndexSink


class PreviousIndexDamaged(FileNotFoundError):
    """The previous build's index cannot be read, or does not hold what it published.

    A file of the previous build missing, as far as the build is concerned
    (its ``filename`` is there): it then makes a full build instead, which
    repairs the index.
    """


def check_previous(previous: PreviousBuild) -> None:
    """Fail early, and as :class:`PreviousIndexDamaged`, when the previous index cannot be built upon.

    Cheap: the table of contents, each segment's header; the number of documents
    and of the store's formations against the number of formations published.
    The build calls it too, before it decides that nothing changed.
    """
    folder = previous.folder / INDEX_DIR
    signature = (len(previous.refs), _files_signature(folder))
    if signature in _checked:
        return  # the same files, checked by this process already (the build, then the sink)
    try:
        ix = whoosh_index.open_dir(str(folder))
        with ix.reader() as reader:
            count = reader.doc_count()
    except Exception as exc:
        raise PreviousIndexDamaged(errno.ENOENT, f"index illisible ({exc.__class__.__name__}: {exc})", str(folder)) from exc
    if count != len(previous.refs):
        raise PreviousIndexDamaged(
            errno.ENOENT, f"{count} documents pour {len(previous.refs)} formations publiées", str(folder)
        )
    store = folder / STORE_FILE
    try:
        with closing(sqlite3.connect(f"file:{store}?mode=ro", uri=True)) as db:
            rows = db.execute("SELECT COUNT(*) FROM formation").fetchone()[0]
    except sqlite3.Error as exc:
        raise PreviousIndexDamaged(errno.ENOENT, f"base illisible ({exc})", str(store)) from exc
    if rows != len(previous.refs):
        raise PreviousIndexDamaged(errno.ENOENT, f"{rows} formations en base pour {len(previous.refs)} publiées", str(store))
    _checked.add(signature)


#: Signatures of the previous indexes :func:`check_previous` found sound in this process.
_checked: set[tuple] = set()


def _files_signature(folder: Path) -> Optional[tuple]:
    """Each file of ``folder`` with its inode, size and change time: any rewrite, truncation or removal changes it."""
    try:
        with os.scandir(folder) as files:
            found = []
            for item in files:
                status = item.stat(follow_symlinks=False)
                found.append((item.name, status.st_ino, status.st_size, status.st_mtime_ns, status.st_ctime_ns))
    except OSError:
        return None
    return (str(folder), tuple(sorted(found)))


def _whoosh_files(folder: Path) -> list[str]:
    """Whoosh's table of contents and segment files in ``folder`` (not its lock, nor the store)."""
    toc = TOC._pattern(WHOOSH_INDEX_NAME)
    segment = TOC._segment_pattern(WHOOSH_INDEX_NAME)
    return sorted(name for name in os.listdir(folder) if toc.match(name) or segment.match(name))


def segments_to_merge(segments: list) -> list:
    """The segments an incremental build rewrites into its new one, a few times
    :data:`SEGMENT_DOCS` documents at most, however many builds came before.

    - the segment with the largest share of deleted documents, once that share
      reaches :data:`MAX_DELETED_SHARE` (rewritten without them; one per build,
      so that segments worn alike are not all rewritten by the same build);
    - in each tier (live documents within the same power of :data:`MERGE_FACTOR`)
      that holds :data:`MERGE_FACTOR` segments, its smallest ones up to
      :data:`SEGMENT_DOCS` documents in all: the small segments that incremental
      builds add pile up into larger ones, and stop at a full build's size.
    """
    worn = [s for s in segments if s.doc_count_all() and s.deleted_count() >= MAX_DELETED_SHARE * s.doc_count_all()]
    chosen = [max(worn, key=lambda s: (s.deleted_count() / s.doc_count_all(), s.segment_id()))] if worn else []
    tiers: dict[int, list] = {}
    for segment in segments:
        if segment not in chosen:
            tier = int(math.log(max(segment.doc_count(), 1), MERGE_FACTOR))
            tiers.setdefault(tier, []).append(segment)
    for members in tiers.values():
        if len(members) < MERGE_FACTOR:
            continue
        taken, total = [], 0
        for segment in sorted(members, key=lambda s: (s.doc_count(), s.segment_id())):
            if total + segment.doc_count() > SEGMENT_DOCS:
                break
            taken.append(segment)
            total += segment.doc_count()
        if len(taken) > 1:
            chosen.extend(taken)
    return chosen


class LeanPool:
    """A segment's postings, grouped by term as they come (in place of Whoosh's :class:`PostingPool`).

    Whoosh's pool keeps one tuple per posting, sorts them all when the segment is
    written and gives them one by one to the codec: a third of a writer process's
    time. Here a document's postings are appended to their term's list, in docnum
    order (a document holds a term once per field), and only the terms are sorted:
    the same postings, in the same order. The terms of the text and keyword fields
    are kept as given (the text, not its bytes) with each document's frequency, the
    only thing their postings are made of. For :class:`LeanSegmentWriter`, whose
    segments are written whole (no runs to disk: :data:`SEGMENT_DOCS` bounds them).
    """

    def __init__(self):
        #: (field name, term bytes) → the postings ``(field name, term bytes, docnum, weight, value bytes)``.
        self.terms: dict[tuple[str, bytes], list[tuple]] = {}
        #: Field name given to :meth:`add_terms` → term → docnum, frequency, docnum, frequency...
        self.texts: dict[str, dict[str, list[int]]] = {}
        self.fieldnames: set[str] = set()

    def add(self, item: tuple) -> None:
        key = item[0], item[1]
        postings = self.terms.get(key)
        if postings is None:
            self.terms[key] = [item]
            self.fieldnames.add(item[0])
        else:
            postings.append(item)

    def add_terms(self, fieldname: str, terms, docnum: int) -> None:
        """A document's terms in a field whose format counts them (:class:`Frequency`), with repeats."""
        if not terms:
            return
        texts = self.texts.get(fieldname)
        if texts is None:
            texts = self.texts[fieldname] = {}
            self.fieldnames.add(fieldname)
        counts: dict[str, int] = {}
        _count_elements(counts, terms)  # Counter's own counting, without a Counter per field and document
        get = texts.get
        for term, freq in counts.items():
            postings = get(term)
            if postings is None:
                texts[term] = [docnum, freq]
            else:
                postings.append(docnum)
                postings.append(freq)

    def posting_lists(self, schema) -> Iterator[tuple[str, bytes, list[int], list[float], list[bytes]]]:
        """Each term's postings, in the order Whoosh writes them (field name, then term bytes):
        ``(field name, term bytes, docnums, weights, value bytes)``."""
        keys: dict[tuple[str, bytes], Optional[str]] = {
            (name, term.encode()): term for name, texts in self.texts.items() for term in texts
        }
        for key in self.terms:
            keys.setdefault(key, None)
        boosts: dict[str, float] = {}
        for key in sorted(keys):
            name, text = key
            term = keys[key]
            if term is not None:
                postings = self.texts[name][term]
                freqs = postings[1::2]
                boost = boosts.get(name)
                if boost is None:
                    boost = boosts[name] = schema[name].format.field_boost
                # As Frequency.word_values() and SegmentWriter.add_document() weigh them (no boosts given).
                values = [_PACKED_FREQS[f] if f < len(_PACKED_FREQS) else pack_uint(f) for f in freqs]
                found = postings[0::2], [f * boost for f in freqs], values
                items = self.terms.get(key)
                if items is not None:
                    # Documents given to Whoosh's own add_document (boosts) among the others: by docnum.
                    merged = sorted([*zip(*found), *(item[2:] for item in items)], key=lambda p: p[0])
                    found = [p[0] for p in merged], [p[1] for p in merged], [p[2] for p in merged]
            else:
                items = self.terms[key]
                found = [p[2] for p in items], [p[3] for p in items], [p[4] for p in items]
            yield name, text, *found

    def cleanup(self) -> None:
        self.terms = {}
        self.texts = {}


#: :func:`pack_uint` of the usual frequencies (what a :class:`Frequency` format stores per posting).
_PACKED_FREQS = [pack_uint(n) for n in range(256)]


class LeanSegmentWriter(SegmentWriter):
    """Whoosh's segment writer with a :class:`LeanPool`, whose terms go to the codec a posting list at a time.

    Only for :class:`LeanCodec` (no length statistics per block: the codec is not
    given documents' lengths) and segments made of added documents. Its
    ``add_document`` is Whoosh's for a schema without vectors nor spelling fields,
    given no boosts nor ``_stored_`` values (else Whoosh's own runs), with the terms
    of the text and keyword fields handed to the pool as they are (no token objects).
    """

    def __init__(self, ix, **kwargs):
        super().__init__(ix, **kwargs)
        self.pool.cleanup()
        self.pool = LeanPool()
        self._plain = not any(field.vector or field.separate_spelling() for _, field in self.schema.items())
        #: The fields of the documents added (as given) → :meth:`_plan` of them: the same every time.
        self._plans: dict[tuple[str, ...], list[tuple]] = {}
        #: The fields whose terms go to the pool as they are: AnalysedText (given its terms), and
        #: keyword fields split on blanks with a frequency format, whose tokens the pool counts as
        #: Whoosh's format does.
        self._lean: dict[str, str] = {}
        for name, field in self.schema.items():
            if type(field) is AnalysedText and type(field.format) is Frequency:
                self._lean[name] = _GIVEN
            elif (type(field) is KEYWORD and type(field.format) is Frequency
                  and field.analyzer == KeywordAnalyzer(lowercase=False, commas=False)):
                self._lean[name] = _SPLIT

    def add_document(self, **fields) -> None:
        plan = self._plans.get(tuple(fields))
        if plan is None:
            fieldnames = sorted(fields)
            if not self._plain or any(name.startswith("_") for name in fieldnames):
                return super().add_document(**fields)
            self._check_fields(self.schema, fieldnames)
            plan = self._plans[tuple(fields)] = self._plan(fieldnames)
        self._check_state()
        perdocwriter = self.perdocwriter
        docnum = self.docnum
        pool = self.pool
        inline = type(perdocwriter) is W3PerDocWriter
        perdocwriter.start_doc(docnum)
        if inline:
            stored_fields = perdocwriter._storedfields
            columns = perdocwriter._colwriters
            field_lengths = perdocwriter._fieldlengths
        try:
            for fieldname, field, lean, scorable, stored, column, length_column in plan:
                value = fields[fieldname]
                if value is None:
                    continue
                length = 0
                if lean is not None:
                    if lean is _GIVEN and not isinstance(value, str):
                        terms = value
                    elif lean is _SPLIT and isinstance(value, str):
                        terms = _blank_separated(value)
                    else:
                        terms = None
                    if terms is not None:
                        pool.add_terms(fieldname, terms, docnum)
                        if scorable:
                            length = len(terms)  # the sum of their frequencies
                    else:
                        for tbytes, freq, weight, vbytes in field.index(value):
                            if scorable:
                                length += freq
                            pool.add((fieldname, tbytes, docnum, weight * 1.0, vbytes))
                if not inline:
                    perdocwriter.add_field(fieldname, field, value if stored else None, length)
                    if column:
                        perdocwriter.add_column_value(fieldname, column, field.to_column_value(value))
                    continue
                # What W3PerDocWriter.add_field() and add_column_value() do, without two calls per field.
                if stored:
                    stored_fields[fieldname] = value
                if length:
                    size = _LENGTH_BYTES[length] if length < len(_LENGTH_BYTES) else length_to_byte(length)
                    writer = columns.get(length_column)
                    if writer is None:
                        perdocwriter.add_column_value(length_column, LENGTHS_COLUMN, size)
                    else:
                        writer.add(docnum, size)
                    field_lengths[fieldname] += length
                if column:
                    writer = columns.get(fieldname)
                    if writer is None:
                        perdocwriter.add_column_value(fieldname, column, field.to_column_value(value))
                    else:
                        writer.add(docnum, field.to_column_value(value))
        except Exception:
            perdocwriter.cancel_doc()
            raise
        perdocwriter.finish_doc()
        self._added = True
        self.docnum += 1

    def _plan(self, fieldnames: list[str]) -> list[tuple]:
        """What :meth:`add_document` does with each field of a document holding ``fieldnames``, in
        Whoosh's order (sorted): ``(name, field, how its terms are taken (None: not indexed), scorable,
        stored, column type, length column's name)``."""
        plan = []
        for name in fieldnames:
            field = self.schema[name]
            lean = self._lean.get(name, _WHOOSH) if field.indexed else None
            plan.append((name, field, lean, field.scorable, field.stored, field.column_type, f"_{name}_len"))
        return plan

    def _flush_segment(self) -> None:
        self.perdocwriter.close()
        fieldwriter = self.fieldwriter
        field = None
        for name, text, ids, weights, values in self.pool.posting_lists(self.schema):
            if name != field:
                if field is not None:
                    fieldwriter.finish_field()
                fieldwriter.start_field(name, self.schema[name])
                field = name
            fieldwriter.start_term(text)
            _add_posting_list(fieldwriter._postwriter, ids, weights, values)
            fieldwriter.finish_term()
        if field is not None:
            fieldwriter.finish_field()
        fieldwriter.close()


#: How :class:`LeanSegmentWriter` takes a field's terms: as given, split on blanks (Whoosh's
#: ``SpaceSeparatedTokenizer``), or through the field's own ``index()``.
_GIVEN, _SPLIT, _WHOOSH = "given", "split", "whoosh"
_blank_separated = re.compile(r"[^ \t\r\n]+").findall


def _add_posting_list(writer, ids: list[int], weights: list[float], values: list[bytes]) -> None:
    """What Whoosh's :class:`W3PostingsWriter` ``add_posting`` does for each posting of a term (without a
    document length, as :class:`LeanCodec` has none), a block of them at a time."""
    limit = writer._blocklimit
    for start in range(0, len(ids), limit):
        end = start + limit
        if writer._ids:  # a full block waits: written before the next posting, as add_posting does
            writer._write_block()
        writer._ids.extend(ids[start:end])
        block = weights[start:end]
        writer._weights.extend(block)
        weight = max(block)
        if weight > writer._maxweight:
            writer._maxweight = weight
        writer._values.extend([v for v in values[start:end] if v])


class SegmentedTask(SubWriterTask):
    """A Whoosh writer process that makes the documents of the rows it is sent (:func:`document_of`),
    counts their vocabulary words, and closes its segment every :data:`SEGMENT_DOCS` documents.

    Whoosh pools a segment's postings in memory until the segment is written;
    closing segments as they fill bounds the process's memory whatever the
    catalogue's size, and writes them during the build rather than all at the end.
    The analysis is here rather than in the build's process, its bottleneck.
    """

    def run(self) -> None:
        ix = self.storage.open_index(self.indexname)
        segments = []
        self.words: Counter[str] = Counter()
        self.writer = LeanSegmentWriter(ix, _lk=False, **self.kwargs)
        while True:
            job = self.jobqueue.get()
            if job is None:
                break
            self._process_file(*job)
            if self.writer.docnum >= SEGMENT_DOCS:
                segments.append(self.writer._finalize_segment())
                self.writer = LeanSegmentWriter(ix, _lk=False, **self.kwargs)
        # The words first: the store writes them while this process writes its last segment.
        self.resultqueue.put(("words", self.words))
        if self.writer.docnum:
            segments.append(self.writer._finalize_segment())
        else:
            self.writer._close_segment()
        self.resultqueue.put(("segments", segments))

    def _process_file(self, filename: str, doc_count: int) -> None:
        """A job file of :meth:`SegmentedMpWriter._enqueue`: one pickled list of rows."""
        storage = self.writer.temp_storage()
        with storage.open_file(filename).raw_file() as f:
            rows = pickle.load(f)
        storage.delete_file(filename)
        add_document = self.writer.add_document
        count = self.words.update
        for row in rows:
            doc, terms = document_of(row)
            add_document(**doc)
            count(terms.vocabulary)


class SegmentedMpWriter(MpWriter):
    """Whoosh's multi-process writer with :class:`SegmentedTask` processes: the index is their segments.

    It is given rows (:func:`index_row`), not documents: each batch of them goes to a job
    file as one pickled list.
    """

    def __init__(self, ix, procs: int, **kwargs):
        super().__init__(ix, procs=procs, multisegment=True, **kwargs)

    def add_row(self, row: IndexRow) -> None:
        self.docbuffer.append(row)
        if len(self.docbuffer) >= self.batchsize:
            self._enqueue()
        self._added_sub = True

    def add_document(self, **fields) -> None:
        raise NotImplementedError("SegmentedMpWriter reçoit des lignes (add_row), pas des documents")

    def _enqueue(self) -> None:
        rows, self.docbuffer = self.docbuffer, []
        filename = f"{random_name()}.rows"
        with self.temp_storage().create_file(filename).raw_file() as f:
            pickle.dump(rows, f, pickle.HIGHEST_PROTOCOL)
        if len(self.tasks) < self.procs:
            self._new_task()
        self.jobqueue.put((filename, len(rows)))

    def _new_task(self) -> SegmentedTask:
        task = SegmentedTask(self.storage, self.indexname, self.jobqueue, self.resultqueue, self.subargs, True)
        self.tasks.append(task)
        task.start()
        return task

    def commit(self, mergetype=None, optimize=None, merge=None, words=None) -> None:
        """Commit the processes' segments; ``words``, when given, is called with the vocabulary
        words of all the documents and how many hold each, as soon as the processes have counted them."""
        if self.docbuffer:
            self._enqueue()
        for _task in self.tasks:
            self.jobqueue.put(None)
        counts: Counter[str] = Counter()
        segments = []
        for kind, result in self._results():
            if kind == "words":
                counts.update(result)
                if words is not None and self._words_left == 0:
                    words(counts)
            else:
                segments.extend(result)
        if words is not None and not self.tasks:
            words(counts)
        for task in self.tasks:
            task.join()
        self._close_segment()
        self._commit_toc(segments)
        self._finish()

    def _results(self) -> Iterator[tuple[str, object]]:
        """Each process's words, then its segments; a process that died fails the build (its documents would be missing)."""
        self._words_left = len(self.tasks)
        expected = 2 * len(self.tasks)
        while expected:
            try:
                kind, result = self.resultqueue.get(timeout=1)
            except queue.Empty:
                failed = [task.exitcode for task in self.tasks if task.exitcode not in (None, 0)]
                if failed:
                    raise IndexingError(f"un processus d'écriture de l'index s'est arrêté (code {failed[0]})")
                continue
            expected -= 1
            if kind == "words":
                self._words_left -= 1
            yield kind, result


def _stop_writer_tasks(tasks: list, others: list = ()) -> None:
    processes = [*tasks, *others]
    for task in processes:
        if task.is_alive():
            task.terminate()
    for task in processes:
        task.join(timeout=10)


# --------------------------------------------------------------------------
# The statistics of the live documents
# --------------------------------------------------------------------------


class Excess:
    """What Whoosh's collection statistics count beyond the live documents, per segment.

    Whoosh marks a deleted document in the table of contents and leaves its
    postings in the segment until the segment is merged: the document drops out
    of the postings read, but still counts in the term's document frequency
    (``doc_frequency``), in the field's total length (``field_length``) and in
    ``doc_count_all``. And a segment made by merging others totals the lengths
    of the documents it copied as Whoosh keeps them per document, rounded to one
    byte, where a full build adds the exact lengths. BM25's idf and average
    length would then differ from a full build's.

    The store records, per segment, the deleted documents' terms, and how much
    its length totals exceed its live documents' exact lengths;
    :class:`SearchIndex` subtracts the rows of the segments still in the index,
    which gives the statistics of a full build of the same formations. A merged
    segment takes its rows with it (they are ignored, then dropped).
    """

    def __init__(self):
        self.terms: Counter[tuple[str, str, str]] = Counter()  # (segment, field, term) → deleted documents holding it
        self.lengths: Counter[tuple[str, str]] = Counter()  # (segment, field) → length counted beyond the live docs'

    def deleted(self, segment: str, terms: IndexedTerms) -> None:
        """A document of ``segment`` was deleted: all of it now counts beyond the live documents."""
        for field, stems, length in zip(FIELD_BOOSTS, terms.stems(), terms.lengths):
            self.lengths[segment, field] += length
            for term in stems:
                self.terms[segment, field, term] += 1

    def copied(self, segment: str, reader) -> None:
        """The live documents of ``reader``'s segment are copied into ``segment``, with Whoosh's rounded lengths."""
        column = reader.column_reader("terms")
        for docnum in reader.all_doc_ids():
            lengths = IndexedTerms.from_bytes(column[docnum]).lengths
            for field, length in zip(FIELD_BOOSTS, lengths):
                self.lengths[segment, field] += reader.doc_field_length(docnum, field) - length


# --------------------------------------------------------------------------
# The formation store: whole JSON by Ref, numbers, places, vocabulary
# --------------------------------------------------------------------------


class FormationStoreWriter:
    """Writes ``formations.sqlite``; :meth:`reopen` updates a copy of the previous build's.

    A formation's ``number`` and ``place`` rows have consecutive rowids, noted in
    its ``formation`` row: an incremental build deletes them by range, without
    an index on ``ref`` (which a full build would pay for) nor a scan.
    """

    def __init__(self, path: Path, create: bool = True):
        self.db: Optional[sqlite3.Connection] = sqlite3.connect(path)
        self.created = create
        self.db.executescript("PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;")
        if create:
            # Formations of a few KB fill 16 KB pages better than 4 KB ones: a fifth smaller, copied faster.
            self.db.execute("PRAGMA page_size = 16384")
            self.db.executescript(
                """
                CREATE TABLE formation (ref TEXT NOT NULL, json BLOB NOT NULL,
                                        numbers_from INTEGER NOT NULL, numbers_to INTEGER NOT NULL,
                                        places_from INTEGER NOT NULL, places_to INTEGER NOT NULL);
                CREATE TABLE place (ref TEXT NOT NULL, ville TEXT, codepostal TEXT,
                                    latitude REAL NOT NULL, longitude REAL NOT NULL);
                CREATE TABLE vocabulary (word TEXT PRIMARY KEY, stem TEXT NOT NULL, formations INTEGER NOT NULL)
                    WITHOUT ROWID;
                CREATE TABLE number (id TEXT NOT NULL, ref TEXT NOT NULL);
                CREATE TABLE excess_term (segment TEXT NOT NULL, field TEXT NOT NULL, term TEXT NOT NULL,
                                          formations INTEGER NOT NULL,
                                          PRIMARY KEY (segment, field, term)) WITHOUT ROWID;
                CREATE TABLE excess_length (segment TEXT NOT NULL, field TEXT NOT NULL, length INTEGER NOT NULL,
                                            PRIMARY KEY (segment, field)) WITHOUT ROWID;
                CREATE TABLE meta (key TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;
                """
            )
        #: The JSON's preset dictionary: chosen once :data:`ZDICT_FORMATIONS` are there (a new
        #: store; until then they wait), or the previous build's (an updated one).
        self.zdict: Optional[bytes] = None if create else read_zdict(self.db)
        self.waiting: list[StoreRows] = []
        self.next_rowid = {
            table: self.db.execute(f"SELECT COALESCE(MAX(rowid), 0) + 1 FROM {table}").fetchone()[0]
            for table in ("number", "place")
        }
        self.db.execute("BEGIN")

    @classmethod
    def reopen(cls, path: Path) -> "FormationStoreWriter":
        """A copy of a previous build's store, to update."""
        return cls(path, create=False)

    def add(self, formation: Formation, entry: Entry) -> None:
        """A formation's rows (those of its previous version replaced, when updating)."""
        self.add_rows(store_rows(formation, entry))

    def add_rows(self, rows: "StoreRows") -> None:
        """The rows of :func:`store_rows`."""
        if self.created and self.zdict is None:
            self.waiting.append(rows)
            if len(self.waiting) >= ZDICT_FORMATIONS:
                self._flush_waiting()
            return
        self._write_rows(rows)

    def _flush_waiting(self) -> None:
        """Choose the preset dictionary from the formations waiting, and write them."""
        if not self.created or self.zdict is not None:
            return
        self.zdict = b"".join(rows[1] for rows in self.waiting)[-ZDICT_SIZE:]
        self.db.execute("INSERT INTO meta VALUES ('zdict', ?)", (self.zdict,))
        waiting, self.waiting = self.waiting, []
        for rows in waiting:
            self._write_rows(rows)

    def _write_rows(self, rows: "StoreRows") -> None:
        ref, data, numbers, places = rows
        if not self.created:
            self._delete(ref)
        blob = compress_json(data, self.zdict)
        number_range = self._insert("number", [(number, ref) for number in numbers])
        place_range = self._insert("place", places)
        self.db.execute("INSERT INTO formation VALUES (?, ?, ?, ?, ?, ?)", (ref, blob, *number_range, *place_range))

    _COLUMNS = {"number": "rowid, id, ref", "place": "rowid, ref, ville, codepostal, latitude, longitude"}

    def _insert(self, table: str, rows: list[tuple]) -> tuple[int, int]:
        """Insert ``rows`` with consecutive rowids; their range (empty: ``first > last``)."""
        first = self.next_rowid[table]
        if rows:
            columns = self._COLUMNS[table]
            marks = ",".join("?" * (columns.count(",") + 1))
            self.db.executemany(
                f"INSERT INTO {table} ({columns}) VALUES ({marks})", [(first + i, *row) for i, row in enumerate(rows)]
            )
        self.next_rowid[table] = first + len(rows)
        return first, first + len(rows) - 1

    def _delete(self, ref: str) -> None:
        row = self.db.execute(
            "SELECT numbers_from, numbers_to, places_from, places_to FROM formation WHERE ref = ?", (ref,)
        ).fetchone()
        if row is None:
            return
        self.db.execute("DELETE FROM number WHERE rowid BETWEEN ? AND ?", row[:2])
        self.db.execute("DELETE FROM place WHERE rowid BETWEEN ? AND ?", row[2:])
        self.db.execute("DELETE FROM formation WHERE ref = ?", (ref,))

    def remove(self, refs: Iterable[str]) -> None:
        """Take out the rows of formations no longer published."""
        self._flush_waiting()
        for ref in refs:
            self._delete(ref)

    def add_vocabulary(self, counts: Counter[str]) -> None:
        """The folded, unstemmed words searched with spelling tolerance, their stems, and how many
        formations hold each (for the next build: a word no formation holds any more leaves)."""
        self._flush_waiting()
        self.db.executemany(
            "INSERT INTO vocabulary VALUES (?, ?, ?)", ((w, stem(w), n) for w, n in sorted(counts.items()) if n > 0)
        )

    def update_vocabulary(self, change: Counter[str]) -> None:
        """Apply a change in the number of formations holding each word."""
        for word, delta in sorted(change.items()):
            if not delta:
                continue
            row = self.db.execute("SELECT formations FROM vocabulary WHERE word = ?", (word,)).fetchone()
            before = row[0] if row else 0
            after = before + delta
            if after < 0:
                raise ValueError(f"vocabulaire : {word!r} compté {after} fois, la copie du build précédent est incohérente")
            if after == 0:
                self.db.execute("DELETE FROM vocabulary WHERE word = ?", (word,))
            elif before == 0:
                self.db.execute("INSERT INTO vocabulary VALUES (?, ?, ?)", (word, stem(word), after))
            else:
                self.db.execute("UPDATE vocabulary SET formations = ? WHERE word = ?", (after, word))

    def add_excess(self, excess: Excess, segments: set[str]) -> None:
        """Record what the statistics count beyond the live documents, and forget the segments no longer in the index."""
        self.db.executemany(
            "INSERT INTO excess_term VALUES (?, ?, ?, ?) "
            "ON CONFLICT DO UPDATE SET formations = formations + excluded.formations",
            ((*key, n) for key, n in sorted(excess.terms.items()) if key[0] in segments and n),
        )
        self.db.executemany(
            "INSERT INTO excess_length VALUES (?, ?, ?) ON CONFLICT DO UPDATE SET length = length + excluded.length",
            ((*key, n) for key, n in sorted(excess.lengths.items()) if key[0] in segments and n),
        )
        marks = ",".join("?" * len(segments))
        for table in ("excess_term", "excess_length"):
            self.db.execute(f"DELETE FROM {table} WHERE segment NOT IN ({marks})", sorted(segments))

    def discard(self) -> None:
        if self.db is not None:
            self.db.close()
            self.db = None

    def close(self) -> None:
        if self.db is not None:
            self._flush_waiting()
            if self.created:
                # One sort at the end rather than a B-tree insert per row.
                self.db.execute("CREATE UNIQUE INDEX formation_ref ON formation (ref)")
                self.db.execute("CREATE INDEX number_id ON number (id)")
            self.db.commit()
            self.db.close()
            self.db = None


def read_zdict(db: sqlite3.Connection) -> Optional[bytes]:
    """The store's preset dictionary for the formations' JSON (``None``: a store written without one)."""
    try:
        row = db.execute("SELECT value FROM meta WHERE key = 'zdict'").fetchone()
    except sqlite3.OperationalError:  # a store written before the table
        return None
    return row[0] if row else None


def compress_json(data: bytes, zdict: Optional[bytes]) -> bytes:
    """zlib's format, made by zlib-ng at level 1: half the time of zlib's level 1 (21 µs instead of 42 µs
    per formation) for 12 % more bytes (1.3 kB per formation); :func:`decompress_json` is plain zlib."""
    if not zdict:
        return deflate.compress(data, 1)
    # A copy of a compressor given the dictionary already: zlib hashes the 32 KB dictionary once, not
    # once per formation (half the time of compressing one); the same bytes.
    compressor = _primed(zdict).copy()
    return compressor.compress(data) + compressor.flush()


@functools.lru_cache(maxsize=2)
def _primed(zdict: bytes):
    return deflate.compressobj(1, deflate.DEFLATED, deflate.MAX_WBITS, 8, deflate.Z_DEFAULT_STRATEGY, zdict)


def decompress_json(blob: bytes, zdict: Optional[bytes]) -> bytes:
    if not zdict:
        return zlib.decompress(blob)
    decompressor = zlib.decompressobj(zlib.MAX_WBITS, zdict)
    return decompressor.decompress(blob) + decompressor.flush()


#: A formation as the store keeps it: Ref, JSON (UTF-8, uncompressed), numbers (:func:`id_terms`),
#: places with coordinates ``(ref, ville, codepostal, latitude, longitude)``.
StoreRows = tuple[str, bytes, list[str], list[tuple]]


def store_rows(formation: Formation, entry: Entry) -> StoreRows:
    """What the store keeps of a formation (what the API answers: its JSON without null members)."""
    return (
        entry.ref,
        # model_dump_json(exclude_none=True).encode(): the same bytes, without the str in between.
        formation.__pydantic_serializer__.to_json(formation, exclude_none=True),
        id_terms(entry),
        [
            (entry.ref, p.ville, p.codepostal, p.latitude, p.longitude)
            for p in entry.places
            if p.latitude is not None and p.longitude is not None
        ],
    )


class StoreProcess(_ChildProcess):
    """A new ``formations.sqlite`` written by a process of its own (full builds).

    The build's main process, its bottleneck, only serialises each formation
    and takes its numbers (:func:`store_rows`; the static search asks for the
    same numbers next); the process compresses and inserts them, in the order
    received, as :class:`FormationStoreWriter` in the main process would: the
    same rows, the same file. Messages are bounded (:data:`STORE_QUEUE`), and
    so is memory. The process is forked during the build, so it dies with it.
    """

    what = "écriture de la base des formations"

    def __init__(self, path: Path):
        self.path = path
        self._start(_write_store, str(path), "catalogue-store")
        self.batch: list[StoreRows] = []
        self.sent_all = False

    def add(self, formation: Formation, entry: Entry) -> None:
        self.batch.append(store_rows(formation, entry))
        if len(self.batch) >= STORE_BATCH:
            self._send(("rows", self.batch))
            self.batch = []

    def add_vocabulary(self, counts: Counter[str]) -> None:
        """The vocabulary (:meth:`FormationStoreWriter.add_vocabulary`): the last of the store's rows."""
        if self.batch:
            self._send(("rows", self.batch))
            self.batch = []
        self._send(("vocabulary", dict(counts)))
        self._send(None)
        self.sent_all = True

    def close(self) -> None:
        """Wait for the store to be written; its process's error, if any, is raised here."""
        if not self.sent_all:
            self.add_vocabulary(Counter())
        self._wait()


def _write_store(path: str, jobs, results) -> None:
    """The store process: rows in, ``formations.sqlite`` out; ``None`` or the error on ``results``."""
    try:
        store = FormationStoreWriter(Path(path))
        while (job := jobs.get()) is not None:
            kind, payload = job
            if kind == "rows":
                for rows in payload:
                    store.add_rows(rows)
            else:
                store.add_vocabulary(Counter(payload))
        store.close()
    except BaseException as exc:  # noqa: BLE001  (whatever it is, the build hears of it)
        results.put(_error_of(exc))
    else:
        results.put(None)


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

    After an incremental build, segments may hold deleted documents (an old
    version of a changed formation, a removed one): every docnum set given here
    leaves them out, and the collection statistics the query scores with
    (:meth:`doc_count`, :meth:`doc_frequency`, :meth:`field_length`) are those
    of the live documents (:class:`Excess`), as in a full build.
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
        self._excess_stats: Optional[tuple[frozenset[int], dict[tuple[str, str], int], dict[str, int]]] = None
        self._zdict: Optional[tuple[Optional[bytes]]] = None  # (the store's preset dictionary,) once read

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

    # -- statistics of the live documents

    def _excess(self) -> tuple[frozenset[int], dict[tuple[str, str], int], dict[str, int]]:
        """Deleted docnums; what Whoosh counts beyond the live documents in each (field, term)'s
        document frequency, and in each field's total length (:class:`Excess`)."""
        if self._excess_stats is None:
            reader = self.searcher().reader()
            docnums: set[int] = set()
            segments = []
            for leaf, offset in reader.leaf_readers():
                segments.append(leaf.segment().segment_id())
                docnums.update(offset + d for d in leaf.deleted_docs_set)
            terms: dict[tuple[str, str], int] = {}
            lengths: dict[str, int] = {}
            marks = ",".join("?" * len(segments))
            with closing(self.connect()) as db:
                try:
                    for field, term, count in db.execute(
                        f"SELECT field, term, formations FROM excess_term WHERE segment IN ({marks})", segments
                    ):
                        terms[field, term] = terms.get((field, term), 0) + count
                    for field, length in db.execute(
                        f"SELECT field, length FROM excess_length WHERE segment IN ({marks})", segments
                    ):
                        lengths[field] = lengths.get(field, 0) + length
                except sqlite3.OperationalError:
                    if docnums:
                        raise
                    # A store written before these tables: a full build's, with nothing to subtract.
            self._excess_stats = (frozenset(docnums), terms, lengths)
        return self._excess_stats

    def deleted_docs(self) -> frozenset[int]:
        """Docnums of deleted documents (left in their segments until merged)."""
        return self._excess()[0]

    def doc_count(self) -> int:
        """Live documents: the formations published."""
        return self.searcher().reader().doc_count()

    def doc_frequency(self, fieldname: str, term: str) -> int:
        """Live documents holding ``term`` in ``fieldname``."""
        count = self.searcher().reader().doc_frequency(fieldname, term)
        return count - self._excess()[1].get((fieldname, term), 0) if count else 0

    def field_length(self, fieldname: str) -> int:
        """Total number of terms of ``fieldname`` in the live documents."""
        return self.searcher().reader().field_length(fieldname) - self._excess()[2].get(fieldname, 0)

    def refs(self) -> list[str]:
        """Ref of each docnum."""
        return self.column("ref")

    def ref_order(self) -> list[int]:
        """Every live docnum, in Ref order."""
        order = self._columns.get("ref_order")
        if order is None:
            refs = self.refs()
            deleted = self.deleted_docs()
            live = (d for d in range(len(refs)) if d not in deleted) if deleted else range(len(refs))
            order = self._columns["ref_order"] = sorted(live, key=refs.__getitem__)
        return order

    def docnums(self) -> dict[str, int]:
        """Ref → its live docnum."""
        if self._docnums is None:
            deleted = self.deleted_docs()
            self._docnums = {ref: d for d, ref in enumerate(self.refs()) if d not in deleted}
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
        deleted = self.deleted_docs()
        return self._cached(
            ("flags", flag, value),
            lambda: (d for d, f in enumerate(flags) if bool(f & flag) == value and d not in deleted),
        )

    def starting_from(self, day: int) -> frozenset[int]:
        """Docnums with a session starting on ``day`` (AAAAMMJJ) or later (cached)."""
        debuts = self.column("debut_max")
        deleted = self.deleted_docs()
        return self._cached(("debut_max", day), lambda: (d for d, v in enumerate(debuts) if v >= day and d not in deleted))

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
        store = self.store()
        row = store.execute("SELECT json FROM formation WHERE ref = ?", (ref,)).fetchone()
        if row is None:
            return None
        if self._zdict is None:
            self._zdict = (read_zdict(store),)
        return decompress_json(row[0], self._zdict[0])

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
