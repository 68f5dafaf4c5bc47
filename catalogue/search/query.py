"""The one search function, used by the CLI (``catalogue search``) and the API (``/api/search``).

1. Number lookup: the query, blanks removed and uppercased, is looked up in the
   index's number table (Ref, Ref without its Carif prefix, action and session
   numeros, ``ref|action|session`` composites, SIRET, RNCP). Those formations
   come first, in Ref order.
2. Text: every analysed term must match some scored field (AND); the score is
   the sum of ``FIELD_BOOSTS[field] * BM25F``; ranked by score (4 significant
   digits) then Ref. Filters apply to both; archived formations are left out of the text
   results unless asked for, but a number always finds its formation, archived or not.
3. When the text query finds nothing, words of 5 letters or more may be misspelt
   (one edit, two from 8 letters, first letter kept): they also stand for the
   stems of the catalogue's folded, unstemmed words that near (see
   :mod:`catalogue.search.index`).

User text never goes through Whoosh's query parser: the query objects are built
from analysed terms, so ``AND``, quotes, ``*`` or ``field:`` are plain words.
"""

from __future__ import annotations

import datetime as dt
import re
import heapq
import itertools
import weakref
from operator import itemgetter
from pathlib import Path
from typing import Annotated, Any, Iterable, Literal, Optional

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from whoosh.util.numeric import byte_to_length

from .analysis import (
    B,
    FIELD_BOOSTS,
    FUZZY_MIN_LENGTH,
    FUZZY_PREFIX,
    FUZZY_TWO_EDITS_FROM,
    K1,
    MAX_QUERY_CHARS,
    MAX_QUERY_TERMS,
    analyse,
    average_length,
    fold_terms,
    idf,
    normalise_number,
    round_score,
    stem,
)
from .index import FLAGS, IndexMissing, SearchError, SearchIndex, open_index  # noqa: F401 (re-exported)

#: Longest string tried as a number (a composite ``ref|action|session`` is at most 3 × 80 + 2).
MAX_NUMBER_CHARS = 250
MAX_OFFSET = 10_000
#: Stems a misspelt word may stand for (the nearest words of a large vocabulary are many).
MAX_FUZZY_STEMS = 50
DEFAULT_RAYON_KM = 30.0


def _french_bool(value: Any) -> Any:
    if isinstance(value, str):
        folded = value.strip().lower()
        if folded in {"oui", "vrai"}:
            return True
        if folded in {"non", "faux"}:
            return False
    return value


FrenchBool = Annotated[Optional[bool], BeforeValidator(_french_bool)]


def _iso_date_only(value: Any) -> Any:
    """AAAA-MM-JJ only: pydantic alone would also read ``0`` as 1970-01-01."""
    if value is None or isinstance(value, dt.date):
        return value
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value.strip()):
        return value.strip()
    raise PydanticCustomError("iso_date", "date AAAA-MM-JJ attendue")


class SearchParams(BaseModel):
    """What may be asked of the search, from the CLI or ``GET /api/search``."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    q: str = Field(default="", max_length=MAX_QUERY_CHARS, description="Mots, ou un numéro (Ref, SIRET, RNCP...).")
    limit: int = Field(default=20, ge=1, le=100, description="Nombre de résultats (1 à 100).")
    offset: int = Field(default=0, ge=0, le=MAX_OFFSET, description="Résultats à sauter (pagination).")
    region: Optional[str] = Field(default=None, pattern=r"^\d{2,3}$", description="Code INSEE de la région (76).")
    departement: Optional[str] = Field(
        default=None, pattern=r"^(\d{2,3}|2[ABab])$", description="Code du département (31, 2A)."
    )
    certifiante: FrenchBool = Field(default=None, description="Formations certifiantes seulement (ou non).")
    cpf: FrenchBool = Field(default=None, description="Éligibles au CPF seulement (ou non).")
    distance: FrenchBool = Field(default=None, description="À distance seulement (ou non).")
    esp: FrenchBool = Field(default=None, description="Entrées/sorties permanentes seulement (ou non).")
    financeur: Optional[str] = Field(default=None, pattern=r"^\d{1,2}$", description="Code financeur LHEO (10 : Région...).")
    debut_apres: Annotated[Optional[dt.date], BeforeValidator(_iso_date_only)] = Field(
        default=None, description="Une session commence ce jour ou après (AAAA-MM-JJ)."
    )
    near: Optional[str] = Field(
        default=None, max_length=100, description="Ville ou code postal autour duquel chercher."
    )
    rayon_km: Optional[float] = Field(default=None, gt=0, le=1000, description="Rayon autour de near, en km (30 par défaut).")
    include_archived: bool = Field(default=False, description="Inclure les formations archivées.")

    @model_validator(mode="after")
    def _rayon_needs_near(self) -> "SearchParams":
        if self.rayon_km is not None and not self.near:
            raise ValueError("rayon_km demande une ville ou un code postal (near)")
        return self


_MESSAGES = {
    "string_too_long": "trop long : {max_length} caractères au plus",
    "greater_than_equal": "doit être supérieur ou égal à {ge}",
    "less_than_equal": "doit être inférieur ou égal à {le}",
    "greater_than": "doit être supérieur à {gt}",
    "int_parsing": "nombre entier attendu",
    "int_from_float": "nombre entier attendu",
    "float_parsing": "nombre attendu",
    "bool_parsing": "oui ou non attendu (true/false, 1/0)",
    "date_parsing": "date AAAA-MM-JJ attendue",
    "date_from_datetime_parsing": "date AAAA-MM-JJ attendue",
    "date_from_datetime_inexact": "date AAAA-MM-JJ attendue",
    "string_pattern_mismatch": "valeur invalide",
    "extra_forbidden": "paramètre inconnu",
    "string_type": "texte attendu",
    "missing": "valeur obligatoire",
}


def french_message(error: dict) -> str:
    """A pydantic error of :class:`SearchParams` in French, prefixed by its parameter (``limit : ...``)."""
    field = ".".join(str(part) for part in error.get("loc", ()) if part not in ("query", "body"))
    if error.get("type") == "value_error":
        message = str(error.get("ctx", {}).get("error", error.get("msg", "")))
    else:
        template = _MESSAGES.get(error.get("type", ""))
        try:
            message = template.format(**error.get("ctx", {})) if template else error.get("msg", "")
        except (KeyError, IndexError):
            message = error.get("msg", "")
    return f"{field} : {message}" if field else message


class SearchResult(BaseModel):
    """One hit; the same keys for the CLI (``--json``), the API and the static page."""

    ref: str
    intitule: str
    organisme: str
    ville: Optional[str]
    codepostal: Optional[str]
    url: str
    archived: bool
    datemaj: str = Field(description="JJ/MM/AAAA")
    score: Optional[float] = Field(description="Pertinence ; null pour un numéro trouvé tel quel.")
    match: Literal["numero", "texte"]


class SearchResponse(BaseModel):
    total: int
    results: list[SearchResult]


# --------------------------------------------------------------------------
# The search
# --------------------------------------------------------------------------


def search(build_dir: Path, params: SearchParams) -> SearchResponse:
    """Search the published index of ``build_dir``.

    Raises :class:`SearchError` for a query that cannot be answered (unknown
    town, too many words...), and its subclass :class:`IndexMissing` before the
    first build.
    """
    index = open_index(build_dir)
    searcher = index.searcher()
    allowed = _allowed(index, params)
    need = params.offset + params.limit

    # A number the user holds finds its formation even when archived (flagged as such):
    # an old Ref must still lead to its fiche. The other filters still apply.
    by_number = allowed if params.include_archived else _allowed(index, params.model_copy(update={"include_archived": True}))
    id_docs = [d for d in _number_matches(index, params.q) if by_number is None or d in by_number]
    id_docs.sort(key=lambda d: _ref(index, d))
    exclude = frozenset(id_docs)

    words = analyse(params.q)
    terms = _unique(words)
    if len(words) > MAX_QUERY_TERMS:
        raise SearchError(f"requête trop longue : {MAX_QUERY_TERMS} mots au plus")
    if terms:
        scores = _scores(index, [[t] for t in terms], allowed, exclude)
        if not scores and not id_docs:
            fuzzy = _fuzzy_clauses(index, params.q)
            if fuzzy is not None:
                scores = _scores(index, fuzzy, allowed, exclude)
        total, ranked = len(scores), _ranked(index, scores, need)
    elif not params.q and not id_docs:
        # No words at all: browse what the filters keep, in Ref order.
        order = index.ref_order()
        kept = order if allowed is None else (d for d in order if d in allowed)
        total = len(order) if allowed is None else len(allowed)
        ranked = [(None, d) for d in itertools.islice(kept, need)]
    else:
        total, ranked = 0, []

    hits = [(None, d, "numero") for d in id_docs] + [(s, d, "texte") for s, d in ranked]
    page = hits[params.offset : need]
    return SearchResponse(
        total=len(id_docs) + total,
        results=[_result(searcher, docnum, score, match) for score, docnum, match in page],
    )


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _ref(index: SearchIndex, docnum: int) -> str:
    return index.refs()[docnum]


def _result(searcher, docnum: int, score: Optional[float], match: str) -> SearchResult:
    fields = searcher.stored_fields(docnum)
    ville, codepostal = fields.get("lieu") or (None, None)
    datemaj = fields["datemaj"]
    return SearchResult(
        ref=fields["ref"],
        intitule=fields["titre"],
        organisme=fields["nom"],
        ville=ville,
        codepostal=codepostal,
        url=f"/formations/{fields['ref']}.html",
        archived=fields["archived"],
        datemaj=f"{datemaj[6:]}/{datemaj[4:6]}/{datemaj[:4]}",
        score=round_score(score) if score is not None else None,
        match=match,
    )


# -- numbers -----------------------------------------------------------------


def number_candidates(query: str) -> list[str]:
    """The ``ids`` terms a query may be: itself normalised; digits written with dots
    (``193.113.834.00389``) without them; and ``RNCP<n>`` for a bare number of 6 digits or fewer."""
    number = normalise_number(query)
    if not number or len(number) > MAX_NUMBER_CHARS:
        return []
    candidates = [number]
    digits = number.replace(".", "")
    if digits != number and digits.isdigit():
        candidates.append(digits)
    if digits.isdigit() and len(digits) <= 6:
        candidates.append(f"RNCP{digits}")
    return candidates


def _number_matches(index: SearchIndex, query: str) -> set[int]:
    return index.number_docs(number_candidates(query))


# -- text --------------------------------------------------------------------
#
# A query is a list of clauses, one per query word; a clause is the stems that
# word stands for (its own, plus near words' when misspelt). A formation matches
# when every clause has a stem in one of its scored fields; its score is the sum
# over clauses, stems and fields of FIELD_BOOSTS[field] * BM25 — what Whoosh's
# BM25F gives for And([Or([Term(field, stem, boost) ...]) ...]), computed here
# from the postings to skip Whoosh's per-document matcher tree (tests check the
# two agree).


def _fuzzy_clauses(index: SearchIndex, query: str) -> Optional[list[list[str]]]:
    """Each word stands for its stem and, from 5 letters, the stems of words within 1–2 edits of it.

    ``None`` when no word has a near word (nothing new to try).
    """
    clauses = []
    fuzzed = False
    for word in _unique(fold_terms(query)):
        own = stem(word)
        stems = [own] if len(own) >= 2 else []
        if len(word) >= FUZZY_MIN_LENGTH and word.isalpha():
            maxdist = 2 if len(word) >= FUZZY_TWO_EDITS_FROM else 1
            near = [s for s in index.stems_within(word, maxdist, FUZZY_PREFIX) if s != own]
            fuzzed = fuzzed or bool(near)
            stems += near[:MAX_FUZZY_STEMS]
        if stems:
            clauses.append(stems)
    return clauses if fuzzed else None


def _scores(
    index: SearchIndex, clauses: list[list[str]], allowed: Optional[frozenset[int]], exclude: frozenset[int]
) -> dict[int, float]:
    """Docnum → score of the formations matching every clause and kept by the filters."""
    reader = index.searcher().reader()
    # The live documents' statistics (a segment keeps its deleted documents until merged):
    # those of a full build, which the static shards use too.
    n_docs = index.doc_count()
    # Rarest clause first: later clauses only look at the formations still in the running.
    weighted = sorted(clauses, key=lambda stems: sum(index.doc_frequency(f, s) for s in stems for f in FIELD_BOOSTS))
    result: Optional[dict[int, float]] = None
    for stems in weighted:
        candidates = None if result is None else result
        scores: dict[int, float] = {}
        for term in stems:
            for fieldname, boost in FIELD_BOOSTS.items():
                _add_term(index, reader, n_docs, fieldname, boost, term, candidates, scores)
        if result is None:
            result = {d: s for d, s in scores.items() if (allowed is None or d in allowed) and d not in exclude}
        else:
            result = {d: result[d] + s for d, s in scores.items()}
        if not result:
            return {}
    return result or {}


def _add_term(index, reader, n_docs, fieldname, boost, term, candidates, scores) -> None:
    """Add one (field, term)'s BM25 to ``scores``, for ``candidates`` only when given.

    Postings are read segment by segment (Whoosh's multi-segment matcher costs a
    wrapper call per posting); idf and lengths are the whole index's.
    """
    df = index.doc_frequency(fieldname, term)
    if not df:
        return
    factor = boost * idf(n_docs, df) * (K1 + 1)
    norms = _norms(index, fieldname)
    get = scores.get
    jump = candidates is not None and len(candidates) * 16 < df
    ordered = sorted(candidates) if jump else ()
    for leaf, offset in reader.leaf_readers():
        if not leaf.doc_frequency(fieldname, term):
            continue
        matcher = leaf.postings(fieldname, term)
        if jump:
            # Few candidates, long postings: jump to each candidate of this segment.
            end = offset + leaf.doc_count_all()
            for docnum in ordered:
                if docnum < offset or docnum >= end:
                    continue
                if not matcher.is_active():
                    break
                matcher.skip_to(docnum - offset)
                if matcher.is_active() and matcher.id() + offset == docnum:
                    tf = matcher.weight()
                    scores[docnum] = get(docnum, 0.0) + factor * tf / (tf + norms[docnum])
            continue
        is_active, next_, id_, weight = matcher.is_active, matcher.next, matcher.id, matcher.weight
        while is_active():
            docnum = id_() + offset
            if candidates is None or docnum in candidates:
                tf = weight()
                scores[docnum] = get(docnum, 0.0) + factor * tf / (tf + norms[docnum])
            next_()


#: Per opened index: each field's length normalisation by docnum (see :func:`_norms`).
_norms_of: "weakref.WeakKeyDictionary[SearchIndex, dict[str, list[float]]]" = weakref.WeakKeyDictionary()


def _norms(index: SearchIndex, fieldname: str) -> list[float]:
    """Per docnum, BM25's length normalisation ``K1 * (1 - B + B * len / avg)``, where ``avg`` is
    the field's average length rounded as the static shards round it
    (:func:`~catalogue.search.analysis.average_length`): both rank alike."""
    by_field = _norms_of.setdefault(index, {})
    values = by_field.get(fieldname)
    if values is None:
        avg = average_length(index.field_length(fieldname), index.doc_count())
        values = [K1 * ((1 - B) + B * byte_to_length(b) / avg) for b in index.column(f"len_{fieldname}")]
        by_field[fieldname] = values
    return values


def _ranked(index: SearchIndex, scores: dict[int, float], need: int) -> list[tuple[float, int]]:
    """The first ``need`` (score, docnum) by score (4 significant digits) desc, then Ref."""
    if not scores:
        return []
    top = heapq.nlargest(need, scores.items(), key=itemgetter(1))
    if len(scores) > need:
        # Formations tied with the last one at 4 digits may be further down: take them too.
        boundary = round_score(top[-1][1])
        floor = boundary * (1 - 1e-3)
        top = [item for item in scores.items() if item[1] >= floor]
    refs = index.refs()
    ranked = sorted(((round_score(s), d) for d, s in top), key=lambda h: (-h[0], refs[h[1]]))
    return ranked[:need]


# -- filters -----------------------------------------------------------------


def _allowed(index: SearchIndex, params: SearchParams) -> Optional[frozenset[int]]:
    """Docnums the filters keep, or ``None`` when nothing is filtered."""
    sets: list[frozenset[int]] = []
    if not params.include_archived:
        sets.append(index.flag_docs(FLAGS["archived"], False))
    if params.region:
        sets.append(index.term_docs("regions", params.region))
    if params.departement:
        sets.append(index.term_docs("departements", params.departement.upper()))
    if params.financeur:
        sets.append(index.term_docs("financeurs", params.financeur))
    for name in ("certifiante", "cpf", "distance", "esp"):
        value = getattr(params, name)
        if value is not None:
            sets.append(index.flag_docs(FLAGS[name], value))
    if params.debut_apres:
        sets.append(index.starting_from(int(params.debut_apres.strftime("%Y%m%d"))))
    if params.near:
        sets.append(_near(index, params.near, params.rayon_km or DEFAULT_RAYON_KM))
    if not sets:
        return None
    sets.sort(key=len)
    result = sets[0]
    for other in sets[1:]:
        result = result & other
    return result


def _near(index: SearchIndex, near: str, rayon_km: float) -> frozenset[int]:
    """Formations with a place of training within ``rayon_km`` of the town named ``near``."""
    found = index.near(near, rayon_km)
    if found is None:
        raise SearchError(
            f"ville inconnue : « {near[:100]} » ; aucune formation n'a de lieu géolocalisé "
            "à ce nom ou à ce code postal"
        )
    return found


# --------------------------------------------------------------------------
# Text output for the CLI
# --------------------------------------------------------------------------


def format_results_text(response: SearchResponse) -> str:
    """The CLI's human output: a count, then one line per hit (French)."""
    if not response.results:
        return "Aucune formation trouvée."
    count = f"{response.total} formation{'s' if response.total > 1 else ''} trouvée{'s' if response.total > 1 else ''}"
    lines = [count + (f" ({len(response.results)} affichées)" if response.total > len(response.results) else "") + " :"]
    for hit in response.results:
        lieu = " ".join(x for x in (hit.codepostal, hit.ville) if x)
        line = f"{hit.ref}  {hit.intitule} — {hit.organisme}"
        if lieu:
            line += f" — {lieu}"
        if hit.archived:
            line += " (archivée)"
        lines.append(line)
    return "\n".join(lines)
