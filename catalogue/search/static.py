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
    :data:`~catalogue.search.analysis.FIELD_BOOSTS`), the number Whoosh
    computes, rounded to ``score_digits`` (6) significant digits; the page
    ranks by the sum over the query's terms rounded to 4 digits, as the CLI
    and the API do. Terms are grouped by prefix; a prefix whose terms weigh
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
"""

from __future__ import annotations

import hashlib
import heapq
import json
import re
import shutil
import struct
import unicodedata
import zlib
from array import array
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Iterator, Optional

from ..build import SinkContext, register_sink
from ..catalog import Catalog, Entry
from ..model import Formation
from .analysis import (
    B,
    FIELD_BOOSTS,
    K1,
    MAX_QUERY_TERMS,
    STOP_WORDS,
    analyse,
    bm25,
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

# One posting while building: the document's input index and its term frequency in each field.
_POSTING = struct.Struct("<I" + "H" * len(FIELDS))
_MAX_TF = 0xFFFF


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


def encode_set(docnums: list[int], n: int) -> str:
    """Sorted docnums below ``n`` as text: ``d`` + gaps in base-32 varints (low group first, a
    sixth bit for "more"), or ``b`` + a bitmap, 6 docnums per character; the shorter."""
    out = []
    previous = -1
    for d in docnums:
        gap = d - previous
        previous = d
        while gap >= 32:
            out.append(_SET_DIGITS[32 | (gap & 31)])
            gap >>= 5
        out.append(_SET_DIGITS[gap])
    gaps = "d" + "".join(out)
    if len(gaps) <= n // 6 + 2:
        return gaps
    cells = bytearray((n + 5) // 6)
    for d in docnums:
        cells[d // 6] |= 1 << (d % 6)
    return "b" + "".join(_SET_DIGITS[c] for c in cells).rstrip("A")


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


def _dumps(data) -> str:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def _ranges(predicate) -> list[int]:
    """Code points where ``predicate`` holds, as a flat list of inclusive ranges ``[a, b, a, b, ...]``."""
    flat: list[int] = []
    start = None
    for cp in range(0x110000):
        if predicate(chr(cp)):
            if start is None:
                start = cp
        elif start is not None:
            flat += [start, cp - 1]
            start = None
    if start is not None:
        flat += [start, 0x10FFFF]
    return flat


@lru_cache(maxsize=1)
def unicode_tables() -> dict[str, list[int]]:
    """What Python's analysis chain knows of Unicode and JavaScript cannot ask for.

    ``combining``: characters ``unicodedata.combining`` drops when folding;
    ``digit``: characters ``str.isdigit`` accepts (a number is not stemmed).
    """
    return {
        "combining": _ranges(lambda c: unicodedata.combining(c) != 0),
        "digit": _ranges(str.isdigit),
        "unidata": unicodedata.unidata_version,
    }


# --------------------------------------------------------------------------
# The sink
# --------------------------------------------------------------------------


class StaticSearchSink:
    """Collects compact postings as formations come, writes every shard at the end."""

    def __init__(self, context: SinkContext, options: ShardOptions = ShardOptions()):
        self.context = context
        self.options = options
        self.root = context.staging / "site" / SITE_DIR
        self._refs: list[str] = []  # by input index
        self._lengths = [array("I") for _ in FIELDS]  # number of terms per field, by input index
        self._postings: dict[str, bytearray] = {}

    # -- add: analyse the texts, keep term frequencies ------------------------

    def add(self, formation: Formation, entry: Entry) -> None:
        doc = len(self._refs)
        self._refs.append(entry.ref)
        texts = field_texts(formation, entry)
        counts: dict[str, list[int]] = {}
        for f, name in enumerate(FIELDS):
            terms = analyse(texts[name])
            self._lengths[f].append(len(terms))
            for term in terms:
                tf = counts.get(term)
                if tf is None:
                    tf = counts[term] = [0] * len(FIELDS)
                tf[f] += 1
        postings = self._postings
        for term, tf in counts.items():
            buf = postings.get(term)
            if buf is None:
                buf = postings[term] = bytearray()
            buf += _POSTING.pack(doc, *(min(n, _MAX_TF) for n in tf))

    # -- finish: score, cut, shard, write -------------------------------------

    def finish(self, catalog: Catalog) -> None:
        entries = catalog.entries
        docnum_of = {e.ref: i for i, e in enumerate(entries)}
        docnums = array("I", (docnum_of[ref] for ref in self._refs))
        del docnum_of
        archived = bytes(int(e.archived) for e in entries)
        numbers = _NumberPlan.of(entries, self._postings, self.options)

        if self.root.exists():
            shutil.rmtree(self.root)
        self.root.mkdir(parents=True)
        writer = _Writer(self.root)

        entries_of_term, doc_sets = self._term_entries(writer, docnums, archived, numbers.wanted, len(entries))
        split = self._write_terms(writer, entries_of_term)
        del entries_of_term
        texted = {q for q, terms in numbers.candidates.items() if _all_match(terms, doc_sets)}
        self._write_numbers(writer, entries, numbers.buckets, texted)
        self._write_docs(writer, entries)
        manifest = {
            "format": FORMAT_VERSION,
            "n": len(entries),
            "docs": self.options.docs_per_shard,
            "numeros": numbers.buckets,
            "alpha": numbers.alpha,
            "split": sorted(split),
            "stop": sorted(STOP_WORDS),
            "maxTerms": MAX_QUERY_TERMS,
            "topK": [self.options.top_k, self.options.top_k_archived],
            "maxPages": self.options.max_pages,
            "unicode": unicode_tables(),
        }
        writer.write("manifest.json", _dumps(manifest))
        self._write_page(writer.version(), numbers.buckets, numbers.alpha)

    def _term_entries(
        self, writer: "_Writer", docnums: array, archived: bytes, wanted: set[str], n_docs: int
    ) -> tuple[dict[str, str], dict[str, set[int]]]:
        """Each term's first page, serialised (later pages are written at once); and the full
        docnum sets of the ``wanted`` terms."""
        totals = [sum(lengths) for lengths in self._lengths]
        avg = [(total / (n_docs or 1)) or 1 for total in totals]
        stored = [array("I", (stored_length(n) for n in lengths)) for lengths in self._lengths]
        boosts = [FIELD_BOOSTS[f] for f in FIELDS]
        nfields = range(len(FIELDS))
        digits = self.options.score_digits
        result: dict[str, str] = {}
        doc_sets: dict[str, set[int]] = {}
        for term in sorted(self._postings):
            buf = self._postings.pop(term)
            rows = list(_POSTING.iter_unpack(buf))
            del buf
            idfs = [idf(n_docs, sum(1 for r in rows if r[f + 1])) for f in nfields]
            current: list[tuple[float, int]] = []
            old: list[tuple[float, int]] = []
            # Few distinct (tf, length) pairs per field and few distinct sums: memoised.
            parts: list[dict[tuple[int, int], float]] = [{} for _ in nfields]
            rounded: dict[float, float] = {}
            for r in rows:
                doc = r[0]
                score = 0.0
                for f in nfields:
                    tf = r[f + 1]
                    if tf:
                        pair = (tf, stored[f][doc])
                        part = parts[f].get(pair)
                        if part is None:
                            part = parts[f][pair] = boosts[f] * bm25(tf, pair[1], avg[f], idfs[f], B, K1)
                        score += part
                neg = rounded.get(score)
                if neg is None:
                    neg = rounded[score] = -round_score(score, digits)
                d = docnums[doc]
                (old if archived[d] else current).append((neg, d))
            if term in wanted:
                doc_sets[term] = {d for _, d in current} | {d for _, d in old}
            result[term] = self._pages(writer, term, current, old, archived)
        return result, doc_sets

    def _pages(
        self, writer: "_Writer", term: str, current: list[tuple[float, int]], old: list[tuple[float, int]], archived: bytes
    ) -> str:
        """Cut a term's postings into pages of the best ``top_k`` current and ``top_k_archived``
        archived formations; write pages 2.. to ``p/``; return page 1 for the term shard."""
        k, ka, most = self.options.top_k, self.options.top_k_archived, self.options.max_pages
        needed = max(-(-len(current) // k), -(-len(old) // ka), 1)
        pages = min(needed, most)
        if needed > 1:
            # Which formations hold the term, scores aside: what an AND needs beyond the pages.
            n = len(archived)
            # b/<crc>-0: current formations, b/<crc>-1: archived ones (fetched only when asked).
            writer.merge(f"b/{page_file(term, 0)}.json", term, encode_set(sorted(d for _, d in current), n))
            writer.merge(f"b/{page_file(term, 1)}.json", term, encode_set(sorted(d for _, d in old), n))
        current = heapq.nsmallest(pages * k, current)
        old = heapq.nsmallest(pages * ka, old)
        groups = [_group(current[p * k : (p + 1) * k] + old[p * ka : (p + 1) * ka], archived) for p in range(pages)]
        for p in range(1, pages):
            writer.merge(f"p/{page_file(term, p)}.json", term, groups[p])
        if needed == 1:
            return _dumps(groups[0])
        # More pages: a leading {"p": pages stored, "c": 1 when postings beyond them were dropped}.
        head = {"p": pages, "c": 1} if needed > pages else {"p": pages}
        return _dumps([head, *groups[0]])

    def _write_terms(self, writer: "_Writer", entries: dict[str, str]) -> set[str]:
        split = plan_split({t: len(t) + len(e) + 4 for t, e in entries.items()}, self.options.term_shard_bytes)
        shards: dict[str, list[str]] = {}
        for term in sorted(entries):
            shards.setdefault(leaf_of(term, split), []).append(term)
        for leaf, terms in sorted(shards.items()):
            body = ",".join(json.dumps(t, ensure_ascii=False) + ":" + entries[t] for t in terms)
            writer.write(f"t/{leaf_file(leaf)}.json", "{" + body + "}")
        return split

    def _write_numbers(self, writer: "_Writer", entries: list[Entry], buckets: int, texted: set[str]) -> None:
        """Number shards, a range of buckets at a time: keys go through temporary files, not memory."""
        parts = max(1, buckets // 1024)
        span = buckets // parts
        spill = self.root / ".numeros"
        spill.mkdir()
        files = [open(spill / f"{i}.tsv", "w", encoding="utf-8") for i in range(parts)]
        try:
            for docnum, entry in enumerate(entries):
                code = docnum * 2 + int(entry.archived)
                for key in number_keys(entry):
                    bucket = bucket_of(key, buckets)
                    files[bucket // span].write(f"{bucket}\t{key}\t{code}\n")
        finally:
            for f in files:
                f.close()
        rows_of: dict[int, list[int]] = {}
        for docnum, entry in enumerate(entries):
            rows_of.setdefault(bucket_of(entry.ref, buckets), []).append(docnum)
        texted_of: dict[int, list[str]] = {}
        for query in sorted(texted):
            texted_of.setdefault(bucket_of(query, buckets), []).append(query)
        big_names: set[str] = set()
        for part in range(parts):
            codes: dict[int, dict[str, list[int]]] = {}
            with open(spill / f"{part}.tsv", encoding="utf-8") as lines:
                for line in lines:
                    bucket, key, code = line.rstrip("\n").split("\t")
                    codes.setdefault(int(bucket), {}).setdefault(key, []).append(int(code))
            for bucket in range(part * span, (part + 1) * span):
                keys = codes.pop(bucket, {})
                queries = texted_of.get(bucket, [])
                if not keys and not queries:
                    continue
                table: dict[str, object] = {}
                for key in sorted(keys):
                    key_codes = sorted(keys[key])
                    if len(key_codes) > self.options.big_key_codes:
                        name = "g" + format(zlib.crc32(key.encode("utf-8")), "08x")
                        while name in big_names:
                            name += "x"
                        big_names.add(name)
                        writer.write(f"n/{name}.json", _dumps({"c": key_codes}))
                        table[key] = name
                    else:
                        table[key] = key_codes
                # Rows are spliced in serialised, in docnum order.
                rows = ",".join(f'"{d}":{_dumps(row_of(entries[d]))}' for d in rows_of.get(bucket, []))
                head = _dumps({"k": table, "t": queries})
                writer.write(f"n/{bucket:x}.json", head[:-1] + ',"r":{' + rows + "}}")
        shutil.rmtree(spill)

    def _write_docs(self, writer: "_Writer", entries: list[Entry]) -> None:
        size = self.options.docs_per_shard
        for k in range(0, len(entries), size):
            writer.write(f"d/{k // size}.json", _dumps([row_of(e) for e in entries[k : k + size]]))

    def _write_page(self, version: str, buckets: int, alpha: bool) -> None:
        from ..render import STATIC_DIR, make_environment

        script = compact_js((STATIC_DIR / SCRIPT).read_text(encoding="utf-8"))
        (self.root / SCRIPT).write_text(script, encoding="utf-8")
        script_version = hashlib.sha256(script.encode("utf-8")).hexdigest()[:10]
        env = make_environment(self.context.settings)
        html = env.get_template("recherche.html").render(
            title="Rechercher une formation",
            description="Rechercher une formation par mots-clés, par Ref, numéro d'action ou de session, SIRET ou code RNCP.",
            canonical=self.context.settings.site_url.rstrip("/") + f"/{SITE_DIR}/",
            nav="recherche",
            search={
                "base": f"/{SITE_DIR}/",
                "version": version,
                "numeros": buckets,
                "docs": self.options.docs_per_shard,
                "alpha": int(alpha),
                "script": f"/{SITE_DIR}/{SCRIPT}?v={script_version}",
            },
        )
        (self.root / "index.html").write_text(html, encoding="utf-8")


@register_sink("static-search")
def static_search_sink(context: SinkContext) -> StaticSearchSink:
    return StaticSearchSink(context)


# --------------------------------------------------------------------------
# Layout helpers
# --------------------------------------------------------------------------


class _Writer:
    """Writes files under the search folder and hashes them into one build version."""

    def __init__(self, root: Path):
        self.root = root
        self.digests: dict[str, str] = {}
        self.sizes: dict[str, int] = {}

    def write(self, relative: str, text: str) -> None:
        data = text.encode("utf-8")
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        self.digests[relative] = hashlib.sha256(data).hexdigest()
        self.sizes[relative] = len(data)

    def merge(self, relative: str, key: str, value) -> None:
        """Add ``key`` to the JSON object in ``relative`` (two terms may share a page file)."""
        data = {}
        if relative in self.digests:
            data = json.loads((self.root / relative).read_text(encoding="utf-8"))
        data[key] = value
        self.write(relative, _dumps(data))

    def version(self) -> str:
        text = "\n".join(f"{name} {digest}" for name, digest in sorted(self.digests.items()))
        return hashlib.sha256(text.encode()).hexdigest()[:12]


@dataclass
class _NumberPlan:
    """What the number shards need to know before the terms are written."""

    buckets: int
    alpha: bool  # some key has no digit: the page must look up queries without digits too
    candidates: dict[str, list[str]]  # number queries whose terms are all indexed → those terms

    @property
    def wanted(self) -> set[str]:
        return {t for terms in self.candidates.values() for t in terms}

    @classmethod
    def of(cls, entries: list[Entry], vocabulary: dict[str, object], options: ShardOptions) -> "_NumberPlan":
        weight = 0
        alpha = False
        candidates: dict[str, list[str]] = {}
        rejected: set[str] = set()
        for entry in entries:
            keys = number_keys(entry)
            weight += sum(len(k) + 8 for k in keys) + _row_weight(entry)
            alpha = alpha or any(not any(c.isdigit() for c in k) for k in keys)
            for query in query_strings(keys):
                if query in candidates or query in rejected:
                    continue
                terms = _indexed_terms(query, vocabulary)
                if terms is None:
                    # Only shared keys (SIRET, RNCP) come back: remember those, not every Ref.
                    if query in (entry.siret, *(f"RNCP{c}" for c in entry.rncp), *entry.rncp):
                        rejected.add(query)
                else:
                    candidates[query] = terms
        buckets = 1
        while buckets * options.number_shard_bytes < weight:
            buckets *= 2
        return cls(buckets, alpha, candidates)


def _row_weight(entry: Entry) -> int:
    place = entry.place
    return 40 + len(entry.ref) + len(entry.intitule) + len(entry.organisme) + (len(place.ville or "") if place else 0)


def _indexed_terms(query: str, vocabulary: dict[str, object]) -> Optional[list[str]]:
    """The query's terms when every one is indexed (else its text search finds nothing: ``None``)."""
    for word in words(query):
        # Numbers are terms as they are: most keys hold one nobody wrote in a text.
        if word.isdigit() and len(word) >= 2 and word.isascii() and word not in vocabulary:
            return None
    terms = _unique(analyse(query))
    if not terms or any(t not in vocabulary for t in terms):
        return None
    return terms


def _group(kept: list[tuple[float, int]], archived: bytes) -> list[list]:
    """``[(-score, docnum)]`` → ``[[score, code, +delta, ...], ...]`` by descending score."""
    by_score: dict[float, list[int]] = {}
    for neg, d in kept:
        by_score.setdefault(-neg, []).append(d * 2 + archived[d])
    groups = []
    for score in sorted(by_score, reverse=True):
        codes = sorted(by_score[score])
        groups.append([score, codes[0], *(b - a for a, b in zip(codes, codes[1:]))])
    return groups


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _all_match(terms: list[str], doc_sets: dict[str, set[int]]) -> bool:
    """Whether an AND of ``terms`` finds a formation (the text half of a number query)."""
    if not terms or any(t not in doc_sets for t in terms):
        return False
    sets = sorted((doc_sets[t] for t in set(terms)), key=len)
    return bool(set.intersection(*sets))


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
        return f"/formations/{self.ref}/"


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
