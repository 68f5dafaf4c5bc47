"""The build's phases: what gets published, what is refused, and that nothing half-done is ever served."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from pathlib import Path

import pytest

from catalogue.build import BuildLocked, BuildOptions, build, check, published_build, _lock
from catalogue.lheo_export import write_lheo
from catalogue.problems import InvalidInput
from catalogue.settings import Settings

from factories import action, make_formation, session

TODAY = dt.date(2026, 11, 29)
SAMPLES = Path(__file__).parent / "data" / "lheo"


def write(path: Path, *formations) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_lheo(formations, path)
    return path


def run(content: Path, build_dir: Path, **kwargs):
    options = BuildOptions(content=(content,), build_dir=build_dir, today=TODAY, **kwargs)
    return build(options, Settings(), sinks=["site"])


def tree_digest(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def fiche(build_dir: Path, ref: str) -> str:
    return (build_dir / "site" / "formations" / f"{ref}.html").read_text(encoding="utf-8")


@pytest.fixture
def content(tmp_path):
    root = tmp_path / "content"
    write(
        root / "a.xml",
        make_formation(numero="15_AF_1", intitule="Électricien du bâtiment"),
        make_formation(numero="15_AF_2", intitule="Comptable assistant",
                       actions=[action(sessions=[session("20240101", "20240601")])]),
    )
    return root


def test_real_samples_build_without_error(tmp_path):
    report = run(SAMPLES, tmp_path / "build")
    assert report.errors == []
    assert report.published == 2
    text = fiche(tmp_path / "build", "15_464888")
    assert "Date de mise à jour : 11/09/2018" in text and "Ref : 15_464888" in text
    assert "Ref : 07_10" in fiche(tmp_path / "build", "07_10")


def test_published_and_archived_fiches(content, tmp_path):
    report = run(content, tmp_path / "build")
    assert (report.published, report.archived) == (2, 1)
    assert "Archivée" in fiche(tmp_path / "build", "15_AF_2")
    assert "Archivée" not in fiche(tmp_path / "build", "15_AF_1")
    assert "Date de mise à jour : 02/11/2026" in fiche(tmp_path / "build", "15_AF_1")


def test_invalid_input_publishes_nothing_and_keeps_the_previous_site(content, tmp_path):
    build_dir = tmp_path / "build"
    run(content, build_dir)
    before = tree_digest(build_dir / "site")
    published = published_build(build_dir)
    (content / "b.xml").write_text((SAMPLES / "centre-plaquiste.xml").read_text().replace("20180601", "20181345", 1))
    with pytest.raises(InvalidInput) as excinfo:
        run(content, build_dir)
    (problem,) = excinfo.value.problems
    assert problem.origin.path.endswith("b.xml") and problem.origin.line > 1
    assert problem.numero == "07_10" and "fin" in problem.field
    assert published_build(build_dir) == published
    assert tree_digest(build_dir / "site") == before
    assert len(list((build_dir / ".builds").iterdir())) == 1  # the failed staging folder is gone


def test_skip_invalid_publishes_the_valid_ones(content, tmp_path):
    (content / "b.xml").write_text((SAMPLES / "centre-plaquiste.xml").read_text().replace("20180601", "20181345", 1))
    report = run(content, tmp_path / "build", skip_invalid=True)
    assert report.published == 2 and report.rejected == {"07_10"}
    assert not (tmp_path / "build" / "site" / "formations" / "07_10.html").exists()


def test_same_ref_twice_is_reported_never_overwritten(content, tmp_path):
    write(content / "z.xml", make_formation(numero="15_AF_1", intitule="Autre intitulé"))
    with pytest.raises(InvalidInput) as excinfo:
        run(content, tmp_path / "build")
    (problem,) = excinfo.value.problems
    assert problem.numero == "15_AF_1" and problem.origin.path.endswith("z.xml")
    assert "a.xml" in problem.message
    report = run(content, tmp_path / "build", skip_invalid=True)
    assert "Électricien du bâtiment" in fiche(tmp_path / "build", "15_AF_1")
    assert report.rejected == {"15_AF_1"}


def test_same_input_gives_byte_identical_output(content, tmp_path):
    run(content, tmp_path / "one")
    run(content, tmp_path / "two")
    assert tree_digest(tmp_path / "one" / "site") == tree_digest(tmp_path / "two" / "site")


def test_a_failing_build_leaves_the_previous_site(content, tmp_path, monkeypatch):
    build_dir = tmp_path / "build"
    run(content, build_dir)
    before = tree_digest(build_dir / "site")
    from catalogue import build as build_module

    def boom(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(build_module, "_publish", boom)
    with pytest.raises(OSError):
        run(content, build_dir, full=True)  # the same input would otherwise need no new build
    assert tree_digest(build_dir / "site") == before
    assert len(list((build_dir / ".builds").iterdir())) == 1


def test_a_second_build_on_the_same_folder_is_refused(content, tmp_path):
    build_dir = tmp_path / "build"
    build_dir.mkdir()
    with _lock(build_dir):
        with pytest.raises(BuildLocked, match="un autre build est en cours"):
            run(content, build_dir)


def test_old_builds_are_pruned(content, tmp_path):
    build_dir = tmp_path / "build"
    for _ in range(4):
        run(content, build_dir, full=True)
    assert len(list((build_dir / ".builds").iterdir())) == 2
    assert os.path.islink(build_dir / "site") and (build_dir / "site" / "index.html").exists()


def test_check_writes_nothing_and_reports_warnings(tmp_path):
    root = tmp_path / "content"
    write(root / "a.xml", make_formation(numero="07_99"))  # Centre-Val de Loire Carif, training in Toulouse
    report = check(BuildOptions(content=(root,), build_dir=tmp_path / "build", today=TODAY), Settings())
    assert report.errors == [] and report.read == 1
    (warning,) = report.warnings
    assert "Occitanie (76)" in warning.message and "Centre-Val de Loire (24)" in warning.message
    assert not (tmp_path / "build").exists()


YAML_SUBMISSIONS = """\
organisme_formation_responsable:
  siret_organisme_formation: "19311383400389"
  nom_organisme: UT2J FC
  raison_sociale: Université Toulouse Jean Jaurès
  coordonnees_organisme:
    adresse: {lignes: [5 allées Antonio Machado], codepostal: "31500", ville: Toulouse}
formations:
  - statut: validée
    numero: 15_Y_1
    datemaj: 2026-11-02
    intitule_formation: Soudeur
    actions: [{sessions: [{periode: {debut: 2027-01-04, fin: 2027-06-30}}]}]
  - statut: proposée
    numero: 15_Y_2
    datemaj: 2026-11-02
    intitule_formation: Tourneur
    actions: [{sessions: [{periode: {debut: 2027-01-04, fin: 2027-06-30}}]}]
  - statut: refusée
    motif_refus: Dates dépassées
    numero: 15_Y_3
    datemaj: 2026-11-02
    intitule_formation: Fraiseur
    actions: [{sessions: [{periode: {debut: 2027-01-04, fin: 2027-06-30}}]}]
"""


def test_only_validated_submissions_are_published_and_the_report_lists_the_others(tmp_path):
    import json

    root = tmp_path / "content"
    root.mkdir()
    (root / "ut2j.yaml").write_text(YAML_SUBMISSIONS, encoding="utf-8")
    build_dir = tmp_path / "build"
    report = run(root, build_dir)
    assert report.published == 1
    assert (build_dir / "site" / "formations" / "15_Y_1.html").exists()
    assert not (build_dir / "site" / "formations" / "15_Y_2.html").exists()
    assert not (build_dir / "site" / "formations" / "15_Y_3.html").exists()
    data = json.loads((build_dir / "report.json").read_text(encoding="utf-8"))
    statuts = {s["ref"]: (s["statut"], s["motif_refus"]) for s in data["soumissions_non_publiees"]}
    assert statuts == {"15_Y_2": ("proposee", None), "15_Y_3": ("refusee", "Dates dépassées")}
    html = (build_dir / "report.html").read_text(encoding="utf-8")
    assert "Dates dépassées" in html and "proposée" in html
    assert not list((build_dir / "site").rglob("report.*"))  # outside the public site


def test_a_failed_full_build_stops_the_index_writer_processes(content, tmp_path):
    import multiprocessing

    (content / "b.xml").write_text((SAMPLES / "centre-plaquiste.xml").read_text().replace("20180601", "20181345", 1))
    options = BuildOptions(content=(content,), build_dir=tmp_path / "build", today=TODAY)
    with pytest.raises(InvalidInput):
        build(options, Settings())  # every sink, the Whoosh writer's processes included
    assert multiprocessing.active_children() == []


def test_a_sinks_wait_comes_after_every_finish_and_before_publishing(tmp_path, monkeypatch):
    from catalogue.build import SINKS

    log: list[str] = []

    def sink(name: str, waits: bool):
        class Sink:
            def __init__(self, context):
                self.staging = context.staging

            def add(self, formation, entry):
                pass

            def keep(self, entry):
                pass

            def finish(self, catalog):
                log.append(f"finish {name}")

            if waits:
                def wait(self):
                    assert not (self.staging / ".published").exists()
                    log.append(f"wait {name}")

        return Sink

    monkeypatch.setitem(SINKS, "slow", sink("slow", True))
    monkeypatch.setitem(SINKS, "other", sink("other", False))
    content = tmp_path / "content" / "a.xml"
    content.parent.mkdir()
    write_lheo([make_formation()], content)
    report = build(BuildOptions(content=(content,), build_dir=tmp_path / "build", today=dt.date(2026, 11, 29)),
                   Settings(), sinks=["slow", "other"])
    assert log == ["finish slow", "finish other", "wait slow"]
    assert "wait:slow" in report.timings and "wait:other" not in report.timings


def test_a_sink_that_hands_its_finish_off_finishes_first(tmp_path, monkeypatch):
    # Its process works while the others finish (the static search's worker: build._finish_order).
    from catalogue.build import SINKS

    log: list[str] = []

    def sink(name: str, hands_off: bool):
        class Sink:
            def __init__(self, context):
                self.hands_off = hands_off

            def add(self, formation, entry):
                pass

            def keep(self, entry):
                pass

            def finish(self, catalog):
                log.append(name)

        return Sink

    for name, hands_off in [("first", False), ("handed", True), ("last", False)]:
        monkeypatch.setitem(SINKS, name, sink(name, hands_off))
    content = tmp_path / "content" / "a.xml"
    content.parent.mkdir()
    write_lheo([make_formation()], content)
    build(BuildOptions(content=(content,), build_dir=tmp_path / "build", today=dt.date(2026, 11, 29)),
          Settings(), sinks=["first", "handed", "last"])
    assert log == ["handed", "first", "last"]
