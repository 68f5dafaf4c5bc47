"""The command line: options, messages on stderr and exit codes, as the README documents them."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from catalogue.cli import main
from catalogue.lheo_export import write_lheo

from factories import make_formation

SAMPLES = Path(__file__).parent / "data" / "lheo"
PROBLEM_LINE = re.compile(r"^(?P<path>[^:]+):(?P<line>\d+): (?P<numero>\S+): (?P<field>\S+): (?P<message>.+)$")


@pytest.fixture
def runner():
    return CliRunner()


def test_build_writes_the_site_and_summarises(runner, tmp_path):
    result = runner.invoke(main, ["build", "--content", str(SAMPLES), "--build", str(tmp_path / "b"), "--today", "2018-01-01"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "b" / "site" / "formations" / "07_10.html").exists()
    assert "2 formation(s) lue(s), 2 publiée(s)" in result.stderr


def test_build_refuses_bad_input_with_one_line_per_problem(runner, tmp_path):
    bad = tmp_path / "bad.xml"
    bad.write_text((SAMPLES / "occitanie-daeu.xml").read_text().replace("19311383400389", "1931138340038"))
    result = runner.invoke(main, ["build", "--content", str(bad), "--build", str(tmp_path / "b")])
    assert result.exit_code == 1
    lines = [PROBLEM_LINE.match(line) for line in result.stderr.splitlines() if line.startswith(str(bad))]
    assert lines and all(lines)
    assert {m["numero"] for m in lines} == {"15_464888"}
    assert any("SIRET" in m["field"] for m in lines)
    assert not (tmp_path / "b" / "site").exists()


def test_skip_invalid_exits_zero_and_lists_the_rejected(runner, tmp_path):
    content = tmp_path / "content"
    content.mkdir()
    (content / "ok.xml").write_bytes((SAMPLES / "centre-plaquiste.xml").read_bytes())
    (content / "bad.xml").write_text((SAMPLES / "occitanie-daeu.xml").read_text().replace("20190524", "20180101"))
    result = runner.invoke(main, ["build", "--content", str(content), "--build", str(tmp_path / "b"), "--skip-invalid"])
    assert result.exit_code == 0, result.output
    assert "15_464888" in result.stderr and "1 refusée(s)" in result.stderr


def test_quiet_prints_only_errors(runner, tmp_path):
    result = runner.invoke(main, ["build", "--content", str(SAMPLES), "--build", str(tmp_path / "b"), "--quiet"])
    assert result.exit_code == 0 and result.stderr == ""


def test_bad_today_is_a_usage_error(runner):
    result = runner.invoke(main, ["build", "--today", "29/11/2026"])
    assert result.exit_code == 2 and "AAAA-MM-JJ" in result.stderr


def test_check_reports_region_warning_and_exits_zero(runner, tmp_path):
    path = tmp_path / "c.xml"
    write_lheo([make_formation(numero="07_99")], path)
    result = runner.invoke(main, ["check", "--content", str(path)])
    assert result.exit_code == 0, result.output
    assert "Occitanie" in result.stderr and "[avertissement]" in result.stderr
    assert not Path("build").joinpath("site", "formations", "07_99.html").exists()


def test_check_exits_one_on_errors(runner, tmp_path):
    bad = tmp_path / "bad.xml"
    bad.write_text("<lheo><offres><formation numero='15_1'></formation>")
    result = runner.invoke(main, ["check", "--content", str(bad)])
    assert result.exit_code == 1
    assert str(bad) in result.stderr


def test_schema_prints_json_schema(runner):
    result = runner.invoke(main, ["schema"])
    assert result.exit_code == 0
    schema = json.loads(result.stdout)
    assert "formations" in json.dumps(schema) and "validée" in json.dumps(schema, ensure_ascii=False) or "validee" in result.stdout


def test_generate_is_seeded(runner, tmp_path):
    for name in ("a", "b"):
        result = runner.invoke(main, ["generate", "--formations", "5", "--out", str(tmp_path / f"{name}.xml"), "--seed", "7"])
        assert result.exit_code == 0, result.output
    assert (tmp_path / "a.xml").read_bytes() == (tmp_path / "b.xml").read_bytes()


def test_every_command_is_documented_in_the_readme():
    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    for name, command in main.commands.items():
        assert f"catalogue {name}" in readme, f"commande non documentée : {name}"
        for param in command.params:
            for opt in param.opts:
                if opt.startswith("--") and opt not in ("--help",):
                    assert opt in readme, f"option non documentée : catalogue {name} {opt}"


def test_every_setting_is_documented_in_the_readme():
    from catalogue.settings import Settings

    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    for name in Settings.model_fields:
        assert f"`{name}`" in readme, f"réglage non documenté : {name}"


def test_search_finds_by_ref_and_words_with_filters(runner, tmp_path):
    build_dir = tmp_path / "b"
    result = runner.invoke(main, ["build", "--content", str(SAMPLES), "--build", str(build_dir), "--today", "2018-01-01", "-q"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(main, ["search", "07_10", "--build", str(build_dir), "--json"])
    assert result.exit_code == 0, result.output
    hits = json.loads(result.stdout)
    assert hits[0]["ref"] == "07_10" and hits[0]["match"] == "numero"
    assert {"ref", "intitule", "organisme", "ville", "url", "archived"} <= hits[0].keys()
    result = runner.invoke(main, ["search", "plaquiste", "--build", str(build_dir), "--region", "76", "--json"])
    assert json.loads(result.stdout) == []  # the plaquiste formation is in Centre-Val de Loire
    result = runner.invoke(main, ["search", "plaquiste", "--build", str(build_dir), "--region", "24"])
    assert "07_10" in result.stdout
    result = runner.invoke(main, ["search", "x", "--build", str(build_dir), "--limit", "0"])
    assert result.exit_code == 2


def test_search_without_a_build_says_so(runner, tmp_path):
    result = runner.invoke(main, ["search", "plaquiste", "--build", str(tmp_path / "nothing")])
    assert result.exit_code == 3 and "catalogue build" in result.stderr


def test_generate_into_a_missing_folder_is_a_clear_error(runner, tmp_path):
    result = runner.invoke(main, ["generate", "--formations", "1", "--out", str(tmp_path / "no" / "x.xml")])
    assert result.exit_code == 3 and "impossible d'écrire" in result.stderr and "Traceback" not in result.output


def test_refused_formations_are_counted_as_read(runner, tmp_path):
    bad = tmp_path / "bad.xml"
    bad.write_text((SAMPLES / "occitanie-daeu.xml").read_text().replace("20190524", "20180101"))
    result = runner.invoke(main, ["check", "--content", str(bad), "--content", str(SAMPLES / "centre-plaquiste.xml")])
    assert result.exit_code == 1
    assert "2 formation(s) lue(s)" in result.stderr


def test_a_query_that_cannot_be_answered_is_a_usage_error(runner, tmp_path):
    build_dir = tmp_path / "b"
    runner.invoke(main, ["build", "--content", str(SAMPLES), "--build", str(build_dir), "-q"])
    result = runner.invoke(main, ["search", "", "--build", str(build_dir), "--near", "Atlantis"])
    assert result.exit_code == 2 and "Atlantis" in result.stderr


@pytest.mark.parametrize("args, expected", [
    (["build", "--nope"], "Erreur : Option inconnue : '--nope'."),
    (["serch"], "Commande inconnue : 'serch'. (Vouliez-vous dire l'une de : 'search', 'serve' ?)"),
    (["build", "--today"], "L'option '--today' attend une valeur."),
    (["build", "--build", "README.md"], "Dossier 'README.md' est un fichier."),
])
def test_usage_errors_are_in_french(runner, args, expected):
    result = runner.invoke(main, args)
    assert result.exit_code == 2
    assert expected in result.output
    assert "Error" not in result.output and "Usage" not in result.output


def test_help_is_in_french(runner):
    result = runner.invoke(main, ["--help"])
    assert "Utilisation : main [OPTIONS] COMMANDE [ARGUMENTS]..." in result.output
    assert "Commandes:" in result.output and "Affiche cette aide et quitte." in result.output


def test_every_translated_message_is_still_one_of_clicks():
    """A newer Click that words a message anew would leave it in English: this says which."""
    import click

    from catalogue.cli_french import MESSAGES

    sources = "".join(path.read_text() for path in Path(click.__file__).parent.glob("*.py"))
    assert [message for message in MESSAGES if repr(message)[1:-1] not in sources and message not in sources] == []
    for english, french in MESSAGES.items():
        assert sorted(re.findall(r"\{[^}]*\}|%\(\w+\)s", english)) == sorted(re.findall(r"\{[^}]*\}|%\(\w+\)s", french))
