"""The writer processes' lean segment writer writes what Whoosh's own writer writes for the same documents."""

import random

from whoosh import index as whoosh_index
from whoosh.writing import SegmentWriter

from catalogue.search.index import LeanCodec, LeanSegmentWriter, document_of, make_schema

WORDS = ["cuisine", "pâtisserie", "électricien", "gestion", "paie", "œuvre", "bâtiment", "2024", "anglais", "l'eau",
         "soudure", "Ζήτα", "ﬁn", "a", "de"]


def rows(count: int) -> list[tuple]:
    rng = random.Random(7)

    def text(n: int) -> str:
        return " ".join(rng.choice(WORDS) + rng.choice(["", "s", "e", "ement"]) for _ in range(n))

    # Up to 400 words in a text: more than one block of postings (128) for the common terms.
    return [
        (f"15_AF_{i:05d}", (text(5), text(rng.randint(0, 2)), text(1), text(rng.randint(0, 400))),
         rng.choice(["11 84", "", "11", "84\t11 84"]), "75 69", rng.choice(["CPF", "CPF OPCO", "", "OPCO CPF OPCO"]),
         i % 32, 20260101 + i,
         i % 7 == 0, f"titre {i}", "org", ("Lyon", "69001") if i % 3 else (None, None), "2026-01-01")
        for i in range(count)
    ]


def segment_files(folder, writer_class, documents) -> dict[str, bytes]:
    ix = whoosh_index.create_in(str(folder), make_schema())
    writer = writer_class(ix, codec=LeanCodec())
    for doc in documents:
        writer.add_document(**doc)
    segment = writer._finalize_segment()
    writer._commit_toc([segment])
    writer._finish()
    files = segment.open_compound_file(ix.storage)
    return {name.replace(segment.segment_id(), "*"): files.open_file(name).read() for name in files.list()}


def test_lean_segment_writer_writes_the_same_files(tmp_path):
    documents = [document_of(row)[0] for row in rows(600)]
    (tmp_path / "whoosh").mkdir()
    (tmp_path / "lean").mkdir()
    ours = segment_files(tmp_path / "lean", LeanSegmentWriter, documents)
    theirs = segment_files(tmp_path / "whoosh", SegmentWriter, documents)
    assert ours.keys() == theirs.keys()
    for name in theirs:
        assert ours[name] == theirs[name], name


def test_lean_segment_writer_takes_joined_terms_and_boosts_as_whoosh_does(tmp_path):
    """Terms joined by spaces, and a boost (Whoosh's own add_document then): the same files too."""
    documents = []
    for i, row in enumerate(rows(150)):
        doc = document_of(row)[0]
        doc["texte"] = " ".join(doc["texte"])
        if i % 10 == 0:
            doc["_intitule_boost"] = 2.0
        documents.append(doc)
    (tmp_path / "whoosh").mkdir()
    (tmp_path / "lean").mkdir()
    assert segment_files(tmp_path / "lean", LeanSegmentWriter, documents) == segment_files(
        tmp_path / "whoosh", SegmentWriter, documents
    )


def test_lean_segment_writer_with_missing_fields_long_texts_and_other_orders(tmp_path):
    """Documents whose fields differ (a None, a field left out, another order) and a text of more terms
    than the writer's table of length bytes: the same files as Whoosh's own writer."""
    documents = []
    for i, row in enumerate(rows(120)):
        doc = document_of(row)[0]
        if i % 5 == 1:
            doc["nom"] = None
        if i % 7 == 2:
            del doc["financeurs"]
        if i % 11 == 3:
            doc = dict(reversed(list(doc.items())))
        if i == 4:
            doc["texte"] = tuple(doc["texte"]) * (5000 // max(1, len(doc["texte"])) + 1)
        documents.append(doc)
    assert len(documents[4]["texte"]) > 4096
    (tmp_path / "whoosh").mkdir()
    (tmp_path / "lean").mkdir()
    assert segment_files(tmp_path / "lean", LeanSegmentWriter, documents) == segment_files(
        tmp_path / "whoosh", SegmentWriter, documents
    )
