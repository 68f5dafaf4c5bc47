"""The static search: files a browser fetches from plain static hosting, no server.

The sink ``static-search`` writes under ``site/recherche/``:

``index.html``
    the search page (``templates/recherche.html``), whose ``<form>`` carries
    what a number lookup needs (shard count, docs per shard, build version), so
    that a Ref resolves without fetching the manifest.
``manifest.json``
    N, the shard schemes, the stop list, the Unicode tables of the analysis
    chain (combining marks, digits) and the set of *split* term prefixes.
``n/<bucket>.json`` — number shards
    ``{"k": {key: [code, ...]}, "r": {docnum: row}, "t": [key, ...]}``. A key is
    a normalised number (Ref, Ref without its Carif prefix, action and session
    numeros, composites ``ref|action[|session]``, SIRET, RNCP). Its bucket is
    ``crc32(canonical(key)) % buckets``, where canonical is the part after the
    last ``_`` of what comes before the first ``|``: a Ref, its short forms and
    its composites share one bucket, which also holds the formation's display
    row (``r``), so a typed Ref costs one request. ``t`` lists the number
    queries (keys, and bare RNCP codes) whose own text query finds something:
    for any other number found, the page skips the text search. A key with many formations (an
    organisme's SIRET) holds the name of its own file, ``n/<name>.json``
    (``{"c": [code, ...]}``), instead of its codes.
``t/<leaf>.json`` — term shards
    ``{term: [[score, code, +delta, ...], ...]}``: per term, the formations
    that hold it, grouped by score (descending), codes ascending and
    delta-coded within a group. A score is the term's BM25F sum over fields
    (:func:`catalogue.search.analysis.bm25`, boosts of
    :data:`~catalogue.search.analysis.FIELD_BOOSTS`, each field's average
    length rounded by :func:`~catalogue.search.analysis.average_length`), the
    number the query computes, rounded to ``score_digits`` (6) significant
    digits; the page ranks by the sum over the query's terms rounded to 4
    digits, as the CLI and the API do. Terms are grouped by prefix; a prefix whose terms weigh
    more than ``term_shard_bytes`` is *split* (listed in the manifest) into
    longer ones; a term equal to a split prefix goes to ``<prefix>_``.
``p/<crc32 of term>-<page>.json`` — further pages of long postings
    A term shard holds a term's first page: its ``top_k`` best current
    formations and ``top_k_archived`` best archived ones. A term with more
    has ``[{"p": pages, "c": 1 if cut}, ...]``: pages 2.. are in ``p/``
    (``{term: groups}``), at most ``max_pages`` in all. The page fetches the
    next page of a term only while a formation it has not seen could still
    enter its first results (the last score of a page bounds the rest), so a
    query is exact unless it gives up after a few pages.
``d/<k>.json`` — document shards
    rows of docnums ``k*D`` to ``k*D + D - 1``.

A *docnum* is the formation's rank in Ref order, so sorting by docnum sorts by
Ref; a *code* is ``docnum * 2 + archived`` so archived formations are left out
before any row is fetched. A row is ``[ref, intitule, organisme, ville,
codepostal, archived, datemaj]`` (``datemaj`` as AAAAMMJJ, absent values "").

File names come from hashes and term prefixes computed here (ASCII letters
and digits, or ``-`` + hex of UTF-8), never from raw input. Same input, same
bytes: everything is sorted and serialised the same way.

What a file depends on (incremental builds). A term's scores depend on N,
the term's document frequency per field, the rounded average lengths and,
per formation, only on its *signature* for the term: term frequency and
stored length per field, archived or not. The average lengths are rounded
to 2 significant digits so that they move only when the catalogue changes
noticeably; N moves only when formations are added or removed. So when
formations change (same Refs), only the terms whose signature changed in
one of them get new entries: their ``t/`` shards and ``p/``, ``b/`` files;
the number shards of the keys, rows and texted queries that changed; the
doc shards of the changed formations; the manifest (when its figures move)
and the page (its version). Every other file is hard-linked from the
previous build. When formations are added or removed, docnums (ranks in Ref
order) shift and N changes every idf: everything is computed again, from the
cache, and only the files that come out the same are linked.

The cache, ``staging/.cache/static-search/`` (:class:`_Cache`), keeps what a
next build needs without the formations: each formation's *record* (its
distinct terms and their frequencies per field, its field lengths, number
keys and weight: :func:`make_record`), each term's postings grouped by
signature, and the previous build's statistics, tables and file digests. A
full build also leaves there a spare copy (hard links) of its search files and
cached records and postings (:data:`SPARE_DIR`), which the first rebuild takes
over as its own folders instead of linking ~40,000 files one by one; later
rebuilds take over the folders of the build before the published one.
"""

from __future__ import annotations

import gc
import hashlib
import json
import marshal
import math
import os
import pickle
import re
import queue
import shutil
import signal
import sys
import threading
import traceback
import unicodedata
import zlib
from array import array
from bisect import bisect_left, bisect_right, insort
from collections import _count_elements, deque
from dataclasses import astuple, dataclass
from functools import lru_cache
from itertools import chain, compress, repeat
from operator import sub
from pathlib import Path
from typing import Callable, Iterable, Iterator, Optional, Sequence

from ..build import STALE_DIR, SinkContext, build_before, die_with_parent, register_sink
from ..catalog import Catalog, Entry
from ..incremental import link_file, link_spare, listed_inodes
from ..model import Formation
from .analysis import (
    B,
    FIELD_BOOSTS,
    K1,
    MAX_QUERY_TERMS,
    STOP_WORDS,
    analyse,
    analyse_stems,
    average_length,
    field_texts,
    idf,
    round_score,
    stored_length,
    words,
)

SITE_DIR = "recherche"
#: The page's script: ``templates/static/recherche.js``, served without its comments from the
#: search folder (a quarter fewer bytes on a first query).
SCRIPT = "recherche.js"
FORMAT_VERSION = 1
FIELDS = tuple(FIELD_BOOSTS)
#: Beyond this length a term prefix is not split any more (file names stay short).
MAX_PREFIX = 24
#: Characters of a normalised number; only such a query is looked up.
KEY_RE = re.compile(r"^[A-Z0-9_.\-|]+$")

@dataclass(frozen=True)
class ShardOptions:
    """The knobs of the shard layout (defaults sized for 100,000 formations)."""

    top_k: int = 1000  # postings per page of a term, among current formations
    top_k_archived: int = 200  # ... and among archived ones
    max_pages: int = 8  # pages kept per term; the page fetches the next only when needed
    #: Significant digits of a term's score in the shards. The page ranks by the sum over
    #: the query's terms rounded to 4 digits, as Whoosh does with its exact sum: 6 digits
    #: here make that rounding agree with Whoosh's nearly always (4 would shift ~2 % of
    #: two-word top 5s by a tie), for a few percent more bytes.
    score_digits: int = 6
    term_shard_bytes: int = 16_000  # a term prefix heavier than this is split
    number_shard_bytes: int = 3_000  # target mean size of a number shard
    docs_per_shard: int = 8
    big_key_codes: int = 64  # a key with more formations gets a file of its own


# --------------------------------------------------------------------------
# Shared helpers (the page computes the same in recherche.js)
# --------------------------------------------------------------------------


def canonical(key: str) -> str:
    """What a number key is bucketed by: the part after the last ``_`` of the part before the first ``|``."""
    return key.split("|", 1)[0].rsplit("_", 1)[-1]


def bucket_of(key: str, buckets: int) -> int:
    return zlib.crc32(canonical(key).encode("utf-8")) % buckets


def number_keys(entry: Entry) -> list[str]:
    """Every normalised number that leads to ``entry``: the Whoosh index's own ``ids``."""
    from .index import id_terms

    return id_terms(entry)


def number_candidates(query: str) -> list[str]:
    """The keys a query may be (as :func:`catalogue.search.query.number_candidates`)."""
    from .query import number_candidates as candidates

    return candidates(query)


def query_strings(keys: Iterable[str]) -> set[str]:
    """Every normalised query that finds a key: the keys, and a bare RNCP code (``12345``)."""
    result = set(keys)
    result.update(k[4:] for k in keys if k.startswith("RNCP") and k[4:].isdigit() and len(k) <= 10)
    return result


def leaf_of(term: str, split: set[str]) -> str:
    """The prefix (or ``prefix_`` for a term equal to a split prefix) naming a term's shard."""
    prefix = term[:1]
    while prefix in split:
        if len(prefix) == len(term):
            return prefix + "_"
        prefix = term[: len(prefix) + 1]
    return prefix


def page_file(term: str, page: int) -> str:
    """Page ``page`` (from 1) of a term's postings: ``p/<crc32 of the term>-<page>.json``."""
    return f"{zlib.crc32(term.encode('utf-8')):08x}-{page}"


_SET_DIGITS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_SET_TABLE = bytes.maketrans(bytes(range(64)), _SET_DIGITS.encode("ascii"))


def encode_set(docnums: list[int], n: int) -> str:
    """Sorted docnums below ``n`` as text: ``d`` + gaps in base-32 varints (low group first, a
    sixth bit for "more"), or ``b`` + a bitmap, 6 docnums per character; the shorter."""
    limit = n // 6 + 2
    if len(docnums) + 1 <= limit:
        gaps = list(map(sub, docnums, chain((-1,), docnums)))
        if gaps and min(gaps) >= 0 and max(gaps) < len(_GAP_TEXTS):
            # Each gap's characters looked up: writing the form costs no more than measuring it first.
            text = "d" + "".join(map(_GAP_TEXTS.__getitem__, gaps))
            if len(text) <= limit:
                return text
        elif _gaps_length(docnums) <= limit:
            text = "d" + "".join(map(_gap_text, gaps))
            if len(text) <= limit:
                return text
    # The bitmap without a loop per docnum: one byte per docnum (0 or 1), then each sixth
    # byte as one big integer, shifted to its bit of the cell: no carries (a cell is < 64).
    cells = (n + 5) // 6
    bits = bytearray(cells * 6)
    deque(map(bits.__setitem__, docnums, repeat(1)), maxlen=0)
    value = 0
    for bit in range(6):
        value |= int.from_bytes(bits[bit::6], "little") << bit
    return "b" + value.to_bytes(cells, "little").translate(_SET_TABLE).decode("ascii").rstrip("A")


def _gap_text(gap: int) -> str:
    """A gap of :func:`encode_set`'s ``d`` form: base-32 digits, low group first, 32 added to all but the last."""
    out = []
    while gap >= 32:
        out.append(_SET_DIGITS[32 | (gap & 31)])
        gap >>= 5
    out.append(_SET_DIGITS[gap])
    return "".join(out)


#: :func:`_gap_text` of the usual gaps.
_GAP_TEXTS = [_gap_text(gap) for gap in range(1 << 15)]


def _gaps_length(docnums: list[int]) -> int:
    """The length of ``encode_set``'s ``d`` form: 1 + a character per 5 bits of each gap."""
    gaps = sorted(map(sub, docnums, chain((-1,), docnums)))
    length = 1 + len(gaps)
    threshold = 32
    while gaps and gaps[-1] >= threshold:
        length += len(gaps) - bisect_left(gaps, threshold)
        threshold <<= 5
    return length


def decode_set(text: str) -> list[int]:
    """The docnums of :func:`encode_set`."""
    values = [_SET_DIGITS.index(c) for c in text[1:]]
    if text[:1] == "b":
        return [i * 6 + bit for i, v in enumerate(values) for bit in range(6) if v >> bit & 1]
    result, previous, gap, shift = [], -1, 0, 0
    for v in values:
        gap |= (v & 31) << shift
        if v & 32:
            shift += 5
            continue
        previous += gap
        result.append(previous)
        gap, shift = 0, 0
    return result


def leaf_file(leaf: str) -> str:
    """``form`` → ``form``; a prefix with other characters → ``-`` + hex of its UTF-8."""
    exact = leaf.endswith("_")
    prefix = leaf[:-1] if exact else leaf
    name = prefix if re.fullmatch(r"[a-z0-9]+", prefix) else "-" + prefix.encode("utf-8").hex()
    return name + ("_" if exact else "")


def row_of(entry: Entry) -> list:
    place = entry.place
    return [
        entry.ref,
        entry.intitule,
        entry.organisme,
        (place.ville if place else None) or "",
        (place.codepostal if place else None) or "",
        int(entry.archived),
        entry.datemaj,
    ]


def compact_js(source: str) -> str:
    """``recherche.js`` without its comment lines and indentation (nothing else is touched).

    Only whole-line comments go (``//`` lines, ``/* ... */`` blocks opening a line): the
    script is written so that no string or regular expression starts a line that way.
    """
    lines = ["/* Catalogue : recherche dans le navigateur. Source commentée : templates/static/recherche.js */"]
    in_block = False
    for line in source.splitlines():
        text = line.strip()
        if in_block:
            in_block = "*/" not in text
            continue
        if text.startswith("/*"):
            in_block = "*/" not in text
            continue
        if text and not text.startswith("//"):
            lines.append(text)
    return "\n".join(lines) + "\n"


#: One encoder for every file (``json.dumps`` with options makes a new one per call).
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode


def _ranges(predicate) -> list[int]:
    """Code points where ``predicate`` holds, as a flat list of inclusive ranges ``[a, b, a, b, ...]``."""
    # map() and compress() run the 1.1 million calls without a Python loop.
    points = compress(range(0x110000), map(predicate, map(chr, range(0x110000))))
    flat: list[int] = []
    for cp in points:
        if flat and flat[-1] == cp - 1:
            flat[-1] = cp
        else:
            flat += [cp, cp]
    return flat


@lru_cache(maxsize=1)
def unicode_tables() -> dict[str, list[int]]:
    """What Python's analysis chain knows of Unicode and JavaScript cannot ask for.

    ``combining``: characters ``unicodedata.combining`` drops when folding;
    ``digit``: characters ``str.isdigit`` accepts (a number is not stemmed).
    """
    return {
        "combining": _ranges(unicodedata.combining),
        "digit": _ranges(str.isdigit),
        "unidata": unicodedata.unidata_version,
    }


def _unicode_tables(meta: Optional[dict]) -> dict[str, list[int]]:
    """:func:`unicode_tables`, from the previous build's cache when it has them for this Unicode version."""
    tables = meta.get("unicode") if meta is not None else None
    if tables is not None and tables.get("unidata") == unicodedata.unidata_version:
        return tables
    return unicode_tables()


# --------------------------------------------------------------------------
# What the sink keeps of each formation, and of each term
# --------------------------------------------------------------------------

#: A term's frequency in each field packed in one int, 16 bits per field in FIELDS order,
#: ``texte`` lowest (most terms are in the text only: small ints).
_SHIFTS = tuple(16 * (len(FIELDS) - 1 - f) for f in range(len(FIELDS)))
_MAX_TF = 0xFFFF

#: A formation as the cache keeps it: ``(ref, archived, lengths, terms, codes, keys, weight)``:
#: its number of terms per field (exact), its distinct terms and their packed frequencies,
#: its number keys joined by newlines, and its weight in the number shards.
Record = tuple


def make_record(formation: Formation, entry: Entry) -> Record:
    """What the shards need of a formation, analysed once (kept in the cache for the next build)."""
    return _make_record(field_terms(formation, entry), number_keys(entry), entry)


def field_terms(formation: Formation, entry: Entry) -> list[tuple[str, ...]]:
    """The analysed terms of each field, in FIELDS order."""
    return terms_of(ordered_texts(formation, entry))


def ordered_texts(formation: Formation, entry: Entry) -> tuple[str, ...]:
    """The text of each field, in FIELDS order (what the worker process is sent)."""
    texts = field_texts(formation, entry)
    return tuple(texts[name] for name in FIELDS)


def terms_of(texts: Sequence[str]) -> list[tuple[str, ...]]:
    """The analysed terms of each of :func:`ordered_texts`: the analysis's own tuples."""
    return [analyse_stems(text) for text in texts]


def _make_record(analysed: list[Sequence[str]], keys: list[str], entry) -> Record:
    """:func:`make_record` from the fields' terms (in FIELDS order) and the number keys; ``entry``
    an :class:`Entry` or a :class:`_Row` (what the worker process knows of it)."""
    # The text first, in one go: most terms are there only (its shift is 0).
    # Counted as Counter counts, into plain dicts (no Counter per field and formation).
    codes: dict[str, int] = {}
    _count_elements(codes, analysed[-1])
    if codes and max(codes.values()) > _MAX_TF:
        codes = {term: min(tf, _MAX_TF) for term, tf in codes.items()}
    for terms, shift in zip(analysed[:-1], _SHIFTS):
        counts: dict[str, int] = {}
        _count_elements(counts, terms)
        for term, tf in counts.items():
            codes[term] = codes.get(term, 0) | min(tf, _MAX_TF) << shift
    weight = sum(len(k) + 8 for k in keys) + _row_weight(entry)
    lengths = tuple(len(terms) for terms in analysed)
    return (entry.ref, int(entry.archived), lengths, tuple(codes), tuple(codes.values()), "\n".join(keys), weight)


def _keys(record: Record) -> list[str]:
    return _split_keys(record[5])


def _split_keys(joined: str) -> list[str]:
    """A formation's number keys, kept joined by newlines (one string: a tenth of the memory)."""
    return joined.split("\n") if joined else []


def _signatures(record: Record) -> dict[str, tuple]:
    """Term → what the formation's score for it depends on, the catalogue's statistics aside."""
    stored = [stored_length(n) for n in record[2]]
    archived = record[1]
    codes = record[4]
    # Terms share a few codes: one signature per code, then one pass in C.
    made = {code: _signature(code, stored, archived) for code in set(codes)}
    return dict(zip(record[3], map(made.__getitem__, codes)))


def _signature(code: int, stored: list[int], archived: int) -> tuple:
    """``(tf per field..., stored length per field (0 where tf is 0)..., archived)``."""
    a, b, c, d = code >> 48 & _MAX_TF, code >> 32 & _MAX_TF, code >> 16 & _MAX_TF, code & _MAX_TF
    return (a, b, c, d, a and stored[0], b and stored[1], c and stored[2], d and stored[3], archived)


assert len(FIELDS) == 4, "_signature and _SHIFTS spell the four fields out"


#: A term's postings: ``[(signature, sorted docnums), ...]``; its score in a formation depends
#: only on the signature and the catalogue's statistics (N, df per field, average lengths).
Groups = list


@dataclass
class _TermOutput:
    """What a term puts in the files: its first page (t/), later pages (p/), its members (b/)."""

    entry: str
    pages: list[str]
    members: Optional[tuple[str, str]]  # current, archived; only when it has more than a page's worth

    @property
    def paged(self) -> tuple[int, bool]:
        return len(self.pages) + 1, self.members is not None


class _Scorer:
    """Scores and cuts a term's postings with the catalogue's statistics."""

    def __init__(self, n_docs: int, averages: list[float], options: ShardOptions):
        self.n = n_docs
        self.averages = averages
        self.options = options
        self.boosts = [FIELD_BOOSTS[f] for f in FIELDS]
        #: Signature → ``((field, bm25 over idf), ...)`` for its fields holding the term: the same
        #: for every term (a signature is shared by many), only the idf is the term's.
        self._parts: dict[tuple, tuple] = {}

    def _saturations(self, sig: tuple) -> tuple:
        nf = len(FIELDS)
        # bm25() is idf * this: the very operations, so the product below is bm25()'s to the bit.
        return tuple(
            (f, (sig[f] * (K1 + 1)) / (sig[f] + K1 * ((1 - B) + B * sig[nf + f] / self.averages[f])))
            for f in range(nf)
            if sig[f]
        )

    def output(self, groups: Groups, members: bool = True) -> _TermOutput:
        """``members=False``: the term's formations are those of the previous build (same N): its
        ``b/`` values are kept as they were (:data:`_KEPT`), not encoded again."""
        nf = len(FIELDS)
        df = [0] * nf
        parts_of = self._parts
        for sig, docs in groups:
            for f in range(nf):
                if sig[f]:
                    df[f] += len(docs)
        idfs = [idf(self.n, d) for d in df]
        digits = self.options.score_digits
        boosts = self.boosts
        log10, floor = math.log10, math.floor
        by_score: tuple[dict, dict] = ({}, {})  # current, archived: rounded score → [docnums, ...]
        for sig, docs in groups:
            parts = parts_of.get(sig)
            if parts is None:
                parts = parts_of[sig] = self._saturations(sig)
            score = 0.0
            for f, saturation in parts:
                score += boosts[f] * (idfs[f] * saturation)  # as boosts[f] * bm25(...)
            if score and score == score and score not in _INFINITIES:  # round_score(score, digits), inlined
                score = round(score, digits - 1 - int(floor(log10(abs(score)))))
            by_score[sig[-1]].setdefault(score, []).append(docs)
        ranked = [_ranked(scores) for scores in by_score]
        k, ka = self.options.top_k, self.options.top_k_archived
        counts = [sum(len(docs) for _, docs in r) for r in ranked]
        needed = max(-(-counts[0] // k), -(-counts[1] // ka), 1)
        pages = min(needed, self.options.max_pages)
        current, old = _runs(ranked[0], k, pages), _runs(ranked[1], ka, pages)
        groups_of = [_page_groups(current[p], old[p]) for p in range(pages)]
        held = None
        if needed > 1:
            # Which formations hold the term, scores aside: what an AND needs beyond the pages.
            held = (encode_set(_all_docs(ranked[0]), self.n), encode_set(_all_docs(ranked[1]), self.n)) if members else _KEPT
        if needed == 1:
            entry = _dumps(groups_of[0])
        else:
            # More pages: a leading {"p": pages stored, "c": 1 when postings beyond them were dropped}.
            head = {"p": pages, "c": 1} if needed > pages else {"p": pages}
            entry = _dumps([head, *groups_of[0]])
        return _TermOutput(entry, [_dumps(g) for g in groups_of[1:]], held)


_INFINITIES = (math.inf, -math.inf)

#: The members of a term whose formations did not change (an incremental build): its ``b/``
#: values stay the previous build's (a third of the cost of scoring a common term again).
_KEPT = ("", "")


def _ranked(by_score: dict[float, list[list[int]]]) -> list[tuple[float, list[int]]]:
    """``[(score, docnums ascending), ...]`` by descending score."""
    result = []
    for score in sorted(by_score, reverse=True):
        lists = by_score[score]
        result.append((score, lists[0] if len(lists) == 1 else sorted(chain.from_iterable(lists))))
    return result


def _runs(ranked: list[tuple[float, list[int]]], size: int, pages: int) -> list[list[tuple[float, list[int]]]]:
    """The first ``pages`` pages of ``size`` postings each, as runs of one score."""
    result: list[list] = [[] for _ in range(pages)]
    page, room = 0, size
    for score, docs in ranked:
        start = 0
        while start < len(docs):
            if room == 0:
                page, room = page + 1, size
                if page == pages:
                    return result
            taken = docs[start : start + room]
            result[page].append((score, taken))
            start += len(taken)
            room -= len(taken)
    return result


def _all_docs(ranked: list[tuple[float, list[int]]]) -> list[int]:
    return sorted(chain.from_iterable(docs for _, docs in ranked))


def _page_groups(current: list[tuple[float, list[int]]], old: list[tuple[float, list[int]]]) -> list[list]:
    """A page's postings as ``[[score, code, +delta, ...], ...]`` by descending score."""
    if not current or not old:
        # One kind only: its runs are already by descending score, one run per score.
        archived = 0 if current else 1
        groups = []
        for score, docs in current or old:
            # Codes are docnum * 2 + archived: their deltas are twice the docnums'.
            groups.append([score, docs[0] * 2 + archived, *[gap * 2 for gap in map(sub, docs[1:], docs)]])
        return groups
    by_score: dict[float, list[int]] = {}
    for score, docs in current:
        by_score[score] = [d * 2 for d in docs]
    for score, docs in old:
        codes = [d * 2 + 1 for d in docs]
        by_score[score] = sorted(by_score[score] + codes) if score in by_score else codes
    groups = []
    for score in sorted(by_score, reverse=True):
        codes = by_score[score]
        groups.append([score, codes[0], *map(sub, codes[1:], codes)])
    return groups


def _members(groups: Groups) -> set[int]:
    return set(chain.from_iterable(docs for _, docs in groups))


def _apply(groups: Groups, moves: list[tuple[int, Optional[tuple], Optional[tuple]]]) -> Groups:
    """``groups`` with each ``(docnum, old signature, new signature)`` of ``moves`` applied
    (``None``: the formation did not, or does no longer, hold the term)."""
    by_sig = dict(groups)
    leaving: dict[tuple, set[int]] = {}
    coming: dict[tuple, list[int]] = {}
    for docnum, old, new in moves:
        if old is not None:
            leaving.setdefault(old, set()).add(docnum)
        if new is not None:
            coming.setdefault(new, []).append(docnum)
    for sig, docnums in leaving.items():
        docs = [d for d in by_sig[sig] if d not in docnums]
        if docs:
            by_sig[sig] = docs
        else:
            del by_sig[sig]
    for sig, docnums in coming.items():
        by_sig[sig] = sorted(chain(by_sig.get(sig, ()), docnums))
    return sorted(by_sig.items())


# --------------------------------------------------------------------------
# The cache: staging/.cache/static-search/
# --------------------------------------------------------------------------

CACHE_DIR = Path(".cache") / "static-search"
CACHE_FORMAT = 2
#: Terms' postings go to one of this many files, by crc32 of the term.
TERM_FILES = 512
#: Records per file (in input order; a record stays in its file from build to build).
RECORDS_PER_FILE = 32
#: Under CACHE_DIR, a full build's spare copy (hard links, never served) of the subfolders of its search
#: folder (``recherche/``) and of its cache (``cache/``): the first rebuild, which has no build before the
#: published one to take over (:func:`_take_over`), takes these over instead of linking ~40,000 files
#: one by one. The site sink does the same with its fiches (:data:`catalogue.render.SPARE_DIR`).
SPARE_DIR = "spare"


class _Files:
    """A full build's new files, written by a thread of its own while the sink computes the next ones.

    Creating a file costs this disk a fraction of a millisecond to milliseconds when it is busy,
    time the sink's process spends waiting, not computing: the ~10,000 files of 20,000 formations
    took a third of its finish. The system calls leave the interpreter's lock to the sink.
    Full builds only: an incremental build moves and relinks files in place, in order.
    """

    def __init__(self) -> None:
        self._queue: queue.Queue = queue.Queue(maxsize=2048)  # bounds the bytes waiting
        self._thread: Optional[threading.Thread] = None
        self._error: Optional[BaseException] = None

    def write(self, path: str, data: bytes, spare: Optional[str]) -> None:
        """Write ``data`` to ``path`` (its folder made), then link it to ``spare`` if given."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="static-search-files", daemon=True)
            self._thread.start()
        self._queue.put((path, data, spare))

    def _run(self) -> None:
        get = self._queue.get
        while True:
            item = get()
            if item is None:
                return
            if self._error is not None:
                continue  # drained: the error is raised by flush()
            path, data, spare = item
            try:
                with open(path, "wb") as file:
                    file.write(data)
                if spare is not None:
                    link_spare(path, spare)
            except BaseException as exc:  # noqa: BLE001  (raised in the sink's thread by flush())
                self._error = exc

    def flush(self) -> None:
        """Wait until every file is written; the first error, if any, raised here."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None
        if self._error is not None:
            error, self._error = self._error, None
            raise error


class _Cache:
    """The sink's private files: ``meta`` (the statistics and tables of the last build),
    ``refs`` (Ref → records file), ``keywords`` (every term of a number query),
    ``records/<i>`` (Ref → its :data:`Record`, marshalled on its own: a rebuild that changes a
    formation decodes and encodes that record only, and copies the others' bytes; ~1,000 formations
    changed at 100,000 touch a third of the files, which hold a third of the records) and
    ``terms/<i>`` (term → :data:`Groups`).

    Written with marshal (our own files, never served; deflating them would save a
    third of the bytes but cost more time than the writing saves); a file of the previous
    build that did not change is hard-linked, never rewritten.
    """

    def __init__(self, folder: Path, previous: Optional[Path], files: Optional[_Files] = None):
        self.folder = folder
        self.previous = previous
        self.files = files  # a full build's writer thread
        self.written: set[str] = set()
        self.dropped: set[str] = set()
        #: The cache folder of the build before the previous one, taken over (:meth:`take_over`).
        self.taken: Optional[_Taken] = None
        #: A full build links its records and terms files into its spare folder too (see SPARE_DIR).
        self._spare: Optional[str] = None
        if previous is None:
            self._spare = os.path.join(folder, SPARE_DIR, "cache") + os.sep
            self._folders()

    def _folders(self) -> None:
        for sub in ("records", "terms"):
            (self.folder / sub).mkdir(parents=True, exist_ok=True)
            if self._spare is not None:
                os.makedirs(self._spare + sub, exist_ok=True)

    def take_over(self, published: Path) -> None:
        """An incremental build, before its first write: the folder of the build before ``published``
        if it can be taken over (:func:`_take_over`), else a new one."""
        self.taken = _take_over(published, CACHE_DIR, self.folder, CACHE_DIR / SPARE_DIR / "cache")
        self._folders()

    def write(self, name: str, data) -> None:
        if self.taken is not None:
            self.taken.discard(self.folder, name)
        path = self.folder / name
        spare = self._spare + name if self._spare is not None and "/" in name else None
        if self.files is not None:
            self.files.write(os.fspath(path), marshal.dumps(data), spare)
        else:
            path.write_bytes(marshal.dumps(data))
            if spare is not None:
                link_spare(path, spare)
        self.written.add(name)

    def read(self, name: str):
        """A file of the previous build's cache."""
        return marshal.loads((self.previous / name).read_bytes())

    @staticmethod
    def term_file(term: str) -> str:
        return f"terms/{zlib.crc32(term.encode('utf-8')) % TERM_FILES}"

    def read_terms(self, name: str) -> dict[str, Groups]:
        return {term: _unpack(groups) for term, groups in self.read(name).items()}

    def link_rest(self) -> None:
        """Link every file of the previous cache not written anew."""
        if self.previous is None:
            return
        names = []
        for sub in ("", "records", "terms"):
            for entry in os.scandir(self.previous / sub if sub else self.previous):
                name = f"{sub}/{entry.name}" if sub else entry.name
                if entry.is_file() and name not in self.written and name not in self.dropped:
                    names.append(name)
        _settle(self.previous, self.folder, names, self.taken)


class _Output:
    """The search folder being written.

    Starts from the previous build's files (their digests): each file is either written
    anew, dropped, or, at the end, hard-linked from the previous build; a file computed
    again that comes out as it was is linked too.
    """

    def __init__(
        self,
        root: Path,
        previous: Optional[Path],
        digests: dict[str, str],
        keep: bool = True,
        taken: Optional[_Taken] = None,
        spare: Optional[Path] = None,
        files: Optional[_Files] = None,
    ):
        self.root = root
        self.files = files  # a full build's writer thread (the files are new: never read back before flush)
        self.previous = previous
        self.taken = taken  # the folder of the build before the previous one, taken over
        #: A full build's spare folder (SPARE_DIR): each file of a subfolder is linked there too.
        self.spare = f"{spare}{os.sep}" if spare is not None else None
        self.before = dict(digests)  # the previous build's files
        self.digests = dict(digests) if keep else {}  # keep=False: each file is written again (or linked if the same)
        self.written: set[str] = set()
        self._folders: set[Path] = set()

    def write(self, relative: str, text: str) -> None:
        data = text.encode("utf-8")
        digest = hashlib.sha256(data).hexdigest()
        path = self.root / relative
        if relative in self.written:
            self._unlink(relative)  # written earlier in this build: replaced, never written in place
        self.digests[relative] = digest
        if self.before.get(relative) == digest:
            return  # as it was: linked at the end
        if path.parent not in self._folders:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._folders.add(path.parent)
        if self.taken is not None:
            self.taken.discard(self.root, relative)  # an older build's file: unlinked, never written into
        spare = self.spare + relative if self.spare is not None and "/" in relative else None
        if self.files is not None:
            self.files.write(os.fspath(path), data, spare)
        else:
            path.write_bytes(data)
            if spare is not None:
                link_spare(path, spare)
        self.written.add(relative)

    def drop(self, relative: str) -> None:
        self.digests.pop(relative, None)
        if relative in self.written:
            self._unlink(relative)

    def _unlink(self, relative: str) -> None:
        if self.files is not None:
            self.files.flush()
        (self.root / relative).unlink()
        self.written.discard(relative)
        if self.spare is not None and "/" in relative:
            try:
                os.unlink(self.spare + relative)
            except FileNotFoundError:
                pass

    def read_back(self, relative: str) -> str:
        """A file of this build, written earlier (or the previous build's, when it came out the same)."""
        folder = self.root if relative in self.written else self.previous
        if self.files is not None and folder is self.root:
            self.files.flush()
        return (folder / relative).read_text(encoding="utf-8")

    def previous_json(self, relative: str):
        """A file of the previous build, parsed (``None`` when it had none by that name)."""
        if self.previous is None or relative not in self.before:
            return None
        return json.loads((self.previous / relative).read_text(encoding="utf-8"))

    def previous_members(self, relative: str) -> dict[str, str]:
        """A JSON object of the previous build (empty when it had none by that name): each member's
        value as its text, which a file that keeps it needs not serialise again (:func:`_raw_members`)."""
        if self.previous is None or relative not in self.before:
            return {}
        return _raw_members((self.previous / relative).read_text(encoding="utf-8"))

    def link_rest(self) -> int:
        """Link the previous build's files that were neither written anew nor dropped."""
        return _settle(self.previous, self.root, [r for r in self.digests if r not in self.written], self.taken)

    def version(self) -> str:
        text = "\n".join(f"{name} {digest}" for name, digest in sorted(self.digests.items()))
        return hashlib.sha256(text.encode()).hexdigest()[:12]


def _link_all(source: Path, target: Path, names: list[str]) -> int:
    """Hard-link each of ``names`` (relative paths) from ``source`` to ``target``.

    Tens of thousands of files in an incremental build: plain strings and one
    system call each; :func:`~catalogue.incremental.link_file` (folders, copies
    across devices) only when that fails.
    """
    source_text, target_text = os.fspath(source) + os.sep, os.fspath(target) + os.sep
    for folder in sorted({name.rpartition("/")[0] for name in names}):
        os.makedirs(target_text + folder, exist_ok=True)
    link = os.link
    for name in names:
        try:
            link(source_text + name, target_text + name)
        except OSError:
            link_file(source / name, target / name)
    return len(names)


@dataclass
class _Taken:
    """A folder of the build before the published one, taken over by this build (:func:`_take_over`)."""

    #: Each file left in it (path relative to the folder) → whether it is the published build's very file.
    files: dict[str, bool]
    folders: list[str]  # its subfolders
    #: Where its files that this build does not keep go (``<that build>/.stale/<folder name>``), with
    #: the same subfolders: unlinking a file's last link costs milliseconds here (ext4, the disk
    #: busy), a rename tens of microseconds; that build's folder is deleted in the background
    #: once this build is published, these files with it. None for a full build's spare folder
    #: (:data:`SPARE_DIR`): its files are links of the published build's, whose unlinking frees nothing.
    aside: Optional[str]

    def discard(self, root: Path, relative: str) -> None:
        """Move the file ``relative`` aside before this build writes its own there."""
        if self.files.pop(relative, None) is not None:
            if self.aside is None:
                os.unlink(os.path.join(root, relative))
            else:
                os.rename(os.path.join(root, relative), os.path.join(self.aside, relative))


def _take_over(published: Path, relative: Path, target: Path, spare: Optional[Path] = None) -> Optional[_Taken]:
    """Move the folder ``relative`` of the build before ``published`` to ``target``, for an incremental build.

    Or rather, when ``published`` holds it, its own spare copy of that folder (``spare``, relative to
    ``published``: see :data:`SPARE_DIR`): after a full build there is no build before it.

    The site sink does the same with its fiches (:func:`catalogue.render._recycle_fiches`):
    that build is kept only for readers still on it and goes once this build is published,
    so its folder is taken over instead of linking tens of thousands of files into a new
    one. A file whose inode is the published build's is that very file (same bytes) and
    stays; :func:`_settle` replaces the others by links and moves aside those not wanted
    (:attr:`_Taken.aside`), as a file this build writes. Files are never written into, so
    the published build is never touched. ``None`` (``target`` not made) when there is no
    such build, it lost that folder, the folders are on two devices, a subfolder holds a
    folder, a listing's inodes can't be trusted, or when at most half of its files are the
    published build's (moving the others aside would cost more than the links it saves:
    after a full build, or when much changed).
    """
    try:
        if target.exists():
            return None
        older = None
        if spare is not None and os.path.isdir(os.path.join(published, spare)):
            source = os.path.join(published, spare)
        else:
            older = build_before(published)
            if older is None:
                return None
            source = os.path.join(older, relative)
        current = os.path.join(published, relative)
        if os.stat(source).st_dev != os.stat(current).st_dev:
            return None
        files: dict[str, bool] = {}
        folders: list[str] = []
        tops: list[str] = []
        with os.scandir(source) as entries:
            for entry in entries:
                if not entry.is_dir(follow_symlinks=False) or (entry.name == SPARE_DIR and relative == CACHE_DIR):
                    tops.append(entry.name)  # and a spare folder that no build took over: aside as well
                    continue
                present = _inodes(entry.path)
                inodes = _inodes(os.path.join(current, entry.name)) if os.path.isdir(os.path.join(current, entry.name)) else {}
                if present is None or inodes is None:
                    return None
                folders.append(entry.name)
                prefix = entry.name + "/"
                files.update((prefix + name, inodes.get(name) == inode) for name, inode in present.items())
        if 2 * sum(files.values()) <= len(files):
            return None
        aside = None
        if older is not None:
            aside = os.path.join(older, STALE_DIR, os.path.basename(relative))
            for folder in ["", *folders]:
                os.makedirs(os.path.join(aside, folder), exist_ok=True)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.rename(source, target)
    except OSError:
        return None
    for name in tops:  # a few files: the page, the manifest, the cache's tables
        if aside is None:
            os.unlink(os.path.join(target, name))  # a spare has none
        else:
            os.rename(os.path.join(target, name), os.path.join(aside, name))
    return _Taken(files, folders, aside)


def _inodes(folder: str) -> Optional[dict[str, int]]:
    """:func:`~catalogue.incremental.listed_inodes` of a folder of files only; None when it holds a folder."""
    inodes = listed_inodes(folder)
    return None if inodes is None or any("/" in name for name in inodes) else inodes


def _settle(previous: Path, target: Path, names: list[str], taken: Optional[_Taken]) -> int:
    """Link ``names`` from ``previous`` into ``target`` (:func:`_link_all`). In a folder taken over, a
    file that is already the previous build's stays, another is moved aside first, and so are
    the files not wanted (then the subfolders left empty are removed); returns the files linked."""
    if taken is None:
        return _link_all(previous, target, names)
    files = taken.files
    prefix = os.fspath(target) + os.sep
    if taken.aside is None:
        aside, rename = "", lambda path, _: os.unlink(path)
    else:
        aside, rename = taken.aside + os.sep, os.rename
    linked = []
    for name in names:
        same = files.pop(name, None)
        if same:
            continue
        if same is not None:
            rename(prefix + name, aside + name)
        linked.append(name)
    for name in files:
        rename(prefix + name, aside + name)
    files.clear()
    for folder in taken.folders:
        try:
            os.rmdir(prefix + folder)  # only when left empty
        except OSError:
            pass
    return _link_all(previous, target, linked)


_raw_value = json.JSONDecoder().raw_decode
_scan_key = json.decoder.scanstring


def _raw_members(text: str) -> dict[str, str]:
    """``{key: value text}`` of a JSON object as :func:`_dumps` and :func:`_object_text` write it (no
    white space). Each value is as it was written, which is what ``_dumps`` of it parsed gives: the
    same bytes, without serialising it again."""
    members: dict[str, str] = {}
    if text == "{}":
        return members
    position = 1  # a key's opening quote
    while True:
        key, position = _scan_key(text, position + 1)  # then the colon
        _, end = _raw_value(text, position + 1)
        members[key] = text[position + 1 : end]
        if text[end] == "}":
            return members
        position = end + 1


def _object_text(values: dict[str, str]) -> str:
    """``{key: value}`` as :func:`_dumps` writes it, from values already serialised."""
    return "{" + ",".join(json.dumps(k, ensure_ascii=False) + ":" + values[k] for k in sorted(values)) + "}"


# --------------------------------------------------------------------------
# The sink
# --------------------------------------------------------------------------


class StaticSearchSink:
    """Analyses formations as they come; writes or updates every shard at the end.

    A full build keeps each formation's postings by signature (:data:`Groups`).
    An incremental build (``context.previous``) analyses only the formations
    given to ``add()`` and works from the previous build's cache: when the Refs
    are the same (changed formations only), it rewrites the shards of the terms
    whose postings changed, the number shards of the keys and rows that changed,
    their doc shards and the manifest and page, and links every other file;
    when formations were added or removed (the docnums, ranks in Ref order, move,
    and N with them every idf), it rewrites everything from the cache.
    """

    def __init__(self, context: SinkContext, options: ShardOptions = ShardOptions(), worker: Optional[bool] = None):
        self.context = context
        self.options = options
        self.root = context.staging / "site" / SITE_DIR
        self.previous = context.previous
        previous_cache = self.previous.folder / CACHE_DIR if self.previous is not None else None
        # A full build's files are written by a thread (:class:`_Files`), in the worker if there is one.
        self.cache = _Cache(context.staging / CACHE_DIR, previous_cache, _Files() if self.previous is None else None)
        self.meta: Optional[dict] = None
        if self.previous is not None:
            # The cache comes from the same code and settings; a missing file of the
            # previous build is the build's to handle (it makes a full build then).
            self.meta = self.cache.read("meta")
            if self.meta.get("format") != CACHE_FORMAT or tuple(self.meta["options"]) != astuple(options):
                raise ValueError("static-search : le cache de la construction précédente ne correspond pas")
        self._records: list[Record] = []  # incremental build: the formations added
        # Full build, by input index: Ref and number keys (joined); the fields' total lengths.
        self._refs: list[str] = []
        self._keys: list[str] = []
        self._totals = [0] * len(FIELDS)
        self._file: list[Record] = []  # full build: the records file being filled
        self._file_of: dict[str, int] = {}  # Ref → records file
        # Full build: term → postings, ``signature id << 32 | input index``.
        self._postings: dict[str, array] = {}
        self._sig_ids: dict[tuple, int] = {}
        # A full build hands the analysis and the shards to a process of its own (the build's
        # own process reads and feeds every sink: the bottleneck); an incremental one has little to do.
        if worker is None:
            worker = WORKER and self.previous is None
        self._worker: Optional[_Worker] = _Worker(context, options) if worker and self.previous is None else None
        #: Incremental build: the search folder of the build before the previous one, taken over.
        self._taken: Optional[_Taken] = None

    # -- add / keep ---------------------------------------------------------------

    def add(self, formation: Formation, entry: Entry) -> None:
        if self._worker is not None:
            # The texts: the worker analyses them, off the build's own process (the index's writer
            # processes analyse the same texts for Whoosh).
            self._worker.add((ordered_texts(formation, entry), number_keys(entry), _Row.of(entry)))
            return
        record = make_record(formation, entry)
        if self.previous is not None:
            self._records.append(record)
            return
        self._add_record(record)

    def _add_record(self, record: Record) -> None:
        """Full build: a formation's postings, and its record to the cache."""
        doc = len(self._refs)
        self._refs.append(record[0])
        self._keys.append(record[5])
        self._totals = [t + n for t, n in zip(self._totals, record[2])]
        postings = self._postings
        ids = self._sig_ids
        stored = [stored_length(n) for n in record[2]]
        # A posting is one int, its signature's id above its input index: one append per term.
        values = {code: ids.setdefault(_signature(code, stored, record[1]), len(ids)) << 32 | doc for code in set(record[4])}
        for term, value in zip(record[3], map(values.__getitem__, record[4])):
            try:
                postings[term].append(value)
            except KeyError:
                postings[term] = array("Q", (value,))
        self._store(record)

    def keep(self, entry: Entry) -> None:
        """Unchanged since the previous build: its record and postings are in the cache."""

    def _store(self, record: Record) -> None:
        """Full build: records go to the cache as they come, :data:`RECORDS_PER_FILE` a file."""
        self._file.append(record)
        self._file_of[record[0]] = len(self._file_of) // RECORDS_PER_FILE
        if len(self._file) == RECORDS_PER_FILE:
            self._flush()

    def _flush(self) -> None:
        if self._file:
            self.cache.write(f"records/{self._file_of[self._file[0][0]]}", _blobs(self._file))
            self._file = []

    # -- finish --------------------------------------------------------------------

    def abort(self) -> None:
        if self._worker is not None:
            self._worker.stop()

    @property
    def hands_off(self) -> bool:
        """Whether finish() only hands the shards to the worker (the build then finishes this sink first)."""
        return self._worker is not None

    def finish(self, catalog: Catalog) -> None:
        if self._worker is not None:
            # The worker scores and writes the shards while the build goes on (the other sinks' finish):
            # :meth:`wait` collects its answer.
            self._worker.finish([e.ref for e in catalog.entries])
            return
        if self.root.exists():
            shutil.rmtree(self.root)
        if self.previous is None:
            self.root.mkdir(parents=True)
            self._finish_full(catalog)
            return
        self._taken = _take_over(self.previous.folder, Path("site") / SITE_DIR, self.root, CACHE_DIR / SPARE_DIR / SITE_DIR)
        if self._taken is None:
            self.root.mkdir(parents=True)
        self.cache.take_over(self.previous.folder)
        added = {r[0] for r in self._records} - self.previous.refs
        removed: set[str] = set()
        if len(catalog.entries) - len(added) != len(self.previous.refs):  # else each previous Ref is still here
            removed = self.previous.refs - {e.ref for e in catalog.entries}
        if added or removed:
            self._finish_moved(catalog, removed)
        else:
            _Update(self, catalog).run()

    def wait(self) -> None:
        """The worker's end of a full build (its error, if any, raised here)."""
        if self._worker is not None:
            worker, self._worker = self._worker, None
            worker.wait()

    def _finish_full(self, catalog: Catalog) -> None:
        self._flush()
        entries = catalog.entries
        docnum_of = {e.ref: i for i, e in enumerate(entries)}
        docnums = array("I", (docnum_of[ref] for ref in self._refs))
        del docnum_of
        keys: list[str] = [""] * len(entries)
        for i, joined in enumerate(self._keys):
            keys[docnums[i]] = joined
        self._refs = self._keys = []
        sigs = sorted(self._sig_ids, key=self._sig_ids.__getitem__)
        postings = self._postings

        def terms() -> Iterator[tuple[str, Groups]]:
            low = (1 << 32) - 1
            for term in sorted(postings):
                values = sorted(postings.pop(term))  # by signature id, then input index
                groups = []
                start, end = 0, len(values)
                while start < end:
                    sid = values[start] >> 32
                    stop = bisect_left(values, (sid + 1) << 32, start)
                    docs = sorted(map(docnums.__getitem__, map(low.__and__, values[start:stop])))
                    groups.append((sigs[sid], docs))
                    start = stop
                groups.sort()
                yield term, groups

        def members_of(term: str) -> set[int]:
            low = (1 << 32) - 1
            return set(map(docnums.__getitem__, map(low.__and__, postings[term])))

        _write_all(self, entries, terms(), set(postings), keys, self._totals, self._file_of, members_of)

    def _finish_moved(self, catalog: Catalog, removed: set[str]) -> None:
        """Formations added or removed: docnums move, and N: every shard is written again, from the cache."""
        entries = catalog.entries
        refs_of: dict[str, int] = self.cache.read("refs")
        changed = {r[0]: r for r in self._records}
        new_docnum = {e.ref: i for i, e in enumerate(entries)}
        # Old docnum → new one; -1 for a formation removed or changed (its postings are redone).
        remap = array("i", (-1 if r in changed or r in removed else new_docnum[r] for r in sorted(self.previous.refs)))
        keys: list[str] = [""] * len(entries)
        totals = [0] * len(FIELDS)

        def take(record: Record) -> None:
            nonlocal totals
            keys[new_docnum[record[0]]] = record[5]
            totals = [t + n for t, n in zip(totals, record[2])]

        for number in sorted(set(refs_of.values())):
            for ref, blob in self.cache.read(f"records/{number}").items():
                if ref in new_docnum and ref not in changed:
                    take(marshal.loads(blob))
        for record in changed.values():
            take(record)
        fresh: dict[str, dict[tuple, list[int]]] = {}
        for ref, record in changed.items():
            for term, sig in _signatures(record).items():
                fresh.setdefault(term, {}).setdefault(sig, []).append(new_docnum[ref])
        stored: dict[str, Groups] = {}
        for i in range(TERM_FILES):
            stored.update(self.cache.read_terms(f"terms/{i}"))
        vocabulary = set(stored) | set(fresh)

        def terms() -> Iterator[tuple[str, Groups]]:
            for term in sorted(vocabulary):
                by_sig: dict[tuple, list[int]] = {}
                for sig, docs in stored.pop(term, ()):
                    kept = [d for d in map(remap.__getitem__, docs) if d >= 0]
                    if kept:
                        by_sig[sig] = kept
                for sig, docs in fresh.get(term, {}).items():
                    by_sig[sig] = sorted(by_sig.get(sig, []) + docs)
                if by_sig:
                    yield term, sorted(by_sig.items())

        file_of = _update_records(self.cache, refs_of, changed, removed)
        _write_all(self, entries, terms(), vocabulary, keys, totals, file_of)


# --------------------------------------------------------------------------
# The worker process of a full build
# --------------------------------------------------------------------------

#: Whether a full build runs the sink in a process of its own (``CATALOGUE_STATIC_WORKER=0`` turns it
#: off). The build's process is the critical path: it only sends each formation's terms, keys and
#: row, and the worker scores and writes the shards while the build finishes its other sinks.
WORKER = os.environ.get("CATALOGUE_STATIC_WORKER", "1") != "0"
#: Formations sent to the worker at once.
WORKER_BATCH = 256
#: A full build writes its number and doc shards in a forked process while it scores the terms (see _write_all).
NUMBERS_APART = True


class _Row:
    """What the shards need of an :class:`Entry` (its row, weight and Ref), as the worker gets it."""

    __slots__ = ("ref", "intitule", "organisme", "ville", "codepostal", "archived", "datemaj", "row_text", "key_crcs")

    def __init__(self, ref, intitule, organisme, ville, codepostal, archived, datemaj):
        self.ref, self.intitule, self.organisme = ref, intitule, organisme
        self.ville, self.codepostal, self.archived, self.datemaj = ville, codepostal, archived, datemaj
        # Computed as the formation comes, while the worker waits for the next ones.
        self.row_text: Optional[str] = None
        self.key_crcs: Optional[array] = None

    @property
    def place(self) -> "_Row":
        return self  # ville and codepostal ("" when absent): row_of and _row_weight read them here

    @staticmethod
    def of(entry: Entry) -> tuple:
        return tuple(row_of(entry))


class _Worker:
    """A forked process running the sink of a full build: the build's process only sends each
    formation's texts, number keys and row (a twentieth of the sink's CPU), in batches."""

    def __init__(self, context: SinkContext, options: ShardOptions):
        import multiprocessing

        mp = multiprocessing.get_context("fork")
        self._conn, child = mp.Pipe()
        worker_context = SinkContext(context.staging, context.settings, context.today, context.geo, None)
        self._process = mp.Process(target=_worker_main, args=(child, worker_context, options), daemon=True,
                                   name="catalogue-static-search")
        self._process.start()
        child.close()
        self._batch: list[tuple] = []

    def add(self, item: tuple) -> None:
        self._batch.append(item)
        if len(self._batch) >= WORKER_BATCH:
            self._send(("add", self._batch))
            self._batch = []

    def _send(self, message: tuple) -> None:
        try:
            self._conn.send(message)
        except (BrokenPipeError, ConnectionResetError, EOFError):
            self._raise()

    def finish(self, refs: list[str]) -> None:
        """The last formations and the catalogue's Refs, in docnum order; :meth:`wait` for the answer."""
        if self._batch:
            self._send(("add", self._batch))
            self._batch = []
        self._send(("finish", refs))

    def wait(self) -> None:
        self._raise()

    def _raise(self) -> None:
        """The worker's answer: nothing when it finished, its error otherwise."""
        try:
            kind, detail = self._conn.recv()
        except (EOFError, OSError):
            kind, detail = "error", f"le processus s'est arrêté (code {self._process.exitcode})"
        self._process.join(timeout=60)
        self._conn.close()
        if kind != "done":
            raise RuntimeError(f"static-search : {detail}")

    def stop(self) -> None:
        if self._process.is_alive():
            self._process.terminate()
        self._process.join(timeout=10)
        self._conn.close()


def _worker_main(conn, context: SinkContext, options: ShardOptions) -> None:
    # The collector would walk every object inherited from the build: they are never freed here.
    gc.freeze()
    try:
        sink = StaticSearchSink(context, options, worker=False)
        rows: dict[str, _Row] = {}
        while True:
            try:
                kind, payload = conn.recv()
            except EOFError:
                return  # the build stopped without finishing
            if kind == "add":
                for texts, keys, values in payload:
                    row = _Row(*values)
                    rows[row.ref] = row
                    record = _make_record(terms_of(texts), keys, row)
                    sink._add_record(record)
                    row.row_text = _dumps(values)
                    row.key_crcs = _crcs(record[5])
            else:
                if len(payload) != len(rows):
                    raise ValueError(f"{len(rows)} formations reçues, {len(payload)} dans le catalogue")
                sink.finish(Catalog([rows[ref] for ref in payload], context.today))
                conn.send(("done", None))
                return
    except BaseException as exc:
        traceback.print_exc()  # the whole story on the build's stderr; its last line to the build
        try:
            conn.send(("error", "".join(traceback.format_exception_only(exc)).strip()))
        except OSError:
            pass


def _update_records(
    cache: _Cache,
    refs_of: dict[str, int],
    changed: dict[str, Record],
    removed: set[str],
    read: Optional[Callable[[int], dict[str, bytes]]] = None,
) -> dict[str, int]:
    """Rewrite the records files holding a changed or removed formation; new ones go to new files.

    ``read`` gives a records file of the previous build, as stored (by default, read from its cache)."""
    read = read or (lambda number: cache.read(f"records/{number}"))
    touched: dict[int, list[str]] = {}
    for ref in chain(changed, removed):
        if ref in refs_of:
            touched.setdefault(refs_of[ref], []).append(ref)
    file_of = dict(refs_of)
    for number, refs in sorted(touched.items()):
        records = {
            ref: marshal.dumps(changed[ref]) if ref in changed else blob for ref, blob in read(number).items() if ref not in removed
        }
        if records:
            cache.write(f"records/{number}", records)
        else:
            cache.dropped.add(f"records/{number}")
        for ref in refs:
            if ref in removed:
                del file_of[ref]
    new = [r for ref, r in changed.items() if ref not in refs_of]
    following = max(refs_of.values(), default=-1) + 1
    for start in range(0, len(new), RECORDS_PER_FILE):
        chunk = new[start : start + RECORDS_PER_FILE]
        cache.write(f"records/{following}", _blobs(chunk))
        for record in chunk:
            file_of[record[0]] = following
        following += 1
    return file_of


# --------------------------------------------------------------------------
# Writing every shard (a full build, or formations added or removed)
# --------------------------------------------------------------------------


def _write_all(
    sink: StaticSearchSink,
    entries: list[Entry],
    terms: Iterable[tuple[str, Groups]],
    vocabulary: set[str],
    keys: list[str],
    totals: list[int],
    file_of: dict[str, int],
    members_of: Optional[Callable[[str], set[int]]] = None,
) -> None:
    """Every file of the search folder, and the cache, from every term's postings (in term order).

    A full build given ``members_of`` (a term's docnums, any time) writes the number and doc shards
    in a forked process while this one scores the terms: they need nothing of the terms but the
    members of the few in number queries, and this is the build's tail, with the other core idle.
    """
    options = sink.options
    cache = sink.cache
    n = len(entries)
    averages = [average_length(total, n) for total in totals]
    if sink.previous is not None:
        output = _Output(sink.root, sink.previous.folder / "site" / SITE_DIR, sink.meta["digests"], keep=False, taken=sink._taken)
    else:
        output = _Output(sink.root, None, {}, spare=cache.folder / SPARE_DIR / SITE_DIR, files=cache.files)
    apart: Optional[_Apart] = None
    if NUMBERS_APART and members_of is not None and output.previous is None and hasattr(os, "fork"):
        apart = _Apart(lambda: _numbers_apart(output, entries, keys, vocabulary, members_of, options))
    try:
        queries = _NumberQueries.of(keys, vocabulary) if apart is None else None
        wanted = queries.wanted() if queries is not None else set()
        scorer = _Scorer(n, averages, options)
        entries_of: dict[str, str] = {}
        sizes: dict[str, int] = {}
        paged: dict[str, tuple[int, bool]] = {}
        page_files: set[str] = set()  # p/ and b/ files written (terms whose crc32 clash share one)
        doc_sets: dict[str, set[int]] = {}
        term_files: dict[str, dict[str, list]] = {f"terms/{i}": {} for i in range(TERM_FILES)}
        for term, groups in terms:
            out = scorer.output(groups)
            entries_of[term] = out.entry
            sizes[term] = len(term) + len(out.entry) + 4
            if len(out.pages) or out.members:
                paged[term] = out.paged
            for name, value in _page_values(term, out):
                values = {term: value}
                if name in page_files:
                    values.update((t, _dumps(v)) for t, v in json.loads(output.read_back(name)).items())
                page_files.add(name)
                output.write(name, _object_text(values))
            if term in wanted:
                doc_sets[term] = _members(groups)
            term_files[_Cache.term_file(term)][term] = _pack(groups)
        split = plan_split(sizes, options.term_shard_bytes)
        leaves: dict[str, list[str]] = {}
        for term in sorted(entries_of):
            leaves.setdefault(leaf_of(term, split), []).append(term)
        for leaf, leaf_terms in sorted(leaves.items()):
            output.write(f"t/{leaf_file(leaf)}.json", _object_text({t: entries_of[t] for t in leaf_terms}))
        del entries_of
        if apart is not None:
            numbers = apart.result()
            output.digests.update(numbers.digests)  # in the order they were written, as here
        else:
            assert queries is not None
            # ``vocabulary`` may hold terms that lost their last formation: candidates are those
            # whose terms are all still indexed.
            queries.candidates = {q: q_terms for q, q_terms in queries.candidates.items() if all(t in sizes for t in q_terms)}
            texted = {q for q, q_terms in queries.candidates.items() if _all_match(q_terms, doc_sets)}
            numbers = _number_files(output, entries, keys, queries, texted, options)
        tables = _write_manifest_and_page(sink, output, n, averages, numbers.buckets, numbers.queries.digitless > 0, split)
        for name, stored in term_files.items():
            cache.write(name, stored)
        cache.write("refs", file_of)
        cache.write("keywords", sorted(numbers.queries.keywords))
        cache.write(
            "meta",
            _meta(options, n, totals, averages, sizes, split, paged, numbers.buckets, numbers.weight, numbers.queries,
                  numbers.texted, numbers.big, output, tables),
        )
        if cache.files is not None:
            cache.files.flush()
        if output.previous is not None:
            output.link_rest()
        cache.link_rest()
    except BaseException:
        if apart is not None:
            apart.stop()
        raise


@dataclass
class _Numbers:
    """What the manifest and the cache keep of the number and doc shards."""

    queries: _NumberQueries
    texted: set[str]
    weight: int
    buckets: int
    big: dict[str, str]
    digests: dict[str, str]  # written apart: their files' digests, in order


def _number_files(
    output: _Output, entries: list[Entry], keys: list[str], queries: _NumberQueries, texted: set[str], options: ShardOptions
) -> _Numbers:
    """The number shards and the doc shards."""
    weight = sum(len(k) + 8 for joined in keys for k in _split_keys(joined)) + sum(_row_weight(e) for e in entries)
    buckets = _bucket_count(weight, options)
    big = _write_numbers(output, entries, keys, buckets, texted, options)
    _write_docs(output, entries, range(-(-len(entries) // options.docs_per_shard)), options)
    return _Numbers(queries, texted, weight, buckets, big, {})


def _numbers_apart(
    output: _Output,
    entries: list[Entry],
    keys: list[str],
    vocabulary: set[str],
    members_of: Callable[[str], set[int]],
    options: ShardOptions,
) -> _Numbers:
    """:func:`_number_files` of a full build, in the forked process: its own writer thread, its own digests."""
    files = _Files()
    mine = _Output(output.root, None, {}, files=files)
    mine.spare = output.spare
    queries = _NumberQueries.of(keys, vocabulary)
    # A full build's vocabulary is the indexed terms: each has members.
    queries.candidates = {q: q_terms for q, q_terms in queries.candidates.items() if all(t in vocabulary for t in q_terms)}
    doc_sets = {t: members_of(t) for t in queries.wanted()}
    texted = {q for q, q_terms in queries.candidates.items() if _all_match(q_terms, doc_sets)}
    numbers = _number_files(mine, entries, keys, queries, texted, options)
    files.flush()
    numbers.digests = mine.digests
    return numbers


class _Apart:
    """A function run in a forked process, its result (pickled) or its error read back by :meth:`result`.

    The child dies with this process (a killed build leaves nothing running); it leaves the
    collector off, as everything it inherits stays alive until it exits.
    """

    def __init__(self, function: Callable[[], object]):
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover  (the child: coverage does not follow it)
            os.close(read)
            code = 1
            try:
                die_with_parent()
                gc.disable()
                try:
                    data = pickle.dumps(("done", function()), protocol=pickle.HIGHEST_PROTOCOL)
                except BaseException as exc:  # noqa: BLE001  (raised in the parent by result())
                    traceback.print_exc()
                    data = pickle.dumps(("error", "".join(traceback.format_exception_only(exc)).strip()))
                with os.fdopen(write, "wb") as pipe:
                    pipe.write(data)
                code = 0
            finally:
                try:
                    sys.stderr.flush()
                finally:
                    os._exit(code)
        os.close(write)
        self._pid: Optional[int] = pid
        self._read: Optional[int] = read

    def result(self):
        read, self._read = self._read, None
        with os.fdopen(read, "rb") as pipe:
            data = pipe.read()
        pid, self._pid = self._pid, None
        _, status = os.waitpid(pid, 0)
        if not data:
            raise RuntimeError(f"static-search : le processus des numéros s'est arrêté (statut {status})")
        kind, value = pickle.loads(data)
        if kind != "done":
            raise RuntimeError(f"static-search : {value}")
        return value

    def stop(self) -> None:
        """The build failed: the process killed and its exit collected, unless :meth:`result` did."""
        if self._pid is not None:
            pid, self._pid = self._pid, None
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
        if self._read is not None:
            read, self._read = self._read, None
            os.close(read)


def _blobs(records: list[Record]) -> dict[str, bytes]:
    """A records file as the cache keeps it: Ref → the record, marshalled."""
    return {record[0]: marshal.dumps(record) for record in records}


def _pack(groups: Groups) -> list:
    """Groups as the cache keeps them: docnums as the bytes of an ``array("I")``."""
    return [(sig, array("I", docs).tobytes()) for sig, docs in groups]


def _unpack(packed: list) -> Groups:
    return [(sig, array("I", docs)) for sig, docs in packed]


def _page_values(term: str, out: _TermOutput) -> Iterator[tuple[str, str]]:
    """The term's values in the merged files: ``p/`` pages 2.., ``b/`` members."""
    if out.members is not None and out.members is not _KEPT:
        # b/<crc>-0: current formations, b/<crc>-1: archived ones (fetched only when asked).
        for which, members in enumerate(out.members):
            yield f"b/{page_file(term, which)}.json", json.dumps(members)
    for p, page in enumerate(out.pages, start=1):
        yield f"p/{page_file(term, p)}.json", page


def _page_names(term: str, paged: tuple[int, bool]) -> list[str]:
    pages, members = paged
    names = [f"p/{page_file(term, p)}.json" for p in range(1, pages)]
    if members:
        names += [f"b/{page_file(term, 0)}.json", f"b/{page_file(term, 1)}.json"]
    return names


def _meta(options, n, totals, averages, sizes, split, paged, buckets, weight, queries, texted, big, output, tables) -> dict:
    return {
        "format": CACHE_FORMAT,
        "options": astuple(options),
        "n": n,
        "totals": list(totals),
        "averages": list(averages),
        "sizes": sizes,
        "split": sorted(split),
        "paged": paged,
        "buckets": buckets,
        "weight": weight,
        "digitless": queries.digitless,
        "candidates": queries.candidates,
        "texted": sorted(texted),
        "big": big,
        "digests": output.digests,
        "unicode": tables,
    }


def _write_manifest_and_page(
    sink: StaticSearchSink, output: _Output, n: int, averages: list[float], buckets: int, alpha: bool, split: set[str]
) -> dict[str, list[int]]:
    """The manifest and the page; returns the Unicode tables (kept in the cache)."""
    options = sink.options
    tables = _unicode_tables(sink.meta)
    manifest = {
        "format": FORMAT_VERSION,
        "n": n,
        "avg": dict(zip(FIELDS, averages)),
        "docs": options.docs_per_shard,
        "numeros": buckets,
        "alpha": alpha,
        "split": sorted(split),
        "stop": sorted(STOP_WORDS),
        "maxTerms": MAX_QUERY_TERMS,
        "topK": [options.top_k, options.top_k_archived],
        "maxPages": options.max_pages,
        "unicode": tables,
    }
    output.write("manifest.json", _dumps(manifest))
    _write_page(sink, output.version(), buckets, alpha)
    return tables


def _write_page(sink: StaticSearchSink, version: str, buckets: int, alpha: bool) -> None:
    from ..render import STATIC_DIR, make_environment

    script = compact_js((STATIC_DIR / SCRIPT).read_text(encoding="utf-8"))
    _write_or_link(sink, SCRIPT, script)
    script_version = hashlib.sha256(script.encode("utf-8")).hexdigest()[:10]
    settings = sink.context.settings
    env = make_environment(settings)
    html = env.get_template("recherche.html").render(
        title="Rechercher une formation",
        description="Rechercher une formation par mots-clés, par Ref, numéro d'action ou de session, SIRET ou code RNCP.",
        canonical=settings.site_url.rstrip("/") + f"/{SITE_DIR}/",
        nav="recherche",
        search={
            "base": f"/{SITE_DIR}/",
            "version": version,
            "numeros": buckets,
            "docs": sink.options.docs_per_shard,
            "alpha": int(alpha),
            "script": f"/{SITE_DIR}/{SCRIPT}?v={script_version}",
        },
    )
    _write_or_link(sink, "index.html", html)


def _write_or_link(sink: StaticSearchSink, name: str, text: str) -> None:
    """Write a file of the search folder, or link the previous build's when it is the same."""
    data = text.encode("utf-8")
    if sink.previous is not None:
        previous = sink.previous.folder / "site" / SITE_DIR / name
        if previous.exists() and previous.read_bytes() == data:
            link_file(previous, sink.root / name)
            return
    (sink.root / name).write_bytes(data)


def _write_docs(output: _Output, entries: list[Entry], shards: Iterable[int], options: ShardOptions) -> None:
    size = options.docs_per_shard
    for k in shards:
        rows = [_row_text(e) for e in entries[k * size : (k + 1) * size]]
        if rows:
            output.write(f"d/{k}.json", "[" + ",".join(rows) + "]")  # as _dumps writes the list of rows
        else:
            output.drop(f"d/{k}.json")


# -- numbers ---------------------------------------------------------------------


def _bucket_count(weight: int, options: ShardOptions) -> int:
    buckets = 1
    while buckets * options.number_shard_bytes < weight:
        buckets *= 2
    return buckets


_ASCII_DIGIT = re.compile(r"[0-9]")


def _has_digit(key: str) -> bool:
    return bool(_ASCII_DIGIT.search(key)) or any(c.isdigit() for c in key)


_ASCII_WORD = re.compile(r"[a-z0-9]+")


def _query_terms(query: str) -> list[str]:
    """``_unique(analyse(query))``, quicker for an ASCII number: its words are its runs of
    letters and digits, and a word of digits is its own term from 2 digits on."""
    if not query.isascii():
        return _unique(analyse(query))
    terms = []
    for word in _ASCII_WORD.findall(query.lower()):
        if word.isdigit():
            if len(word) >= 2:
                terms.append(word)
        else:
            terms.extend(analyse(word))
    return _unique(terms)


def _query_status(query: str, vocabulary: set[str], known: dict[str, tuple]) -> tuple[Optional[list[str]], Optional[str]]:
    """``(terms, None)`` when every term of a number query is indexed (its text search may find
    something); else ``(None, a term of it that is not)``, or ``(None, None)`` without terms.

    An ASCII composite ``ref|action|session`` is made of its parts' (a formation's queries
    share them: ``known``); a word of digits not indexed settles it without the analysis chain.
    """
    parts = query.split("|") if "|" in query and query.isascii() else [query]
    terms: list[str] = []
    for part in parts:
        status = known.get(part)
        if status is None:
            status = known[part] = _part_status(part, vocabulary)
        if status[0] is None:
            return status
        terms += status[0]
    if not terms:
        return None, None
    return (_unique(terms) if len(parts) > 1 else terms), None


def _part_status(part: str, vocabulary: set[str]) -> tuple[Optional[list[str]], Optional[str]]:
    if part.isascii():
        for word in _ASCII_WORD.findall(part.lower()):
            if len(word) >= 2 and word.isdigit() and word not in vocabulary:
                return None, word
    terms = _query_terms(part)
    for term in terms:
        if term not in vocabulary:
            return None, term
    return terms, None


@dataclass
class _NumberQueries:
    """The number queries whose text search may find something, and what they are made of."""

    candidates: dict[str, list[str]]  # queries whose terms are all indexed → those terms
    #: For each other query, a term of it not indexed; and every candidate's terms: a query
    #: can only become a candidate once one of these is indexed (incremental builds).
    keywords: set[str]
    digitless: int  # keys without a digit (the page looks up such queries only when there are some)

    def wanted(self) -> set[str]:
        return {t for terms in self.candidates.values() for t in terms}

    def check(self, query: str, vocabulary: set[str], known: dict[str, tuple]) -> Optional[list[str]]:
        """Put ``query`` in the candidates or not; its terms when it is."""
        terms, missing = _query_status(query, vocabulary, known)
        if terms is None:
            self.candidates.pop(query, None)
            if missing is not None:
                self.keywords.add(missing)
            return None
        self.candidates[query] = terms
        self.keywords.update(terms)
        return terms

    @classmethod
    def of(cls, keys: Iterable[str], vocabulary: set[str]) -> "_NumberQueries":
        """From each formation's keys (joined by newlines)."""
        queries = cls({}, set(), 0)
        for joined in keys:
            formation_keys = _split_keys(joined)
            queries.digitless += sum(1 for k in formation_keys if not _has_digit(k))
            known: dict[str, tuple] = {}
            for query in query_strings(formation_keys):
                queries.check(query, vocabulary, known)
        return queries


def _big_names(keys: Iterable[str], buckets: int) -> dict[str, str]:
    """The file of each key with many formations: ``g`` + its crc32, ``x``s added in (bucket, key) order on a clash."""
    names: dict[str, str] = {}
    used: set[str] = set()
    for _, key in sorted((bucket_of(k, buckets), k) for k in keys):
        name = "g" + format(zlib.crc32(key.encode("utf-8")), "08x")
        while name in used:
            name += "x"
        used.add(name)
        names[key] = name
    return names


def _bucket_text(keys: dict[str, list[int]], texted: Iterable[str], rows: dict[int, str], big: dict[str, str]) -> str:
    """A number shard; ``rows``: docnum → its row, serialised."""
    table = {key: big.get(key, codes) for key, codes in keys.items()} if big else keys  # codes are kept ascending
    head = _dumps({"k": table, "t": sorted(texted)})
    # Rows are spliced in serialised, in docnum order.
    body = ",".join(f'"{d}":{rows[d]}' for d in sorted(rows))
    return head[:-1] + ',"r":{' + body + "}}"


def _write_numbers(
    output: _Output, entries: list[Entry], keys: list[str], buckets: int, texted: set[str], options: ShardOptions
) -> dict[str, str]:
    """Every number shard; returns the big keys' file names.

    The keys are put in bucket order by a counting sort over arrays, then read again from
    each formation's keys: a million keys at 100,000 formations take arrays of ints, not
    a million strings.
    """
    # Each key's index (formations in docnum order, keys in their order), by bucket: a key's
    # bucket is its canonical part's; a formation's keys mostly share one (its Ref's).
    by_bucket: dict[int, array] = {}
    starts = array("I")  # each formation's first key index
    index = 0
    mask = buckets - 1  # a power of 2
    for docnum, joined in enumerate(keys):
        starts.append(index)
        crcs = _key_crcs(entries[docnum], joined)
        for crc in crcs:
            bucket = crc & mask
            try:
                by_bucket[bucket].append(index)
            except KeyError:
                by_bucket[bucket] = array("I", (index,))
            index += 1
    starts.append(index)
    rows_of: dict[int, list[int]] = {}
    for docnum, entry in enumerate(entries):
        rows_of.setdefault(bucket_of(entry.ref, buckets), []).append(docnum)
    texted_of: dict[int, list[str]] = {}
    for query in texted:
        texted_of.setdefault(bucket_of(query, buckets), []).append(query)
    big: dict[str, str] = {}
    used: set[str] = set()
    limit = options.big_key_codes

    def write(bucket: int, table: dict[str, list[int]]) -> None:
        for key in sorted(table):
            if len(table[key]) > limit:
                name = "g" + format(zlib.crc32(key.encode("utf-8")), "08x")
                while name in used:
                    name += "x"
                used.add(name)
                big[key] = name
                output.write(f"n/{name}.json", _dumps({"c": table[key]}))
        rows = {d: _row_text(entries[d]) for d in rows_of.pop(bucket, [])}
        output.write(f"n/{bucket:x}.json", _bucket_text(table, texted_of.pop(bucket, []), rows, big))

    for bucket in sorted(by_bucket):
        table: dict[str, list[int]] = {}
        docnum, split, first, code = -1, [], 0, 0
        for i in by_bucket.pop(bucket):
            if not first <= i < starts[docnum + 1]:  # another formation's key (indexes ascend)
                docnum = bisect_right(starts, i) - 1
                split, first = _split_keys(keys[docnum]), starts[docnum]
                code = docnum * 2 + int(entries[docnum].archived)
            key = split[i - first]
            try:
                table[key].append(code)
            except KeyError:
                table[key] = [code]
        write(bucket, table)
    for bucket in sorted(texted_of):  # a bare RNCP code's bucket may hold no key
        write(bucket, {})
    return big


def _row_text(entry) -> str:
    """A formation's row, serialised (the worker serialises it as the formation comes)."""
    text = getattr(entry, "row_text", None)
    return text if text is not None else _dumps(row_of(entry))


def _key_crcs(entry, joined: str) -> Iterable[int]:
    """The crc32 of each key's canonical part (the worker computes them as the formation comes)."""
    crcs = getattr(entry, "key_crcs", None)
    return crcs if crcs is not None else _crcs(joined)


def _crcs(joined: str) -> array:
    """The crc32 of the canonical part of each of a formation's keys (joined by newlines); they share parts."""
    known: dict[str, int] = {}
    result = []
    for key in _split_keys(joined):
        part = canonical(key)
        crc = known.get(part)
        if crc is None:
            crc = known[part] = zlib.crc32(part.encode("utf-8"))
        result.append(crc)
    return array("I", result)


def _row_weight(entry: Entry) -> int:
    place = entry.place
    return 40 + len(entry.ref) + len(entry.intitule) + len(entry.organisme) + (len(place.ville or "") if place else 0)


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _all_match(terms: list[str], doc_sets: dict[str, set[int]]) -> bool:
    """Whether an AND of ``terms`` finds a formation (the text half of a number query)."""
    if not terms or any(t not in doc_sets for t in terms):
        return False
    sets = sorted((doc_sets[t] for t in set(terms)), key=len)
    return bool(set.intersection(*sets))


# --------------------------------------------------------------------------
# Updating the previous build's shards (the same Refs, some formations changed)
# --------------------------------------------------------------------------


class _Update:
    """An incremental build where the Refs did not change: docnums and N are the previous build's.

    A term's shard entry depends on N, the rounded average lengths, its document
    frequency per field and its postings' signatures: only the terms a changed
    formation held or holds with another signature change (every term when an
    average moved). The number shards of its old and new keys, its row's, and
    those whose texted queries changed; its doc shard; the manifest and page.
    """

    def __init__(self, sink: StaticSearchSink, catalog: Catalog):
        self.sink = sink
        self.options = sink.options
        self.cache = sink.cache
        self.meta = sink.meta
        self.entries = catalog.entries
        self.output = _Output(sink.root, sink.previous.folder / "site" / SITE_DIR, self.meta["digests"], taken=sink._taken)
        self.changed: dict[str, Record] = {r[0]: r for r in sink._records}
        self.refs_of: dict[str, int] = self.cache.read("refs")
        self._record_files: dict[int, dict[str, bytes]] = {}  # as stored
        self._term_files: dict[str, dict[str, list]] = {}  # as stored (packed)

    def record(self, ref: str) -> Record:
        """The previous build's record of ``ref``."""
        return marshal.loads(self.records_in(self.refs_of[ref])[ref])

    def records_in(self, number: int) -> dict[str, bytes]:
        """A records file of the previous build, as stored."""
        if number not in self._record_files:
            self._record_files[number] = self.cache.read(f"records/{number}")
        return self._record_files[number]

    def stored_groups(self, term: str) -> Groups:
        """The term's postings in the previous build (unpacked only when asked for)."""
        name = _Cache.term_file(term)
        if name not in self._term_files:
            self._term_files[name] = self.cache.read(name)
        return _unpack(self._term_files[name].get(term, []))

    def run(self) -> None:
        meta, options, entries = self.meta, self.options, self.entries
        n = len(entries)
        docnum = {ref: bisect_left(entries, ref, key=_ref_of) for ref in self.changed}
        old = {ref: self.record(ref) for ref in self.changed}
        totals = list(meta["totals"])
        weight, digitless = meta["weight"], meta["digitless"]
        for ref, new in self.changed.items():
            before = old[ref]
            totals = [t - a + b for t, a, b in zip(totals, before[2], new[2])]
            weight += new[6] - before[6]
            digitless += sum(1 for k in _keys(new) if not _has_digit(k)) - sum(1 for k in _keys(before) if not _has_digit(k))
        averages = [average_length(total, n) for total in totals]

        # Which terms' postings changed, and which terms' members.
        moves: dict[str, list[tuple[int, Optional[tuple], Optional[tuple]]]] = {}
        members_changed: set[str] = set()
        for ref, new in self.changed.items():
            before, after = _signatures(old[ref]), _signatures(new)
            # The terms whose signature changed (most did not), found by sets of pairs in C.
            for term in {term for term, _ in before.items() ^ after.items()}:
                a, b = before.get(term), after.get(term)
                moves.setdefault(term, []).append((docnum[ref], a, b))
                if a is None or b is None or a[-1] != b[-1]:
                    members_changed.add(term)
        sizes: dict[str, int] = dict(meta["sizes"])
        vocabulary_before = set(sizes)
        rescore = averages != meta["averages"]
        scored = (vocabulary_before | set(moves)) if rescore else set(moves)
        groups_of: dict[str, Groups] = {}
        for term in sorted(scored):
            groups = self.stored_groups(term)
            if term in moves:
                groups = _apply(groups, moves[term])
                stored = self._term_files[_Cache.term_file(term)]
                if groups:
                    stored[term] = _pack(groups)
                else:
                    stored.pop(term, None)
            groups_of[term] = groups
        for name in sorted({_Cache.term_file(t) for t in moves}):
            self.cache.write(name, dict(sorted(self._term_files[name].items())))

        scorer = _Scorer(n, averages, options)
        # Same N: a term whose formations are the same (current and archived) keeps its members.
        had_members = {term for term, (_, members) in meta["paged"].items() if members}
        outputs = {
            term: (scorer.output(groups, members=term in members_changed or term not in had_members) if groups else None)
            for term, groups in groups_of.items()
        }
        paged: dict[str, tuple[int, bool]] = dict(meta["paged"])
        self._write_pages(outputs, paged)
        for term, out in outputs.items():
            if out is None:
                sizes.pop(term, None)
            else:
                sizes[term] = len(term) + len(out.entry) + 4
        split = plan_split(sizes, options.term_shard_bytes)
        self._write_leaves(outputs, sizes, vocabulary_before, set(meta["split"]), split)

        vocabulary = set(sizes)
        buckets = _bucket_count(weight, options)
        keywords_before = set(self.cache.read("keywords"))
        queries, texted, big = self._numbers(
            docnum, old, vocabulary, vocabulary_before, keywords_before, members_changed, groups_of, buckets, digitless
        )
        size = options.docs_per_shard
        _write_docs(self.output, entries, sorted({d // size for d in docnum.values()}), options)
        tables = _write_manifest_and_page(self.sink, self.output, n, averages, buckets, digitless > 0, split)
        self.output.link_rest()
        file_of = _update_records(self.cache, self.refs_of, self.changed, set(), self.records_in)
        if file_of != self.refs_of:
            self.cache.write("refs", file_of)
        if queries.keywords != keywords_before:
            self.cache.write("keywords", sorted(queries.keywords))
        self.cache.write(
            "meta",
            _meta(options, n, totals, averages, sizes, split, paged, buckets, weight, queries, texted, big, self.output, tables),
        )
        self.cache.link_rest()

    # -- terms ---------------------------------------------------------------------

    def _write_pages(self, outputs: dict[str, Optional[_TermOutput]], paged: dict[str, tuple[int, bool]]) -> None:
        """The p/ and b/ files of the terms scored again (a file may hold other terms too)."""
        names: set[str] = set()
        for term, out in outputs.items():
            names.update(_page_names(term, paged.get(term, (1, False))))
            if out is not None:
                names.update(_page_names(term, out.paged))
            if out is not None and (out.pages or out.members):
                paged[term] = out.paged
            else:
                paged.pop(term, None)
        merged: dict[str, dict[str, str]] = {}
        kept = {t for t, out in outputs.items() if out is not None and out.members is _KEPT}
        for name in names:
            previous = self.output.previous_members(name)
            keep = kept if name.startswith("b/") else set()
            merged[name] = {t: v for t, v in previous.items() if t not in outputs or t in keep}
        for term, out in outputs.items():
            if out is not None:
                for name, value in _page_values(term, out):
                    merged[name][term] = value
        for name, values in sorted(merged.items()):
            if values:
                self.output.write(name, _object_text(values))
            else:
                self.output.drop(name)

    def _write_leaves(
        self,
        outputs: dict[str, Optional[_TermOutput]],
        sizes: dict[str, int],
        vocabulary_before: set[str],
        split_before: set[str],
        split: set[str],
    ) -> None:
        """The t/ shards whose terms, or one of whose terms' entries, changed."""
        if split == split_before:
            # Same prefixes: only the shards of the terms scored again, from their previous bytes.
            by_leaf: dict[str, list[str]] = {}
            for term in outputs:
                by_leaf.setdefault(leaf_of(term, split), []).append(term)
            for leaf, terms in sorted(by_leaf.items()):
                name = f"t/{leaf_file(leaf)}.json"
                previous = self.output.previous_members(name)
                values = {t: v for t, v in previous.items() if t not in outputs}
                values.update((t, outputs[t].entry) for t in terms if outputs[t] is not None)
                if values:
                    self.output.write(name, _object_text(values))
                else:
                    self.output.drop(name)
            return
        before = _leaves(vocabulary_before, split_before)
        after = _leaves(sizes, split)
        for leaf in before.keys() - after.keys():
            self.output.drop(f"t/{leaf_file(leaf)}.json")
        previous: dict[str, dict[str, str]] = {}
        for leaf, terms in sorted(after.items()):
            if before.get(leaf) == terms and not any(t in outputs for t in terms):
                continue
            values = {}
            for term in terms:
                out = outputs.get(term)
                if out is not None:
                    values[term] = out.entry
                    continue
                name = f"t/{leaf_file(leaf_of(term, split_before))}.json"
                if name not in previous:
                    previous[name] = self.output.previous_members(name)
                values[term] = previous[name][term]
            self.output.write(f"t/{leaf_file(leaf)}.json", _object_text(values))

    # -- numbers -------------------------------------------------------------------

    def _numbers(
        self,
        docnum: dict[str, int],
        old: dict[str, Record],
        vocabulary: set[str],
        vocabulary_before: set[str],
        keywords_before: set[str],
        members_changed: set[str],
        groups_of: dict[str, Groups],
        buckets: int,
        digitless: int,
    ) -> tuple[_NumberQueries, set[str], dict[str, str]]:
        """The number shards of the changed keys, rows and texted queries (all of them when
        their number moved)."""
        meta, options = self.meta, self.options
        if buckets != meta["buckets"]:
            return self._numbers_again(vocabulary, groups_of, buckets)
        queries = _NumberQueries(dict(meta["candidates"]), set(keywords_before), digitless)
        texted = set(meta["texted"])
        shards = _NumberShards(self.output, buckets, meta["big"], options)
        affected: set[str] = set()
        present: set[str] = set()  # queries of the changed formations' keys
        for ref, new in self.changed.items():
            d = docnum[ref]
            before, after = old[ref], new
            old_code, new_code = d * 2 + before[1], d * 2 + after[1]
            old_keys, new_keys = set(_keys(before)), set(_keys(after))
            for key in old_keys - new_keys if old_code == new_code else old_keys:
                shards.remove(key, old_code)
            for key in new_keys - old_keys if old_code == new_code else new_keys:
                shards.add(key, new_code)
            entry = self.entries[d]
            shards.set_row(entry.ref, d, row_of(entry))
            before_queries, after_queries = query_strings(old_keys), query_strings(new_keys)
            # A query that stays has the same terms: only the vocabulary and postings matter (below).
            affected |= before_queries ^ after_queries
            present |= after_queries
        if (vocabulary - vocabulary_before) & keywords_before:
            # A newly indexed term may complete a number query of any formation: every
            # formation's queries again (from the records), the shards whose ``t`` moved.
            keys = [(self.changed.get(entry.ref) or self.record(entry.ref))[5] for entry in self.entries]
            queries = _NumberQueries.of(keys, vocabulary)
            doc_sets = {t: self._members(t, groups_of) for t in queries.wanted()}
            now_texted = {q for q, terms in queries.candidates.items() if _all_match(terms, doc_sets)}
            for query in texted ^ now_texted:
                shards.set_texted(query, query in now_texted)
            return queries, now_texted, shards.write()
        gone = vocabulary_before - vocabulary
        for query, terms in queries.candidates.items():
            if any(t in members_changed or t in gone for t in terms):
                affected.add(query)
        for query in sorted(affected):
            exists = query in present or shards.has(query) or (
                query.isdigit() and len(query) <= 6 and shards.has("RNCP" + query))
            terms = queries.check(query, vocabulary, {}) if exists else queries.candidates.pop(query, None) and None
            now = terms is not None and _all_match(terms, {t: self._members(t, groups_of) for t in terms})
            if now != (query in texted):
                shards.set_texted(query, now)
                (texted.add if now else texted.discard)(query)
        return queries, texted, shards.write()

    def _members(self, term: str, groups_of: dict[str, Groups]) -> set[int]:
        groups = groups_of.get(term)
        if groups is None:
            groups = self.stored_groups(term)
        return _members(groups)

    def _numbers_again(
        self, vocabulary: set[str], groups_of: dict[str, Groups], buckets: int
    ) -> tuple[_NumberQueries, set[str], dict[str, str]]:
        """Every number shard again (their number moved), from every formation's record."""
        keys = [(self.changed.get(entry.ref) or self.record(entry.ref))[5] for entry in self.entries]
        queries = _NumberQueries.of(keys, vocabulary)
        doc_sets = {t: self._members(t, groups_of) for t in queries.wanted()}
        texted = {q for q, terms in queries.candidates.items() if _all_match(terms, doc_sets)}
        for relative in [r for r in self.output.digests if r.startswith("n/")]:
            self.output.drop(relative)
        big = _write_numbers(self.output, self.entries, keys, buckets, texted, self.options)
        return queries, texted, big


def _ref_of(entry: Entry) -> str:
    return entry.ref


def _leaves(terms: Iterable[str], split: set[str]) -> dict[str, list[str]]:
    leaves: dict[str, list[str]] = {}
    for term in sorted(terms):
        leaves.setdefault(leaf_of(term, split), []).append(term)
    return leaves


class _NumberShards:
    """The previous build's number shards, loaded and changed bucket by bucket."""

    def __init__(self, output: _Output, buckets: int, big: dict[str, str], options: ShardOptions):
        self.output = output
        self.buckets = buckets
        self.big = big  # key → its file, in the previous build
        self.options = options
        # bucket → (key → codes, texted queries, docnum → row serialised)
        self.tables: dict[int, tuple[dict[str, list[int]], set[str], dict[int, str]]] = {}
        self.changed: set[int] = set()  # the buckets to write

    def table(self, bucket: int) -> tuple[dict[str, list[int]], set[str], dict[int, str]]:
        if bucket not in self.tables:
            keys: dict[str, list[int]] = {}
            texted: set[str] = set()
            rows: dict[int, str] = {}
            data = self.output.previous_members(f"n/{bucket:x}.json")
            if data:
                for key, codes in json.loads(data["k"]).items():
                    if isinstance(codes, str):
                        codes = self.output.previous_json(f"n/{codes}.json")["c"]
                    keys[key] = list(codes)
                texted = set(json.loads(data["t"]))
                # Rows stay as written (most are kept): only a changed one is serialised.
                rows = {int(d): row for d, row in _raw_members(data["r"]).items()}
            self.tables[bucket] = (keys, texted, rows)
        return self.tables[bucket]

    def _change(self, key: str) -> tuple[dict[str, list[int]], set[str], dict[int, str]]:
        bucket = bucket_of(key, self.buckets)
        self.changed.add(bucket)
        return self.table(bucket)

    def remove(self, key: str, code: int) -> None:
        keys = self._change(key)[0]
        codes = keys.get(key, [])
        if code in codes:
            codes.remove(code)
        if not codes:
            keys.pop(key, None)

    def add(self, key: str, code: int) -> None:
        codes = self._change(key)[0].setdefault(key, [])
        if code not in codes:
            insort(codes, code)

    def set_row(self, ref: str, docnum: int, row: list) -> None:
        self._change(ref)[2][docnum] = _dumps(row)

    def set_texted(self, query: str, texted: bool) -> None:
        queries = self._change(query)[1]
        (queries.add if texted else queries.discard)(query)

    def has(self, key: str) -> bool:
        return key in self.table(bucket_of(key, self.buckets))[0]

    def write(self) -> dict[str, str]:
        """Write the buckets changed (and those whose big key's file name moved); returns the big keys' names."""
        limit = self.options.big_key_codes
        big_keys = {k for k in self.big if bucket_of(k, self.buckets) not in self.changed}
        for bucket in self.changed:
            big_keys.update(k for k, codes in self.tables[bucket][0].items() if len(codes) > limit)
        names = _big_names(big_keys, self.buckets)
        for key, name in names.items():
            if self.big.get(key) != name:
                self._change(key)  # its table now names another file
        for bucket in sorted(self.changed):
            keys, texted, rows = self.tables[bucket]
            relative = f"n/{bucket:x}.json"
            if not keys and not texted:
                self.output.drop(relative)
                continue
            for key in keys:
                if key in names:
                    self.output.write(f"n/{names[key]}.json", _dumps({"c": sorted(keys[key])}))
            self.output.write(relative, _bucket_text(keys, texted, rows, names))
        for name in set(self.big.values()) - set(names.values()):
            self.output.drop(f"n/{name}.json")
        return names


register_sink("static-search")(StaticSearchSink)


# --------------------------------------------------------------------------
# Layout helpers
# --------------------------------------------------------------------------


def plan_split(sizes: dict[str, int], max_bytes: int) -> set[str]:
    """The prefixes to split so that each shard of terms weighs at most ``max_bytes`` (when it can)."""
    split: set[str] = set()
    stack: list[tuple[str, list[str]]] = []
    by_first: dict[str, list[str]] = {}
    for term in sorted(sizes):
        by_first.setdefault(term[:1], []).append(term)
    stack.extend(by_first.items())
    while stack:
        prefix, terms = stack.pop()
        if len(prefix) >= MAX_PREFIX or sum(sizes[t] for t in terms) <= max_bytes:
            continue
        if all(t == prefix for t in terms):
            continue
        split.add(prefix)
        children: dict[str, list[str]] = {}
        for term in terms:
            if len(term) > len(prefix):
                children.setdefault(term[: len(prefix) + 1], []).append(term)
        stack.extend(children.items())
    return split


# --------------------------------------------------------------------------
# Reading the shards as the page does (tests and bench: which files, which results)
# --------------------------------------------------------------------------


@dataclass
class StaticResult:
    ref: str
    intitule: str
    organisme: str
    ville: str
    codepostal: str
    archived: bool
    datemaj: str  # JJ/MM/AAAA
    score: Optional[float]
    match: str  # "numero" or "texte"

    @property
    def url(self) -> str:
        return f"/formations/{self.ref}.html"


class ShardReader:
    """Runs a query on the files the way ``recherche.js`` does, recording every file it reads.

    Exact queries only (no prefix for a word being typed); the light fuzzy
    fallback of the page is left out. ``fetched`` lists the files read, in
    order, each once, as a browser cache would.
    """

    def __init__(self, site: Path, page: Optional[dict] = None):
        self.root = Path(site) / SITE_DIR
        self.page = page or self._page_config()
        self.fetched: list[str] = []
        self._cache: dict[str, object] = {}

    def _page_config(self) -> dict:
        html = (self.root / "index.html").read_text(encoding="utf-8")
        found = dict(re.findall(r'data-(numeros|docs|alpha)="(\d+)"', html))
        return {k: int(v) for k, v in found.items()}

    def load(self, relative: str):
        if relative not in self._cache:
            self.fetched.append(relative)
            path = self.root / relative
            self._cache[relative] = json.loads(path.read_text(encoding="utf-8")) if path.exists() else None
        return self._cache[relative]

    def bytes_fetched(self) -> int:
        return sum((self.root / f).stat().st_size for f in self.fetched if (self.root / f).exists())

    def search(self, query: str, include_archived: bool = False, limit: int = 10) -> list[StaticResult]:
        query = query.strip()
        numbers: set[int] = set()
        rows: dict[int, list] = {}
        texted = False
        for i, key in enumerate(number_candidates(query)):
            if not KEY_RE.match(key) or not (self.page["alpha"] or any(c.isdigit() for c in key)):
                continue
            shard = self.load(f"n/{bucket_of(key, self.page['numeros']):x}.json") or {"k": {}, "r": {}, "t": []}
            if i == 0:
                texted = key in shard["t"]
            found = shard["k"].get(key) or []
            if isinstance(found, str):
                found = self.load(f"n/{found}.json")["c"]
            numbers.update(c >> 1 for c in found)  # a number finds its formation, archived or not
            rows.update({int(d): r for d, r in shard["r"].items()})
        hits: list[tuple[int, Optional[float], str]] = [(d, None, "numero") for d in sorted(numbers)]
        if not numbers or texted or any(ch.isspace() for ch in query):
            text = self._text(query, include_archived, limit + len(numbers))
            hits += [(d, score, "texte") for d, score in text if d not in numbers]
        results = []
        for d, score, match in hits[:limit]:
            row = rows.get(d) or self.load(f"d/{d // self.page['docs']}.json")[d % self.page["docs"]]
            ref, intitule, organisme, ville, cp, arch, datemaj = row
            results.append(
                StaticResult(
                    ref, intitule, organisme, ville, cp, bool(arch), f"{datemaj[6:]}/{datemaj[4:6]}/{datemaj[:4]}", score, match
                )
            )
        return results

    def _text(self, query: str, include_archived: bool, need: int) -> list[tuple[int, float]]:
        words = analyse(query)
        terms = _unique(words)
        if not terms or len(words) > MAX_QUERY_TERMS:
            return []
        manifest = self.load("manifest.json")
        split = set(manifest["split"])
        sizes = manifest["topK"]
        lists = []
        for term in terms:
            shard = self.load(f"t/{leaf_file(leaf_of(term, split))}.json") or {}
            lists.append(_TermList(term, shard.get(term), sizes))
        extra = 0
        while True:
            hits = _intersect(lists, include_archived)
            if _certified(lists, hits, need, include_archived):
                return hits
            more = [t for t in lists if t.fetched < t.pages]
            if not more or extra >= MAX_EXTRA_PAGES:
                # Not sure yet: which formations hold every term, each term's score where
                # fetched and its page bound elsewhere (an upper bound: an estimate).
                for t in lists:
                    if t.bound(include_archived) != _NONE:
                        t.members = {d * 2 for d in decode_set(self.load(f"b/{page_file(t.term, 0)}.json")[t.term])}
                        if include_archived:
                            archived = self.load(f"b/{page_file(t.term, 1)}.json")[t.term]
                            t.members.update(d * 2 + 1 for d in decode_set(archived))
                return _estimate(lists, include_archived)
            # The list that may hide the best scores gives its next page.
            best = max(more, key=lambda t: t.bound(include_archived))
            best.add(self.load(f"p/{page_file(best.term, best.fetched)}.json")[best.term])
            extra += 1


#: Pages beyond the first a text query may fetch to make sure of its first results.
MAX_EXTRA_PAGES = 4
_NONE = float("-inf")


class _TermList:
    """The pages of one term's postings fetched so far (as ``recherche.js`` keeps them)."""

    def __init__(self, term: str, entry: Optional[list], sizes: list[int]):
        self.term = term
        self.sizes = sizes  # postings per page: current, archived
        self.scores: dict[int, float] = {}
        self.seen = [0, 0]
        self.least = [float("inf"), float("inf")]
        head = entry[0] if entry and isinstance(entry[0], dict) else {}
        self.pages = head.get("p", 1)
        self.cut = bool(head.get("c"))
        self.fetched = 0
        self.members: Optional[set[int]] = None  # codes of every formation holding the term
        self.add((entry[1:] if head else entry) or [])

    def add(self, groups: list[list]) -> None:
        self.fetched += 1
        for code, score in _ungroup(groups):
            self.scores[code] = score
            self.seen[code & 1] += 1
            self.least[code & 1] = min(self.least[code & 1], score)

    def bound(self, include_archived: bool) -> float:
        """The best score a formation of this term not fetched yet may have (-inf: none left)."""
        if self.fetched >= self.pages and not self.cut:
            return _NONE
        bounds = [
            _NONE if self.seen[a] < self.fetched * self.sizes[a] else self.least[a] for a in ((0, 1) if include_archived else (0,))
        ]
        return max(bounds)


def _intersect(lists: list[_TermList], include_archived: bool) -> list[tuple[int, float]]:
    scores: dict[int, float] = {}
    for code in min((t.scores for t in lists), key=len):
        if (code & 1 and not include_archived) or not all(code in t.scores for t in lists):
            continue
        scores[code >> 1] = round_score(sum(t.scores[code] for t in lists))
    return sorted(scores.items(), key=lambda item: (-item[1], item[0]))


def _estimate(lists: list[_TermList], include_archived: bool) -> list[tuple[int, float]]:
    """Every formation holding all terms; a score not fetched counts as its page bound."""
    sets = [t.members if t.members is not None else set(t.scores) for t in lists]
    bounds = [t.bound(include_archived) for t in lists]
    scores: dict[int, float] = {}
    for code in set.intersection(*sorted(sets, key=len)):
        if code & 1 and not include_archived:
            continue
        scores[code >> 1] = round_score(sum(t.scores.get(code, b) for t, b in zip(lists, bounds)))
    return sorted(scores.items(), key=lambda item: (-item[1], item[0]))


def _certified(lists: list[_TermList], hits: list[tuple[int, float]], need: int, include_archived: bool) -> bool:
    """Whether no formation outside the pages fetched can enter the first ``need`` hits."""
    bounds = [t.bound(include_archived) for t in lists]
    best = sum(bounds) if all(b != _NONE for b in bounds) else _NONE
    found = {d for d, _ in hits}
    for code in {c for t in lists for c in t.scores}:
        if (code & 1 and not include_archived) or code >> 1 in found:
            continue
        total = 0.0
        for t, b in zip(lists, bounds):
            score = t.scores.get(code)
            if score is None:
                if b == _NONE:
                    break
                score = b
            total += score
        else:
            best = max(best, total)
    if best == _NONE:
        return True
    if len(hits) < need:
        return False
    nth = hits[need - 1][1]
    # One term: formations not fetched that tie come after by Ref (pages are in docnum order).
    return round_score(best) <= nth if len(lists) == 1 else round_score(best) < nth


def _ungroup(groups: list[list]) -> Iterator[tuple[int, float]]:
    for group in groups:
        score, code = group[0], group[1]
        yield code, score
        for delta in group[2:]:
            code += delta
            yield code, score


__all__ = [
    "ShardOptions",
    "StaticSearchSink",
    "ShardReader",
    "StaticResult",
    "number_keys",
    "number_candidates",
    "query_strings",
    "canonical",
    "bucket_of",
    "leaf_of",
    "leaf_file",
    "page_file",
    "encode_set",
    "decode_set",
    "plan_split",
    "unicode_tables",
]
