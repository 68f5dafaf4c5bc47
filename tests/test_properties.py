"""Property-based tests (hypothesis): dates, Refs as paths, the LHEO reader, the search.

Each property states what must hold for *any* input of its kind; hypothesis
looks for a counter-example. Example counts are bounded so that the whole
module stays within a few seconds.
"""

from __future__ import annotations

import copy
import datetime as dt
import io
import os
import re
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, event, example, given, settings
from hypothesis import strategies as st
from lxml import etree
from pydantic import TypeAdapter, ValidationError

from catalogue.build import BuildOptions, build
from catalogue.lheo_export import write_lheo
from catalogue.model import REF_PATTERN, Formation, PartialDate, Ref
from catalogue.problems import Problem
from catalogue.search.query import SearchError, SearchParams, SearchResponse, search
from catalogue.settings import Settings
from catalogue.sources import Record
from catalogue.sources.lheo import _date as reader_date
from catalogue.sources.lheo import read_lheo
from factories import (
    ADRESSE_MONTPELLIER,
    ADRESSE_TOURS,
    SIRET_VEIGNE,
    action,
    formation_data,
    make_formation,
    organisme,
    session,
)

#: Pure functions get more examples than the properties that write files or search.
#: PROPERTY_EXAMPLES=2000 for a longer hunt; the suite's default keeps the module to a few seconds.
EXAMPLES = int(os.environ.get("PROPERTY_EXAMPLES", 60))
FAST = settings(max_examples=5 * EXAMPLES, deadline=None)
SLOW = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])

TODAY = dt.date(2026, 11, 29)


# --------------------------------------------------------------------------
# A small published catalogue, shared with test_api_schemathesis.py
# --------------------------------------------------------------------------


def small_catalogue() -> list[Formation]:
    """Five formations: different words, places, organismes, and one archived."""
    return [
        make_formation(numero="15_AF_0000000001", intitule="Électricien d'équipement du bâtiment"),
        make_formation(
            numero="15_AF_0000000002",
            intitule="Comptabilité et gestion « PME »",
            actions=[action(numero="15_SE_2", lieux=[ADRESSE_MONTPELLIER], modalites_enseignement=2)],
        ),
        make_formation(
            numero="07_AF_0000000003",
            intitule="Cuisinier : CAP cuisine & pâtisserie",
            actions=[action(numero="07_SE_3", lieux=[ADRESSE_TOURS], organismes_financeurs=[{"code_financeur": "5"}])],
            org=organisme(siret=SIRET_VEIGNE, nom="Lycée hôtelier", adresse=ADRESSE_TOURS),
        ),
        make_formation(
            numero="14_AF_0000000004",
            intitule="Anglais professionnel (niveau B2)",
            certifiante=True,
            certifications=[{"code_rncp": "RNCP12345"}],
        ),
        make_formation(
            numero="15_AF_0000000005",
            intitule="Électricien : ancienne session",
            actions=[action(numero="15_SE_5", sessions=[session(debut="20200101", fin="20200630", numero="S5")])],
        ),
    ]


def build_small_catalogue(root: Path) -> tuple[Path, set[str]]:
    """Write :func:`small_catalogue` as LHEO under ``root/content``, build its index; return (build dir, Refs)."""
    content = root / "content"
    content.mkdir(parents=True)
    formations = small_catalogue()
    write_lheo(formations, content / "export.xml")
    build_dir = root / "build"
    build(BuildOptions(content=(content,), build_dir=build_dir, today=TODAY), Settings(), sinks=["index"])
    return build_dir, {f.numero for f in formations}


@pytest.fixture(scope="module")
def catalogue_build(tmp_path_factory) -> tuple[Path, set[str]]:
    return build_small_catalogue(tmp_path_factory.mktemp("properties"))


# --------------------------------------------------------------------------
# 1. LHEO dates
# --------------------------------------------------------------------------

#: Eight digits, biased towards the interesting ranges (month 00-13, day 00-32).
eight_digits = st.one_of(
    st.text(alphabet="0123456789", min_size=8, max_size=8),
    st.builds(
        "{:04d}{:02d}{:02d}".format,
        st.integers(0, 9999),
        st.integers(0, 13),
        st.integers(0, 32),
    ),
)


@FAST
@given(eight_digits)
@example("00000000")
@example("99999999")
@example("20240229")  # leap day
@example("21000229")  # not a leap year
@example("00010100")
@example("99981231")
@example("20260031")  # a day without a month
def test_parse_eight_digits(text):
    try:
        parsed = PartialDate.parse(text)
    except ValueError:
        assert text not in ("00000000", "99999999")
        # The reader's cached fast path must refuse it too (handing the text to the model).
        assert reader_date(text) == text
        return
    if parsed is None:
        assert text in ("00000000", "99999999")
        return
    assert isinstance(parsed, PartialDate)
    assert parsed.lheo() == text
    assert parsed.earliest() <= parsed.latest()
    assert parsed.is_full == (text[6:] != "00")
    if text[0] != "0":  # an int loses leading zeros
        assert PartialDate.parse(int(text)) == parsed
    assert reader_date(text) == parsed


@FAST
@given(st.dates(min_value=dt.date(1, 1, 1), max_value=dt.date(9998, 12, 31)))
def test_iso_and_lheo_forms_of_a_day_agree(day):
    compact = f"{day.year:04d}{day.month:02d}{day.day:02d}"
    parsed = PartialDate.parse(compact)
    assert parsed == PartialDate.parse(day.isoformat()) == PartialDate.parse(day)
    assert parsed.earliest() == parsed.latest() == day


@FAST
@given(st.one_of(st.text(max_size=20), st.integers(), st.floats(), st.none(), st.binary(max_size=10)))
def test_parse_any_value_returns_or_raises_value_error(value):
    try:
        parsed = PartialDate.parse(value)
    except ValueError:
        return
    assert parsed is None or isinstance(parsed, PartialDate)


# --------------------------------------------------------------------------
# 2. Ref -> one path segment
# --------------------------------------------------------------------------

REF = TypeAdapter(Ref)
_REF_CHARS = st.sampled_from("Aa0_.-/\\\x00 \n:~é٣")


@FAST
@given(st.one_of(st.text(max_size=100), st.text(_REF_CHARS, max_size=90), st.from_regex(REF_PATTERN)))
@example("..")
@example(".")
@example("a/../b")
@example("a\n")
@example("A" * 81)
@example(" 15_AF_1 ")
def test_a_valid_ref_is_one_safe_path_segment(text):
    try:
        ref = REF.validate_python(text)
    except ValidationError:
        return
    assert 1 <= len(ref) <= 80
    assert not ({"/", "\\", "\x00"} & set(ref))
    assert ref not in (".", "..") and not ref.startswith(".")
    assert ref == ref.strip() and "\n" not in ref
    assert re.fullmatch(REF_PATTERN, ref)
    root = Path(tempfile.gettempdir()) / "catalogue-refs"
    assert Path(root, ref).resolve().parent == root.resolve()
    assert Path(root, "formations", f"{ref}.html").resolve().parent == (root / "formations").resolve()
    assert REF.validate_python(ref) == ref  # idempotent


@FAST
@given(st.from_regex(REF_PATTERN, fullmatch=True).filter(lambda s: ".." not in s))
def test_every_ref_of_the_pattern_is_accepted_unchanged(text):
    assert REF.validate_python(text) == text


# --------------------------------------------------------------------------
# 3. The LHEO reader
# --------------------------------------------------------------------------


def _xml_char(c: str) -> bool:
    """XML 1.0 ``Char``: what an LHEO file can carry."""
    o = ord(c)
    return o in (0x9, 0xA, 0xD) or 0x20 <= o <= 0xD7FF or 0xE000 <= o <= 0xFFFD or 0x10000 <= o <= 0x10FFFF


#: The characters below U+FFFF that XML 1.0 cannot carry (surrogates are not UTF-8 anyway).
NOT_XML_BMP = "".join(chr(o) for o in [*range(0x20), 0xFFFE, 0xFFFF] if not _xml_char(chr(o)))

#: Any XML-carriable text, with HTML-ish markup, entities-looking text, quotes and CR/tab.
xml_text = st.lists(
    st.one_of(
        st.characters(codec="utf-8", exclude_characters=NOT_XML_BMP),
        st.sampled_from(["<", ">", "&", '"', "'", "\t", "\r", "\n", "&lt;br /&gt;", "]]>", "\u00a0", "\u2028"]),
    ),
    min_size=1,
    max_size=40,
).map("".join)

#: A required text: something the model does not read as "unknown" once stripped.
required_text = xml_text.filter(lambda t: t.strip() not in ("", "-", "--", "."))

partial_dates = st.builds(
    PartialDate,
    st.integers(1990, 2040),
    st.integers(0, 12),
    st.just(0),
) | st.dates(dt.date(1990, 1, 1), dt.date(2040, 12, 31)).map(PartialDate.parse)


@st.composite
def periodes(draw) -> dict:
    debut = draw(st.none() | partial_dates)
    fin = draw(st.none() | partial_dates)
    if debut and fin and fin.latest() < debut.earliest():
        debut, fin = fin, debut
    if debut and fin and fin.latest() < debut.earliest():  # partial dates that overlap oddly
        fin = None
    return {"debut": debut.lheo() if debut else None, "fin": fin.lheo() if fin else None}


#: What LHEO requires and the writer would otherwise fill with its defaults (see PLACEHOLDERS).
CONTACT = {"courriel": "contact@exemple.invalid"}


@st.composite
def formations(draw) -> Formation:
    """A formation whose every LHEO-required element is known, so that write → read is the identity."""
    numero = draw(st.from_regex(r"\A(15|07|14_AF)_[A-Z0-9]{1,12}\Z"))
    actions = []
    for i in range(draw(st.integers(1, 3))):
        sessions = [
            {"numero": f"S{i}_{j}", "periode": draw(periodes()), "adresse_inscription": {"ville": draw(required_text)}}
            for j in range(draw(st.integers(1, 3)))
        ]
        actions.append(
            action(
                numero=f"A{i}",
                sessions=sessions,
                rythme_formation=draw(st.none() | required_text),
                nombre_heures_total=draw(st.none() | st.integers(0, 5000)),
                code_public_vise=["83056"],
                niveau_entree_obligatoire=draw(st.booleans()),
                modalites_enseignement=draw(st.integers(0, 2)),
                prise_en_charge_frais_possible=draw(st.booleans()),
            )
        )
    org = organisme(nom=draw(required_text))
    org.update(numero_activite="76310000031", contact_organisme=[CONTACT])
    data = formation_data(
        numero=numero,
        intitule=draw(required_text),
        objectif_formation=draw(st.none() | required_text),
        contenu_formation=draw(st.none() | xml_text),
        datemaj=draw(st.dates(dt.date(2000, 1, 1), dt.date(2030, 12, 31))).strftime("%Y%m%d"),
        actions=actions,
        org=org,
        contact_formation=[dict(CONTACT, nom=draw(st.none() | required_text))],
        parcours_de_formation=1,
        code_niveau_entree=0,
    )
    return Formation.model_validate(data)


def _items(path: Path) -> list:
    items = list(read_lheo(path))
    for item in items:
        assert isinstance(item, (Record, Problem)), item
        if isinstance(item, Problem):
            assert item.origin.path == str(path)
            assert isinstance(item.origin.line, int) and item.origin.line >= 0
            assert item.numero and item.field and item.message.strip(), item
            assert str(item).startswith(f"{path}:{item.origin.line}: ")
        else:
            assert isinstance(item.formation, Formation)
    return items


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    """One file rewritten by every example (hypothesis forbids function-scoped fixtures)."""
    return tmp_path_factory.mktemp("lheo") / "export.xml"


@SLOW
@given(st.lists(formations(), min_size=1, max_size=3))
def test_write_then_read_gives_the_same_formations(scratch, written):
    write_lheo(written, scratch)
    items = _items(scratch)
    assert [str(i) for i in items if isinstance(i, Problem)] == []
    assert [i.formation for i in items] == written


@SLOW
@given(st.binary(max_size=2000))
@example(b"")
@example(b"\xef\xbb\xbf")
@example(b"<lheo/>")
@example(b"<?xml version='1.0' encoding='utf-32'?><lheo/>")
@example(b'<!DOCTYPE lheo [<!ENTITY x SYSTEM "file:///etc/passwd">]><lheo>&x;</lheo>')
@example(b"<lheo><offres><formation numero='x'></formation></offres></lheo>")
def test_any_bytes_give_records_or_problems(scratch, data):
    scratch.write_bytes(data)
    items = _items(scratch)
    if not data.strip():
        assert len(items) == 1 and isinstance(items[0], Problem)


def _valid_export() -> bytes:
    out = io.BytesIO()
    write_lheo(small_catalogue()[:2], out)
    return out.getvalue()


VALID_EXPORT = _valid_export()
#: Where the first formation ends in VALID_EXPORT.
FIRST_END = VALID_EXPORT.index(b"</formation>") + len(b"</formation>")


@st.composite
def mutated_exports(draw, start: int = 0) -> bytes:
    """VALID_EXPORT truncated, with bits flipped, bytes inserted or deleted, all at or after ``start``."""
    data = bytearray(VALID_EXPORT)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["truncate", "flip", "insert", "delete"]))
        at = draw(st.integers(start, max(len(data) - 1, start)))
        if op == "truncate":
            del data[at:]
        elif op == "flip" and at < len(data):
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "insert":
            junk = st.binary(min_size=1, max_size=8) | st.sampled_from([b"<", b"&", b"]]>", b"<x>", b"\x00"])
            data[at:at] = draw(junk)
        elif op == "delete":
            del data[at : at + draw(st.integers(1, 40))]
    return bytes(data)


@SLOW
@given(mutated_exports())
def test_damaged_exports_give_records_or_problems(scratch, data):
    scratch.write_bytes(data)
    items = _items(scratch)
    event(f"records: {sum(isinstance(i, Record) for i in items)}")
    assert items  # something is always said: a record or why there is none
    for item in items:
        if isinstance(item, Record):
            assert re.fullmatch(REF_PATTERN, item.formation.numero)


@SLOW
@given(mutated_exports(start=FIRST_END))
def test_damage_after_a_formation_keeps_it(scratch, data):
    scratch.write_bytes(VALID_EXPORT)
    first_formation = _items(scratch)[0].formation
    scratch.write_bytes(data)
    items = _items(scratch)
    assert isinstance(items[0], Record), items[0]
    assert items[0].formation == first_formation


#: Values that real or broken exports hold where a date, number, code or text is expected.
ODD_VALUES = [
    "", " ", "-", "0", "00000", "00000000", "99999999", "20261340", "20260229", "2026-02-30", "-1", "1e309",
    "nan", "inf", "12,50", "1 200", "\u00a0", "９", "0" * 100, "x" * 300, "<b>gras</b>", "&lt;br /&gt;", "oui",
    "../../etc/passwd", "A" * 81, "15_AF_1", "\u202e", "🙂",
]


@st.composite
def reworded_exports(draw) -> bytes:
    """VALID_EXPORT, still well-formed, with some texts and attributes replaced and some elements dropped or doubled:
    what reaches the model and the error reporting rather than the XML parser."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
    root = etree.fromstring(VALID_EXPORT, parser)
    elements = [el for el in root.iter() if el is not root]
    values = st.sampled_from(ODD_VALUES) | xml_text
    for el in draw(st.lists(st.sampled_from(elements), min_size=1, max_size=8, unique_by=id)):
        if el.getparent() is None:
            continue
        op = draw(st.sampled_from(["text", "attribute", "drop", "double"]))
        if op == "text":
            el.text = draw(values)
        elif op == "attribute" and el.attrib:
            el.set(draw(st.sampled_from(sorted(el.attrib))), draw(values))
        elif op == "drop":
            el.getparent().remove(el)
        elif op == "double":
            el.addnext(copy.deepcopy(el))
    return etree.tostring(root, xml_declaration=True, encoding="utf-8")


@SLOW
@given(reworded_exports())
def test_odd_values_give_records_or_located_problems(scratch, data):
    scratch.write_bytes(data)
    items = _items(scratch)
    assert items
    problems = [i for i in items if isinstance(i, Problem)]
    event(f"problems: {min(len(problems), 2)}")
    for problem in problems:
        assert problem.origin.line >= 1, problem  # a well-formed file: every problem has its line


# --------------------------------------------------------------------------
# 4. Query handling
# --------------------------------------------------------------------------

QUERY_WORDS = [
    "AND", "OR", "NOT", "*", "?", "titre:électricien", "ref:15_AF_0000000001", '"', "'", "(", ")", "\x00",
    "🙂", "électricien", "ELECTRICIEN", "cuisine", "comptabilite", "electricin", "15_AF_0000000001",
    "0000000002", "15_AF_0000000001|15_A1|S1", "193 113 834 00389", "RNCP12345", "12345", "-", "+", "~2",
    "\\", "/", "%", "..", "<script>", "ﬁ", "İ", "ß",
]

queries = st.one_of(
    st.text(max_size=600),
    st.lists(st.sampled_from(QUERY_WORDS), max_size=12).map(" ".join),
    st.lists(st.sampled_from(QUERY_WORDS), max_size=6).map("".join),
)


@SLOW
@given(
    q=queries,
    limit=st.integers(-1, 102),
    offset=st.integers(-1, 12),
    include_archived=st.booleans(),
)
@example(q="électricien", limit=20, offset=0, include_archived=True)
@example(q="a" * 501, limit=20, offset=0, include_archived=False)
@example(q="\x00" * 10, limit=1, offset=0, include_archived=False)
def test_search_answers_or_refuses_cleanly(catalogue_build, q, limit, offset, include_archived):
    build_dir, refs = catalogue_build
    try:
        params = SearchParams(q=q, limit=limit, offset=offset, include_archived=include_archived)
    except ValidationError:
        event("invalid params")
        return
    try:
        response = search(build_dir, params)
    except SearchError as exc:
        event("SearchError")
        assert str(exc).strip()
        return
    assert isinstance(response, SearchResponse)
    found = [r.ref for r in response.results]
    event(f"results: {min(len(found), 2)}")
    assert len(found) == len(set(found)), found
    assert set(found) <= refs
    assert len(found) <= params.limit
    assert response.total >= len(found) + (params.offset if found else 0)
    for result in response.results:
        assert result.url == f"/formations/{result.ref}.html"
        assert result.archived == (result.ref == "15_AF_0000000005")


@SLOW
@given(q=queries, offset=st.integers(0, 4))
def test_pages_are_slices_of_one_ranking(catalogue_build, q, offset):
    """Paging never repeats nor skips a hit: page ``offset`` is the full list from ``offset``."""
    build_dir, _ = catalogue_build
    try:
        everything = search(build_dir, SearchParams(q=q, limit=100, include_archived=True))
        page = search(build_dir, SearchParams(q=q, limit=2, offset=offset, include_archived=True))
    except (ValidationError, SearchError):
        assume(False)
    assert page.total == everything.total
    assert [r.ref for r in page.results] == [r.ref for r in everything.results][offset : offset + 2]
