"""An LHEO file cut into formations by a byte scan, each read alone, gives what the streaming read gives.

The reference is :func:`stream_lheo` (lxml's iterparse over the whole file).
Every file here is either not cut (:func:`split_lheo` returns None, so the
streaming read words its problems) or cut into chunks whose results, one
after the other, are exactly the streaming read's: same records, same
problems, same lines.
"""

from __future__ import annotations

import dataclasses
import io
import re
from pathlib import Path
from typing import Optional

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from catalogue.generate import generate
from catalogue.problems import Problem
from catalogue.sources import Record
from catalogue.sources import lheo as reader
from catalogue.sources.lheo import ChunkError, read_chunk, read_from, read_lheo, split_lheo, stream_lheo

SAMPLES = Path(__file__).parent / "data" / "lheo"
NS22 = "http://www.lheo.org/2.2"
NS23 = "http://lheo.gouv.fr/2.3"

FORMATION = """<formation numero="{numero}" datemaj="20240115">
  <domaine-formation><code-FORMACODE tag="principal">22403</code-FORMACODE></domaine-formation>
  {intitule}
  <objectif-formation>Apprendre à poser des cloisons</objectif-formation>
  <resultats-attendus>-</resultats-attendus>
  <contenu-formation>{contenu}</contenu-formation>
  <certifiante>0</certifiante>
  <contact-formation><coordonnees><courriel>a@exemple.invalid</courriel></coordonnees></contact-formation>
  <parcours-de-formation>1</parcours-de-formation>
  <code-niveau-entree>0</code-niveau-entree>
  <action numero="{numero}_A">
    <rythme-formation>-</rythme-formation>
    <code-public-vise>80001</code-public-vise>
    <niveau-entree-obligatoire>0</niveau-entree-obligatoire>
    <modalites-alternance>-</modalites-alternance>
    <modalites-enseignement>0</modalites-enseignement>
    <conditions-specifiques>-</conditions-specifiques>
    <prise-en-charge-frais-possible>0</prise-en-charge-frais-possible>
    <modalites-entrees-sorties>0</modalites-entrees-sorties>
    <session><periode><debut>{debut}</debut><fin>20250630</fin></periode>
      <adresse-inscription>
        <adresse><ligne>1 rue X</ligne><codepostal>31000</codepostal><ville>Toulouse</ville></adresse>
      </adresse-inscription>
    </session>
  </action>
  <organisme-formation-responsable>
    <numero-activite>1</numero-activite>
    <SIRET-organisme-formation><SIRET>{siret}</SIRET></SIRET-organisme-formation>
    <nom-organisme>AFPA</nom-organisme><raison-sociale>AFPA</raison-sociale>
    <coordonnees-organisme><coordonnees/></coordonnees-organisme>
    <contact-organisme><coordonnees/></contact-organisme>
  </organisme-formation-responsable>
</formation>"""


def formation(numero: str = "15_1", **parts: str) -> str:
    """A small valid formation; ``parts`` replace its intitule, contenu, debut or siret."""
    slots = dict(
        intitule=f"<intitule-formation>Plaquiste {numero}</intitule-formation>",
        contenu="Cloisons sèches",
        debut="20240901",
        siret="82422814200660",
    )
    slots.update(parts)
    return FORMATION.format(numero=numero, **slots)


def document(
    *formations: str,
    ns: str = NS23,
    encoding: str = "utf-8",
    prolog: str = "",
    between: str = "\n",
    tail: str = "",
) -> str:
    xmlns = f' xmlns="{ns}"' if ns else ""
    return (
        f'<?xml version="1.0" encoding="{encoding}"?>\n{prolog}<lheo{xmlns}>\n  <offres>\n'
        + between.join(formations)
        + f"\n{tail}</offres>\n</lheo>\n"
    )


def write(tmp_path: Path, text: str, encoding: str = "utf-8", name: str = "export.xml") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding, errors="xmlcharrefreplace"))
    return path


def chunked(path: Path) -> Optional[list]:
    """The results of every chunk, one after the other; None when the file is not cut.

    As a caller must: from a chunk that does not parse alone, the stream goes on.
    """
    split = split_lheo(path)
    if split is None:
        return None
    items = []
    with split:
        for index, chunk in enumerate(split.chunks):
            try:
                items += read_chunk(split, chunk)
            except ChunkError:
                return items + list(read_from(split, index))
    return items


def assert_same(path: Path) -> list:
    """The file is cut, and its chunks read alone give the streaming read's results; returns them."""
    streamed = list(stream_lheo(path))
    assert chunked(path) == streamed
    assert list(read_lheo(path)) == streamed
    return streamed


def assert_not_cut_or_same(path: Path) -> Optional[list]:
    streamed = list(stream_lheo(path))
    results = chunked(path)
    assert results is None or results == streamed
    assert list(read_lheo(path)) == streamed
    return results


def generated(version: str = "2.3", count: int = 40, seed: int = 3) -> str:
    out = io.BytesIO()
    generate(out, count, seed=seed, version=version)
    return out.getvalue().decode("utf-8")


def records(items: list) -> list[Record]:
    return [i for i in items if isinstance(i, Record)]


def problems(items: list) -> list[Problem]:
    return [i for i in items if isinstance(i, Problem)]


# --------------------------------------------------------------------------
# Files that are cut: the same results as the streaming read
# --------------------------------------------------------------------------


@pytest.mark.parametrize("sample", sorted(SAMPLES.glob("*.xml")), ids=lambda p: p.name)
def test_samples(sample):
    items = assert_same(sample)
    assert len(split_lheo(sample).chunks) == len(items) == 1
    assert records(items)


@pytest.mark.parametrize("version", ["2.2", "2.3"])
def test_generated_files(tmp_path, version):
    text = generated(version)
    items = assert_same(write(tmp_path, text))
    assert len(records(items)) == text.count("<formation ") == 40


def test_latin1_file(tmp_path):
    text = generated(seed=5).replace("encoding='utf-8'", "encoding='ISO-8859-1'")
    path = write(tmp_path, text, "latin-1")
    assert b"\xe9" in path.read_bytes()  # é as one byte: the file really is latin-1
    items = assert_same(path)
    assert any("é" in r.formation.intitule_formation for r in records(items))
    assert split_lheo(path).prefix.startswith(b"<?xml version='1.0' encoding='ISO-8859-1'?>")


def test_windows_1252_file_with_characters_it_lacks(tmp_path):
    """Characters outside the encoding are written as references (&#8217;): read the same."""
    text = document(formation("15_1", contenu="L’œuvre € 5"), formation("15_2"), encoding="windows-1252")
    assert_same(write(tmp_path, text, "cp1252"))


def test_errors_in_some_formations(tmp_path):
    text = generated(count=12, seed=9)
    starts = [m.start() for m in re.finditer("<formation ", text)]
    pieces = [text[a:b] for a, b in zip(starts, starts[1:] + [len(text)])]
    pieces[1] = re.sub(r"<debut>\d+</debut>", "<debut>20241345</debut>", pieces[1], count=1)
    pieces[4] = re.sub(r"<SIRET>\d+</SIRET>", "<SIRET>12345678901234</SIRET>", pieces[4], count=1)
    pieces[6] = re.sub(r"<intitule-formation>.*?</intitule-formation>", "", pieces[6], count=1)
    pieces[7] = re.sub(r' numero="[^"]*"', "", pieces[7], count=1)
    pieces[9] = re.sub(r"<code-public-vise>", "<code-public-vise>  ", pieces[9], count=1)
    items = assert_same(write(tmp_path, text[: starts[0]] + "".join(pieces)))
    found = problems(items)
    assert {p.field.rsplit("/", 1)[-1] for p in found} >= {"debut", "SIRET-formateur", "intitule-formation", "@numero"}
    assert all(p.origin.line > 0 for p in found)
    assert len(records(items)) == 8  # 1, 4, 6 and 7 refused; 9's blanks are no error


def test_hand_written_errors(tmp_path):
    text = document(
        formation("15_1"),
        formation("15_2", debut="20241345"),
        formation("15_3", siret="1234"),
        formation("15_4", intitule=""),
        formation("15_5", contenu="<b>gras</b> et <i>italique</i>"),
    )
    items = assert_same(write(tmp_path, text))
    assert [p.numero for p in problems(items)] == ["15_2", "15_3", "15_4"]
    assert [r.numero for r in records(items)] == ["15_1", "15_5"]


def test_mapped_file(tmp_path, monkeypatch):
    """Large files are mapped rather than read: the same results."""
    monkeypatch.setattr(reader, "MMAP_MIN", 0)
    path = write(tmp_path, generated(count=30, seed=11))
    split = split_lheo(path)
    assert isinstance(split.data, reader.mmap.mmap)
    split.close()
    assert_same(path)


def test_page_release_does_not_change_what_is_read(tmp_path, monkeypatch):
    monkeypatch.setattr(reader, "MMAP_MIN", 0)
    monkeypatch.setattr(reader._Pages, "STEP", 4096)
    monkeypatch.setattr(reader._Pages, "MARGIN", 4096)
    assert_same(write(tmp_path, generated(count=30, seed=12)))


def test_lines_past_65535_are_the_files(tmp_path):
    """libxml2 keeps an element's line in 16 bits: past 65535 the streaming read guesses, the chunks do not."""
    text = generated(count=420, seed=2)
    assert text.count("\n") > 70_000
    starts = [m.start() for m in re.finditer("<formation ", text)]
    late = next(i for i, s in enumerate(starts) if text.count("\n", 0, s) > 66_000)
    bad = text.index("<debut>", starts[late])
    text = text[:bad] + "<debut>20241345" + text[text.index("</debut>", bad) :]
    path = write(tmp_path, text)

    items = list(read_lheo(path))
    lines = [text.count("\n", 0, text.index(">", s)) + 1 for s in starts]  # where each start tag ends
    assert [r.origin.line for r in records(items)] == lines[:late] + lines[late + 1 :]
    (problem,) = problems(items)
    assert (problem.field.rsplit("/", 1)[-1], problem.origin.line) == ("debut", text.count("\n", 0, bad) + 1)
    streamed = list(stream_lheo(path))
    assert streamed[: late // 2] == items[: late // 2]  # the same while lines fit in 16 bits
    assert [dataclasses.replace(i, origin=s.origin) for i, s in zip(items, streamed)] == streamed


def test_same_bytes_elsewhere_give_the_same_results_moved(tmp_path):
    """What a cache keyed by the prefix and the chunk's bytes relies on: only the lines move."""
    alone = write(tmp_path, document(formation("15_7", debut="0")), name="a.xml")
    later = write(tmp_path, document(formation("15_1"), formation("15_2"), formation("15_7", debut="0")), name="b.xml")
    first, second = split_lheo(alone), split_lheo(later)
    assert first.prefix == second.prefix
    assert first.raw(first.chunks[0]) == second.raw(second.chunks[2])
    shift = second.chunks[2].line - first.chunks[0].line
    assert shift > 0
    moved = [
        dataclasses.replace(i, origin=dataclasses.replace(i.origin, path=str(later), line=i.origin.line + shift))
        for i in read_chunk(first, first.chunks[0])
    ]
    assert moved == read_chunk(second, second.chunks[2])
    assert problems(moved)


def test_prefix_keeps_encoding_and_namespace_not_prolog_comments(tmp_path):
    one = split_lheo(write(tmp_path, document(formation(), prolog="<!-- export du 1er mai -->\n"), name="1.xml"))
    two = split_lheo(write(tmp_path, document(formation(), prolog="<!-- export du 2 mai -->\n"), name="2.xml"))
    latin = split_lheo(write(tmp_path, document(formation(), encoding="iso-8859-1"), "latin-1", name="3.xml"))
    other_ns = split_lheo(write(tmp_path, document(formation(), ns=NS22), name="4.xml"))
    assert one.prefix == two.prefix
    assert NS23.encode() in one.prefix and b"utf-8" in one.prefix
    assert len({one.prefix, latin.prefix, other_ns.prefix}) == 3
    assert one.suffix == b"</offres></lheo>"


def test_chunks_are_the_formations_bytes(tmp_path):
    text = document(formation("15_1"), formation("15_2"), formation("15_3"), between="\n\t \r\n")
    path = write(tmp_path, text)
    split = split_lheo(path)
    data = path.read_bytes()
    assert [data[c.start : c.end] for c in split.chunks] == [formation(n).encode() for n in ("15_1", "15_2", "15_3")]
    assert [c.line for c in split.chunks] == [data.count(b"\n", 0, c.start) + 1 for c in split.chunks]


# --------------------------------------------------------------------------
# Odd and hostile files: not cut, or cut with the same results
# --------------------------------------------------------------------------

PLAIN = formation("15_1")
TWO = (formation("15_1"), formation("15_2"))


def prefixed(text: str) -> str:
    """A formation written ``<l:formation>``."""
    return text.replace("<formation ", "<l:formation ").replace("</formation>", "</l:formation>")


#: name -> (file bytes, whether it is cut)
ODD_FILES = {
    "doctype": (
        ('<?xml version="1.0"?>\n<!DOCTYPE lheo [<!ENTITY x "y">]>\n' + document(PLAIN).split("\n", 1)[1]).encode(),
        False,
    ),
    "truncated inside a formation": (document(*TWO).encode()[:-400], False),
    "truncated after a formation": (document(*TWO).encode()[: -len("\n</offres>\n</lheo>\n")], False),
    "truncated in the closing tags": (document(*TWO).encode()[:-9], False),
    "empty": (b"", False),
    "blank": (b"  \n", False),
    "not lheo": (b'<?xml version="1.0"?>\n<catalogue><offres>' + PLAIN.encode() + b"</offres></catalogue>", False),
    "no offres": (b'<?xml version="1.0"?>\n<lheo>' + PLAIN.encode() + b"</lheo>", False),
    "prefixed namespace": (
        re.sub(r"<(/?)(?=[a-zA-Z])", r"<\1l:", document(*TWO, ns=""))
        .replace("<l:lheo>", f'<l:lheo xmlns:l="{NS23}">')
        .encode(),
        False,
    ),
    "prefixed formations only": (
        document(*(prefixed(f) for f in TWO))
        .replace("<lheo ", f'<lheo xmlns:l="{NS23}" ')
        .encode(),
        False,
    ),
    "one prefixed formation among others": (
        document(PLAIN, prefixed(formation("15_2")))
        .replace("<lheo ", f'<lheo xmlns:l="{NS23}" ')
        .encode(),
        False,
    ),
    "utf-16": (document(*TWO, encoding="utf-16").encode("utf-16"), False),
    "utf-16 declared, utf-8 bytes": (document(*TWO, encoding="utf-16").encode(), False),
    "utf-32": (document(*TWO, encoding="utf-32").encode("utf-32"), False),
    "ebcdic declared": (document(*TWO, encoding="cp037").encode("cp037"), False),
    "unknown encoding": (document(*TWO, encoding="klingon").encode(), False),
    "junk after </lheo>": (document(*TWO).encode() + b"<lheo/>", False),
    "text after </lheo>": (document(*TWO).encode() + b"fin", False),
    "comment after </lheo>": (document(*TWO).encode() + b"<!-- fin -->\n", True),
    "comment hiding <formation": (
        document(PLAIN, "<!-- <formation numero='x'> -->", formation("15_2")).encode(),
        False,
    ),
    "comment between formations": (document(PLAIN, "<!-- entre -->", formation("15_2")).encode(), False),
    "comment with </formation> inside a formation": (
        document(PLAIN.replace("<certifiante>", "<!-- </formation> --><certifiante>"), formation("15_2")).encode(),
        True,
    ),
    "comment with </formation> and <formation inside a formation": (
        document(
            PLAIN.replace("<certifiante>", "<!-- </formation>\n<formation numero='z'> --><certifiante>"),
            formation("15_2"),
        ).encode(),
        False,
    ),
    "cdata with </formation>": (
        document(PLAIN, formation("15_2", contenu="<![CDATA[a </formation> b]]>")).encode(),
        True,
    ),
    "cdata with <formation>": (
        document(PLAIN, formation("15_2", contenu="<![CDATA[</formation> <formation numero='q'>]]>")).encode(),
        False,
    ),
    "pi with </formation>": (
        document(PLAIN.replace("<certifiante>", "<?x </formation> ?><certifiante>")).encode(),
        True,
    ),
    "unclosed comment in the last formation": (
        document(PLAIN, formation("15_2").replace("<certifiante>", "<!-- <certifiante>")).encode(),
        False,
    ),
    "self-closing formation": (document('<formation numero="15_0"/>', PLAIN).encode(), False),
    "nested formation": (
        document(PLAIN.replace("<certifiante>", '<formation numero="15_9"></formation><certifiante>')).encode(),
        False,
    ),
    "element named formation-x": (document(PLAIN, "<formation-x/>").encode(), False),
    "text between formations": (document(PLAIN, formation("15_2"), between="\nvoilà\n").encode(), False),
    "form feed between formations": (document(PLAIN, formation("15_2"), between="\n\f\n").encode(), False),
    "extras after the formations": (
        document(*TWO, tail='<extras info="x"><extra info="y">z</extra></extras>\n').encode(),
        True,
    ),
    "extras after offres": (
        document(*TWO).replace("</offres>\n", '</offres>\n<extras><extra info="y">z</extra></extras>\n').encode(),
        True,
    ),
    "extras holding a formation": (
        document(*TWO, tail=f"<extras><extra>{formation('15_3')}</extra></extras>\n").encode(),
        False,
    ),
    "extras holding a prefixed formation": (
        document(
            *TWO,
            tail=f'<extras xmlns:l="{NS23}"><l:formation numero="15_4"></l:formation></extras>\n',
        ).encode(),
        False,
    ),
    "bom": (b"\xef\xbb\xbf" + document(*TWO).encode(), True),
    "no declaration": (document(*TWO).split("\n", 1)[1].encode(), True),
    "crlf": (document(*TWO).replace("\n", "\r\n").encode(), True),
    "lone cr": (document(*TWO).replace("\n", "\r").encode(), True),
    "start tag over three lines": (
        document(PLAIN.replace('numero="15_1" ', 'numero="15_1"\n   data-x="a > b"\n   '), formation("15_2")).encode(),
        True,
    ),
    "closing tag with blanks": (
        document(PLAIN.replace("</formation>", "</formation\n >"), formation("15_2")).encode(),
        True,
    ),
    "pi and comment in prolog": (
        document(*TWO, prolog="<!-- a -->\n<?xml-stylesheet href='x.xsl'?>\n").encode(),
        True,
    ),
    "bad comment in prolog": (document(*TWO, prolog="<!-- a -- b -->\n").encode(), False),
    "no namespace": (document(*TWO, ns="").encode(), True),
    "undeclared entity": (document(PLAIN, formation("15_2", contenu="a&nbsp;b"), formation("15_3")).encode(), True),
    "mismatched tags": (document(PLAIN, formation("15_2", contenu="<b>a</i>"), formation("15_3")).encode(), True),
    "bad utf-8": (
        document(PLAIN, formation("15_2", contenu="caf\udce9"), formation("15_3")).encode("utf-8", "surrogateescape"),
        True,
    ),
    "control character": (document(PLAIN, formation("15_2", contenu="a\x01b")).encode(), True),
    "formation without any": (document().encode(), False),
}


@pytest.mark.parametrize("name", list(ODD_FILES))
def test_odd_files_are_not_cut_or_read_the_same(tmp_path, name):
    data, cut = ODD_FILES[name]
    path = tmp_path / "odd.xml"
    path.write_bytes(data)
    results = split_lheo(path)
    assert (results is not None) == cut
    if results is not None:
        results.close()
    assert_not_cut_or_same(path)


def test_doctype_is_refused_as_before(tmp_path):
    path = tmp_path / "doctype.xml"
    path.write_bytes(ODD_FILES["doctype"][0])
    (problem,) = read_lheo(path)
    assert (problem.field, problem.origin.line) == ("DOCTYPE", 2)


@pytest.mark.parametrize("name", ["undeclared entity", "mismatched tags", "bad utf-8", "control character"])
def test_malformed_formation_raises_and_the_stream_goes_on_from_it(tmp_path, name):
    path = tmp_path / "broken.xml"
    path.write_bytes(ODD_FILES[name][0])
    streamed = list(stream_lheo(path))
    assert streamed[-1].field == "-" and streamed[-1].origin.line > 0  # the syntax problem
    split = split_lheo(path)
    first = read_chunk(split, split.chunks[0])
    with pytest.raises(ChunkError):
        read_chunk(split, split.chunks[1])
    assert first + list(read_from(split, 1)) == streamed
    assert list(read_lheo(path)) == streamed


def test_missing_file_is_not_cut(tmp_path):
    assert split_lheo(tmp_path / "absent.xml") is None
    assert split_lheo(tmp_path) is None


# --------------------------------------------------------------------------
# Random files
# --------------------------------------------------------------------------

FORMATION_KINDS = {
    "ok": lambda n: formation(n),
    "bad date": lambda n: formation(n, debut="20241332"),
    "unknown date": lambda n: formation(n, debut="00000000"),
    "bad siret": lambda n: formation(n, siret="12345678901235"),
    "no intitule": lambda n: formation(n, intitule=""),
    "html": lambda n: formation(n, contenu="a &lt;br /&gt; <b>b</b>\n<i>c</i>"),
    "comment": lambda n: formation(n, contenu="a<!-- </formation> -->b"),
    "cdata": lambda n: formation(n, contenu="<![CDATA[x </formation> <y>]]>"),
    "pi": lambda n: formation(n, contenu="a<?p </formation> ?>b"),
}
#: Kinds that hide a ``<formation`` from the scan: the file must not be cut.
HIDING_KINDS = {
    "comment hiding": lambda n: formation(n, contenu="<!-- </formation> <formation numero='x'> -->"),
    "cdata hiding": lambda n: formation(n, contenu="<![CDATA[</formation>\n<formation>]]>"),
}
BLANKS = st.lists(st.sampled_from([" ", "\n", "\t", "\r\n"]), max_size=4).map("".join)


@st.composite
def lheo_files(draw) -> tuple[bytes, bool]:
    """A small LHEO file built from pieces, and whether it may be cut."""
    kinds = draw(st.lists(st.sampled_from(sorted(FORMATION_KINDS) + sorted(HIDING_KINDS)), min_size=1, max_size=5))
    pieces = [{**FORMATION_KINDS, **HIDING_KINDS}[kind](f"15_{i}") for i, kind in enumerate(kinds)]
    if draw(st.booleans()):  # a start tag over several lines
        pieces[0] = pieces[0].replace(' datemaj="', '\n    datemaj="')
    encoding = draw(st.sampled_from(["utf-8", "ISO-8859-1", "windows-1252"]))
    text = document(
        *pieces,
        ns=draw(st.sampled_from(["", NS22, NS23])),
        encoding=encoding,
        prolog=draw(st.sampled_from(["", "<!-- export -->\n", "\n\n"])),
        between=draw(BLANKS),
        tail=draw(st.sampled_from(["", "<extras><extra>x</extra></extras>"])),
    )
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    data = text.replace("\n", newline).encode(encoding, errors="xmlcharrefreplace")
    return data, not any(kind in HIDING_KINDS for kind in kinds)


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lheo_files())
def test_random_files_read_alone_as_in_the_stream(tmp_path, case):
    data, cut = case
    path = tmp_path / "random.xml"
    path.write_bytes(data)
    results = assert_not_cut_or_same(path)
    assert (results is not None) == cut
