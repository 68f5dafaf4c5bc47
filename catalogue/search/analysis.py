"""The one French analysis chain, shared by the Whoosh index, the static shards and the query.

    text → NFKC → lowercase → words (runs of letters/digits: ``[^\\W_]+``)
         → fold accents (NFKD, combining marks dropped; œ→oe, æ→ae, ß→ss)
         → drop stop words (:data:`STOP_WORDS`, folded)
         → Snowball French stem of the folded word
         → drop terms shorter than 2 characters

Folding comes *before* stemming: the stemmer then sees ``electricien`` for both
``électricien`` and ``electricien`` and gives one stem. :func:`fold_terms` is the
same chain without the stemmer; its words are what spelling tolerance compares
a misspelt query word with (a typo rarely survives stemming: ``restauraton`` → ``restauraton``
but ``restauration`` → ``restaur``).

Scoring is Whoosh's BM25F (B=0.75, K1=1.2), with each field's average length
rounded to 2 significant digits (:func:`average_length`), and per-field boosts applied at
query time (:data:`FIELD_BOOSTS`): a formation's score for a query is the sum
over query terms and fields of ``FIELD_BOOSTS[field] * bm25(...)``. Results are
ranked by :func:`round_score` of that sum (4 significant digits), descending,
then by Ref; the score shown is the rounded one.
:func:`bm25`, :func:`idf` and :func:`stored_length` reproduce exactly what
Whoosh computes, so that a static index precomputed from the same texts ranks
like the Whoosh one. :func:`field_texts` says which text of a formation goes
into which field, for both.

The JavaScript port (``templates/static/``) must give the same terms for the
same text; the tests pin the behaviour.
"""

from __future__ import annotations

import math
import re
import unicodedata
from functools import lru_cache
from itertools import chain
from typing import TYPE_CHECKING, Iterator, Optional

from whoosh.analysis import Token, Tokenizer
from whoosh.lang.snowball.french import FrenchStemmer
from whoosh.scoring import BM25F, BM25FScorer
from whoosh.util.numeric import byte_to_length, length_to_byte

if TYPE_CHECKING:  # pragma: no cover
    from ..catalog import Entry
    from ..model import Formation

#: BM25F parameters (Whoosh's defaults, written down so that the static side uses the same).
B = 0.75
K1 = 1.2

#: Field weights applied at query time: titles weigh more than descriptions.
#: ``texte`` is objectif + contenu + résultats attendus.
FIELD_BOOSTS: dict[str, float] = {
    "intitule": 4.0,
    "organisme": 2.0,
    "ville": 1.5,
    "texte": 1.0,
}

#: Spelling tolerance: words of at least this many letters may be misspelt...
FUZZY_MIN_LENGTH = 5
#: ... by one edit (5–7 letters) or two (8 letters or more), first letter kept.
FUZZY_TWO_EDITS_FROM = 8
FUZZY_PREFIX = 1

#: Bounds on what a query may hold.
MAX_QUERY_CHARS = 500
MAX_QUERY_TERMS = 20

# Single letters and elisions first (l', d', j', s', n', c', qu', m', t'), then the
# usual French function words, written folded (no accents) since folding comes first.
STOP_WORDS: frozenset[str] = frozenset(
    """
    a b c d e f g h i j k l m n o p q r s t u v w x y z qu
    au aux avec ce ces cet cette dans de des du elle elles en et eux il ils
    je la le les leur leurs lui ma mais me meme mes moi mon ne nos notre nous
    on ou par pas pour plus qui que quel quelle quels quelles sa se ses son sur
    ta te tes toi ton tu un une vos votre vous
    est sont ete etre avoir ont sans sous chez vers entre aussi tres
    dont cela ceci ca si ni car donc
    """.split()
)

_WORD = re.compile(r"[^\W_]+")
_LIGATURES = str.maketrans({"œ": "oe", "æ": "ae", "ß": "ss", "ø": "o", "đ": "d", "ł": "l", "ı": "i"})
_stemmer = FrenchStemmer()


def words(text: str) -> list[str]:
    """NFKC, lowercase, then runs of letters and digits (apostrophes and hyphens split)."""
    return _WORD.findall(unicodedata.normalize("NFKC", text).lower())


@lru_cache(maxsize=200_000)
def fold(word: str) -> str:
    """``Électricité`` → ``electricite``: accents and ligatures dropped (the word is lowercase)."""
    word = word.translate(_LIGATURES)
    if word.isascii():
        return word
    decomposed = unicodedata.normalize("NFKD", word)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


@lru_cache(maxsize=200_000)
def stem(folded: str) -> str:
    """Snowball French stem of a folded word (digits are left alone)."""
    if folded.isdigit():
        return folded
    return _stemmer.stem(folded)


#: Each word met so far → its folded form and its stem (``""`` for what the chain drops): a
#: catalogue repeats the same few tens of thousands of words, so the chain runs once per
#: word, not once per occurrence. Emptied when they grow past :data:`_WORD_CACHE_LIMIT`.
_folded_of: dict[str, str] = {}
_stem_of: dict[str, str] = {}
_WORD_CACHE_LIMIT = 500_000


def _learn(found: list[str]) -> None:
    """Put the words of ``found`` not seen yet through the chain."""
    if len(_stem_of) >= _WORD_CACHE_LIMIT:
        _folded_of.clear()
        _stem_of.clear()
    for word in found:
        if word in _stem_of:
            continue
        folded = fold(word)
        if folded in STOP_WORDS or len(folded) < 2:
            folded = term = ""
        else:
            term = stem(folded)
            if len(term) < 2:
                term = ""
        _folded_of[word] = folded
        _stem_of[word] = term


#: Texts analysed so far → their folded terms and stems. The short ones (titles, organisme names,
#: towns: three of a formation's four texts) repeat across a catalogue: each is analysed once per
#: process, and kept until :data:`_SHORT_LIMIT` of them are (then forgotten, and learnt again).
#: The long ones (a formation's ``texte``) rarely repeat but the sinks of one process ask for the
#: same one in turn: the last :data:`_RECENT_LIMIT` are kept.
_short: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {}
_recent: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {}
_SHORT_TEXT = 200
_SHORT_LIMIT = 50_000
_RECENT_LIMIT = 32

#: A long text is analysed by its blank-separated pieces, each looked up here (its folded terms,
#: and its stems): a catalogue's texts are made of the same pieces (``formation``, ``l'issue``,
#: ``:``...), and a text's words are its pieces' words, in order: blanks are no word characters,
#: and neither NFKC nor lowercasing carries across one (none composes, reorders or is cased;
#: tests/test_search_caches.py checks it against every code point). Emptied past the limit.
_piece_folded: dict[str, tuple[str, ...]] = {}
_piece_stems: dict[str, tuple[str, ...]] = {}
_PIECE_LIMIT = 200_000


def _analysed(text: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    short = len(text) <= _SHORT_TEXT
    kept = _short if short else _recent
    found = kept.get(text)
    if found is None:
        if short:
            found = _chain(words(text))
        else:
            pieces = text.split()
            found = (_of_pieces(_piece_folded, pieces), _of_pieces(_piece_stems, pieces))
        if len(kept) >= (_SHORT_LIMIT if short else _RECENT_LIMIT):
            kept.clear()
        kept[text] = found
    return found


def _chain(found_words: list[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The folded terms and stems of words (of :func:`words`)."""
    try:
        folded = tuple(filter(None, map(_folded_of.__getitem__, found_words)))
    except KeyError:  # a word not met yet (rarely, once the catalogue's words are known)
        _learn(found_words)
        folded = tuple(filter(None, map(_folded_of.__getitem__, found_words)))
    # _folded_of and _stem_of know the same words.
    return folded, tuple(filter(None, map(_stem_of.__getitem__, found_words)))


def _of_pieces(table: dict[str, tuple[str, ...]], pieces: list[str]) -> tuple[str, ...]:
    """The terms ``table`` (:data:`_piece_folded` or :data:`_piece_stems`, which know the same pieces)
    gives the pieces of a long text, in order."""
    try:
        return tuple(chain.from_iterable(map(table.__getitem__, pieces)))
    except KeyError:  # a piece not met yet
        _learn_pieces(pieces)
        return tuple(chain.from_iterable(map(table.__getitem__, pieces)))


def _learn_pieces(pieces: list[str]) -> None:
    """Put the pieces of a long text not seen yet through the chain."""
    if len(_piece_stems) + len(pieces) > _PIECE_LIMIT:
        _piece_folded.clear()
        _piece_stems.clear()
    for piece in pieces:
        if piece not in _piece_stems:
            _piece_folded[piece], _piece_stems[piece] = _chain(words(piece))


def fold_terms(text: Optional[str]) -> list[str]:
    """The folded, unstemmed terms of ``text``, stop words and 1-character terms dropped."""
    return list(_analysed(text)[0]) if text else []


def analyse(text: Optional[str]) -> list[str]:
    """The stemmed terms of ``text``, in order, with repeats: what the text fields index."""
    return list(_analysed(text)[1]) if text else []


def analyse_both(text: Optional[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """:func:`fold_terms` and :func:`analyse` of ``text`` in one pass, as the tuples the analysis keeps:
    shared by the sinks that analyse the same text one after the other, never copied (nor changed)."""
    return _analysed(text) if text else ((), ())


def analyse_stems(text: Optional[str]) -> tuple[str, ...]:
    """:func:`analyse` of ``text`` as the analysis's own tuple (never copied, nor changed), for a sink
    that needs no folded words (the static shards): a long text not met just before is not folded."""
    if not text:
        return ()
    if len(text) <= _SHORT_TEXT or text in _recent:
        return _analysed(text)[1]
    return _of_pieces(_piece_stems, text.split())


#: The label a fiche prints before its Ref: "Ref : 15_AF_1" pasted from a fiche is the Ref.
REF_LABEL = re.compile(r"^R[EÉ]F(?:[EÉ]RENCE)?:")


def normalise_number(query: str) -> str:
    """A number as the id table holds it: blanks removed, uppercase, without a leading
    ``Ref :`` label (``ref : 15_af_0000910001`` → ``15_AF_0000910001``)."""
    return REF_LABEL.sub("", "".join(query.split()).upper(), count=1)


# --------------------------------------------------------------------------
# What is indexed, per field
# --------------------------------------------------------------------------


def field_texts(formation: "Formation", entry: "Entry") -> dict[str, str]:
    """The raw text of each scored field of a formation (keys of :data:`FIELD_BOOSTS`).

    Both the Whoosh index and the static shards index exactly these texts, and ask for
    them one after the other: the last answer is kept (with the objects asked about, so
    that another formation cannot take their ids), and a copy of it given.
    """
    last = _last_texts[0]
    if last[0] is formation and last[1] is entry:
        return dict(last[2])
    texts = _field_texts(formation, entry)
    _last_texts[0] = (formation, entry, texts)
    return dict(texts)


#: The last formation and entry :func:`field_texts` was asked about, and its answer (one tuple: read at once).
_last_texts: list[tuple] = [(None, None, {})]


def _field_texts(formation: "Formation", entry: "Entry") -> dict[str, str]:
    organisme = formation.organisme_formation_responsable
    names = [organisme.nom_organisme]
    if organisme.raison_sociale != organisme.nom_organisme:
        names.append(organisme.raison_sociale)
    villes: list[str] = []
    for place in entry.places:
        for value in (place.ville, place.codepostal):
            if value and value not in villes:
                villes.append(value)
    texte = [formation.objectif_formation, formation.contenu_formation, formation.resultats_attendus]
    return {
        "intitule": formation.intitule_formation,
        "organisme": " ".join(names),
        "ville": " ".join(villes),
        "texte": "\n".join(t for t in texte if t),
    }


# --------------------------------------------------------------------------
# Scoring: Whoosh's BM25F, written out
# --------------------------------------------------------------------------


def idf(n_docs: int, doc_frequency: int) -> float:
    """Whoosh's idf: ``log(N / (df + 1)) + 1`` (N counts every document of the index)."""
    return math.log(n_docs / (doc_frequency + 1)) + 1


def stored_length(length: int) -> int:
    """A field length as Whoosh stores it per document (one byte, approximate above 10)."""
    return byte_to_length(length_to_byte(length))


def bm25(tf: float, fieldlen: float, avgfieldlen: float, idf_value: float, B: float = B, K1: float = K1) -> float:
    """Whoosh's BM25 for one term in one field of one document.

    ``fieldlen`` is :func:`stored_length` of the field's number of terms;
    ``avgfieldlen`` is :func:`average_length` of the field (Whoosh's own BM25F uses
    the exact average: :class:`RoundedBM25F` is Whoosh's with this one).
    """
    return idf_value * ((tf * (K1 + 1)) / (tf + K1 * ((1 - B) + B * fieldlen / avgfieldlen)))


#: Significant digits of a field's average length in BM25 (:func:`average_length`).
AVERAGE_DIGITS = 2


def average_length(total: int, n_docs: int) -> float:
    """A field's average length as BM25 uses it here: ``total / n_docs`` to :data:`AVERAGE_DIGITS`
    significant digits (1 when there is nothing).

    Rounded, the average moves only when the catalogue changes noticeably: a changed
    formation then changes the scores of its own terms only, and the static shards of
    every other term stay as they were (incremental builds). The query (CLI, API) and the
    static shards both use it, so that they rank alike.
    """
    average = total / n_docs if n_docs else 0
    return round_score(average, AVERAGE_DIGITS) or 1


def round_score(score: float, digits: int = 4) -> float:
    """``score`` to ``digits`` significant digits: scores are compared and shown at this precision."""
    if score == 0 or not math.isfinite(score):
        return score
    return round(score, digits - 1 - int(math.floor(math.log10(abs(score)))))


class RoundedBM25F(BM25F):
    """Whoosh's BM25F with :func:`average_length`: what the query computes, as a Whoosh weighting."""

    def scorer(self, searcher, fieldname, text, qf=1):
        scorer = super().scorer(searcher, fieldname, text, qf=qf)
        if isinstance(scorer, BM25FScorer):
            parent = searcher.get_parent()
            scorer.avgfl = average_length(parent.field_length(fieldname), parent.doc_count_all())
        return scorer


# --------------------------------------------------------------------------
# Whoosh analyzers made of the same functions
# --------------------------------------------------------------------------


class ChainTokenizer(Tokenizer):
    """A Whoosh tokenizer yielding :func:`analyse` (``stemming=True``) or :func:`fold_terms` terms."""

    def __init__(self, stemming: bool = True):
        self.stemming = stemming

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ChainTokenizer) and other.stemming == self.stemming

    def __call__(
        self,
        value: str,
        positions: bool = False,
        chars: bool = False,
        keeporiginal: bool = False,
        removestops: bool = True,
        start_pos: int = 0,
        start_char: int = 0,
        tokenize: bool = True,
        mode: str = "",
        **kwargs,
    ) -> Iterator[Token]:
        terms = analyse(value) if self.stemming else fold_terms(value)
        token = Token(positions, chars, removestops=removestops, mode=mode, **kwargs)
        for i, term in enumerate(terms):
            token.text = term
            token.boost = 1.0
            token.stopped = False
            if keeporiginal:
                token.original = term
            if positions:
                token.pos = start_pos + i
            if chars:  # offsets are not kept by the chain; highlighting is not used
                token.startchar = token.endchar = start_char
            yield token


class TermsTokenizer(Tokenizer):
    """A Whoosh tokenizer for text already analysed: terms of :func:`analyse` joined by spaces.

    The index sink analyses each text once (it also needs the folded words and
    the length), then hands Whoosh the terms.
    """

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TermsTokenizer)

    def __call__(self, value: str, positions: bool = False, chars: bool = False, keeporiginal: bool = False,
                 removestops: bool = True, start_pos: int = 0, start_char: int = 0, tokenize: bool = True,
                 mode: str = "", **kwargs) -> Iterator[Token]:
        token = Token(positions, chars, removestops=removestops, mode=mode, **kwargs)
        for i, term in enumerate(value.split()):
            token.text = term
            token.boost = 1.0
            token.stopped = False
            if keeporiginal:
                token.original = term
            if positions:
                token.pos = start_pos + i
            if chars:
                token.startchar = token.endchar = start_char
            yield token


def stemming_analyzer() -> ChainTokenizer:
    """The analyzer of the scored text fields (``intitule``, ``organisme``, ``ville``, ``texte``)."""
    return ChainTokenizer(stemming=True)


def folding_analyzer() -> ChainTokenizer:
    """The analyzer of the spelling-tolerant field: folded, unstemmed words."""
    return ChainTokenizer(stemming=False)
