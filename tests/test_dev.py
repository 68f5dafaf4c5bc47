"""`catalogue dev`: debounced rebuilds, the error page while the content is broken, and the live server."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from catalogue import render
from catalogue.dev import (
    ERROR_PAGE,
    Debouncer,
    DevBuilder,
    RebuildTrigger,
    error_page,
    is_page_path,
    snapshot,
)

SUBMISSION = """\
organisme_formation_responsable:
  siret_organisme_formation: "19311383400389"
  nom_organisme: UT2J FC
  raison_sociale: Université Toulouse Jean Jaurès
  coordonnees_organisme:
    adresse: {{lignes: [5 allées Antonio Machado], codepostal: "31500", ville: Toulouse}}
formations:
  - statut: validée
    numero: 15_Y_1
    datemaj: 2026-11-02
    intitule_formation: {intitule}
    certifiante: {certifiante}
    actions: [{{sessions: [{{periode: {{debut: 2027-01-04, fin: 2027-06-30}}}}]}}]
"""
#: The line of `certifiante` in SUBMISSION, which the error messages must name.
CERTIFIANTE_LINE = 12
BAD_CERTIFIANTE = '"<b>peut-être</b>"'


def write_submission(content: Path, intitule: str = "Soudeur", certifiante: str = "oui") -> Path:
    content.mkdir(parents=True, exist_ok=True)
    path = content / "ut2j.yaml"
    path.write_text(SUBMISSION.format(intitule=intitule, certifiante=certifiante), encoding="utf-8")
    return path


def touch_later(path: Path, text: str) -> None:
    """Rewrite ``path`` with a modification time surely different from the previous one."""
    before = path.stat().st_mtime_ns if path.exists() else 0
    path.write_text(text, encoding="utf-8")
    os.utime(path, ns=(before + 1_000_000_000, before + 1_000_000_000))


def fiche(build_dir: Path, ref: str = "15_Y_1") -> str:
    return (build_dir / "site" / "formations" / f"{ref}.html").read_text(encoding="utf-8")


@pytest.fixture
def tree(tmp_path, monkeypatch):
    """A one-formation content tree; the working folder has no catalogue.toml."""
    monkeypatch.chdir(tmp_path)
    content = tmp_path / "content"
    write_submission(content)
    return content, tmp_path / "build"


def make_builder(content: Path, build_dir: Path, lines: list[str]) -> DevBuilder:
    return DevBuilder((content,), build_dir, echo=lines.append)


# --------------------------------------------------------------------------
# Watching and debouncing
# --------------------------------------------------------------------------


def test_a_burst_of_saves_gives_one_rebuild_after_the_quiet_period():
    debouncer = Debouncer(quiet=0.5, max_wait=3.0)
    assert not debouncer.due(0.0)
    for now in (10.0, 10.2, 10.4, 10.8):  # four saves within a second
        debouncer.touch(now)
        assert not debouncer.due(now)
    assert not debouncer.due(11.2)
    assert debouncer.due(11.3)
    debouncer.clear()
    assert not debouncer.due(20.0)


def test_changes_that_never_stop_still_rebuild_after_the_longest_wait():
    debouncer = Debouncer(quiet=0.5, max_wait=3.0)
    now = 0.0
    while not debouncer.due(now):
        debouncer.touch(now)
        now += 0.25
    assert now == pytest.approx(3.0)


def test_snapshot_sees_content_but_not_swap_files_hidden_files_or_the_build(tmp_path):
    content = tmp_path / "content"
    source = write_submission(content)
    (content / ".ut2j.yaml.swp").write_text("x")
    (content / "ut2j.yaml~").write_text("x")
    (content / ".git").mkdir()
    (content / ".git" / "index").write_text("x")
    build_dir = content / "build"  # a build folder inside the content must not retrigger itself
    (build_dir / "site").mkdir(parents=True)
    (build_dir / "site" / "index.html").write_text("x")
    missing = tmp_path / "catalogue.toml"
    assert set(snapshot([content, missing], exclude=[build_dir])) == {str(source)}


def test_trigger_fires_once_for_a_burst_and_for_new_and_removed_files(tree):
    content, _ = tree
    source = content / "ut2j.yaml"
    trigger = RebuildTrigger([content], debouncer=Debouncer(quiet=0.5, max_wait=3.0))
    assert not trigger.poll(0.0)  # nothing changed since the trigger was made
    touch_later(source, source.read_text(encoding="utf-8") + "\n")
    assert not trigger.poll(1.0)
    touch_later(source, source.read_text(encoding="utf-8") + "\n")
    assert not trigger.poll(1.3)
    assert trigger.poll(1.9)
    assert not trigger.poll(5.0)  # that burst is spent
    (content / "autre.yaml").write_text("formations: []\n", encoding="utf-8")
    trigger.poll(6.0)
    assert trigger.poll(7.0)
    (content / "autre.yaml").unlink()
    trigger.poll(8.0)
    assert trigger.poll(9.0)


# --------------------------------------------------------------------------
# Rebuilding
# --------------------------------------------------------------------------


def test_an_edit_triggers_one_rebuild_that_publishes_the_new_page(tree):
    content, build_dir = tree
    lines: list[str] = []
    builder = make_builder(content, build_dir, lines)
    trigger = RebuildTrigger(builder.watched, exclude=[build_dir])
    assert builder.rebuild() is True
    assert "Soudeur" in fiche(build_dir)
    first = os.path.realpath(build_dir / "site")

    touch_later(content / "ut2j.yaml", SUBMISSION.format(intitule="Chaudronnier", certifiante="oui"))
    start = time.monotonic()
    assert not trigger.poll(start)
    assert trigger.poll(start + 1.0)
    assert builder.rebuild() is True
    page = fiche(build_dir)
    assert "Chaudronnier" in page and "Soudeur" not in page
    assert os.path.realpath(build_dir / "site") != first  # a new build, published atomically
    assert (build_dir / "site" / "recherche" / "index.html").is_file()  # the search page and its shards
    assert any(line.startswith("Site reconstruit") for line in lines)


def test_bad_content_shows_an_escaped_error_page_and_fixing_it_brings_the_site_back(tree):
    content, build_dir = tree
    lines: list[str] = []
    builder = make_builder(content, build_dir, lines)
    assert builder.rebuild() is True
    published = os.path.realpath(build_dir / "site")

    source = content / "ut2j.yaml"
    touch_later(source, SUBMISSION.format(intitule="Chaudronnier", certifiante=BAD_CERTIFIANTE))
    assert builder.rebuild() is False
    assert builder.failed
    where = f"{source}:{CERTIFIANTE_LINE}: 15_Y_1: certifiante:"  # the path as given
    assert [p for p in builder.problems if p.startswith(where)]
    assert any(line.startswith(where) for line in lines)  # in the terminal too, one a line
    page = (build_dir / ERROR_PAGE).read_text(encoding="utf-8")
    assert page == builder.error_page
    assert where in page
    assert "&lt;b&gt;peut-être&lt;/b&gt;" in page and "<b>peut-être</b>" not in page
    assert "</head>" in page  # where livereload puts its script, so the page reloads when fixed
    # The previous site is still published, untouched.
    assert os.path.realpath(build_dir / "site") == published
    assert "Soudeur" in fiche(build_dir)

    touch_later(source, SUBMISSION.format(intitule="Chaudronnier", certifiante="oui"))
    assert builder.rebuild() is True
    assert not builder.failed and builder.error_page is None and builder.problems == []
    assert not (build_dir / ERROR_PAGE).exists()
    assert "Chaudronnier" in fiche(build_dir)


def _templates_copy(tmp_path: Path, monkeypatch) -> Path:
    templates = tmp_path / "templates"
    shutil.copytree(render.TEMPLATES_DIR, templates)
    monkeypatch.setattr(render, "TEMPLATES_DIR", templates)
    return templates


def _break_base(templates: Path, line: str) -> int:
    """Insert ``line`` right after ``<body>`` in base.html; its 1-based line number."""
    base = templates / "base.html"
    rows = base.read_text(encoding="utf-8").split("\n")
    at = rows.index("<body>") + 1
    rows.insert(at, line)
    base.write_text("\n".join(rows), encoding="utf-8")
    return at + 1


@pytest.mark.parametrize(
    "broken, error",
    [("{% if %}", "TemplateSyntaxError"), ("{{ no_such_variable.nom }}", "UndefinedError")],
)
def test_a_template_error_names_the_template_line_and_keeps_the_site(tree, tmp_path, monkeypatch, broken, error):
    content, build_dir = tree
    templates = _templates_copy(tmp_path, monkeypatch)
    lines: list[str] = []
    builder = make_builder(content, build_dir, lines)
    assert builder.templates_dir == templates and templates in builder.watched
    assert builder.rebuild() is True

    line = _break_base(templates, broken)
    assert builder.rebuild() is False
    (problem,) = builder.problems
    assert problem.startswith(f"templates/base.html:{line}: ") and error in problem
    assert html_escaped(problem) in builder.error_page
    assert "Soudeur" in fiche(build_dir)

    shutil.copy(Path(render.PROJECT_ROOT) / "templates" / "base.html", templates / "base.html")
    assert builder.rebuild() is True and not builder.failed


def html_escaped(text: str) -> str:
    import html

    return html.escape(text)


def test_the_error_page_escapes_every_problem_and_the_trace():
    page = error_page(['a.yaml:3: 15_X: intitule: <script>alert("x")</script>'], trace="<trace & co>")
    assert "<script>" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert "&lt;trace &amp; co&gt;" in page


@pytest.mark.parametrize(
    "path, page",
    [("", True), ("formations/15_Y_1/", True), ("formations/15_Y_1", True), ("404.html", True),
     ("static/catalogue.css", False), ("recherche/shards/d/0.json", False), ("static/favicon.svg", False)],
)
def test_pages_get_the_error_page_assets_do_not(path, page):
    assert is_page_path(path) is page


# --------------------------------------------------------------------------
# The live server, end to end
# --------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _dev_command(content: Path, build_dir: Path, port: int) -> list[str]:
    """The real command line, as a user runs it."""
    return [sys.executable, "-m", "catalogue.cli", "dev", "--content", str(content), "--build", str(build_dir), "--port", str(port)]


def _get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.headers.get("Content-Type", ""), response.read().decode("utf-8")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Content-Type", ""), exc.read().decode("utf-8")


def _when(url: str, wanted) -> tuple[int, str, str] | None:
    response = _get(url)
    return response if wanted(response) else None


def _wait_for(check, proc: subprocess.Popen, log: Path, timeout: float = 15.0):
    """Poll ``check()`` until it returns something true; fail with the server's output otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"catalogue dev s'est arrêté ({proc.returncode}) :\n{log.read_text()}")
        try:
            result = check()
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            result = None
        if result:
            return result
        time.sleep(0.1)
    pytest.fail(f"rien vu en {timeout} s ; sortie de catalogue dev :\n{log.read_text()}")


def test_the_dev_server_serves_rebuilds_on_edit_and_shows_errors(tree, tmp_path):
    content, build_dir = tree
    source = content / "ut2j.yaml"
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "dev.log"
    with log.open("w") as out:
        proc = subprocess.Popen(_dev_command(content, build_dir, port), cwd=tmp_path, stdout=out, stderr=out)
    try:
        status, kind, home = _wait_for(lambda: _get(base + "/"), proc, log)
        assert status == 200 and kind.startswith("text/html")
        assert "/livereload.js" in home  # livereload's script, injected into every page
        status, _, page = _get(base + "/formations/15_Y_1.html")
        assert status == 200 and "Soudeur" in page

        touch_later(source, SUBMISSION.format(intitule="Chaudronnier", certifiante="oui"))
        status, _, page = _wait_for(lambda: _when(base + "/formations/15_Y_1.html", lambda r: "Chaudronnier" in r[2]),
                                    proc, log)
        assert status == 200 and "Soudeur" not in page

        touch_later(source, SUBMISSION.format(intitule="Chaudronnier", certifiante=BAD_CERTIFIANTE))
        status, _, page = _wait_for(lambda: _when(base + "/formations/15_Y_1.html", lambda r: r[0] == 500), proc, log)
        assert f"ut2j.yaml:{CERTIFIANTE_LINE}: 15_Y_1: certifiante:" in page
        assert "&lt;b&gt;peut-être&lt;/b&gt;" in page and "<b>peut-être</b>" not in page
        assert "/livereload.js" in page  # the error page reloads itself once fixed
        assert _get(base + "/static/catalogue.css")[0] == 200  # assets still come from the previous site

        touch_later(source, SUBMISSION.format(intitule="Tourneur", certifiante="oui"))
        status, _, page = _wait_for(lambda: _when(base + "/formations/15_Y_1.html", lambda r: r[0] == 200), proc, log)
        assert "Tourneur" in page
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, log.read_text()  # SIGTERM stops it cleanly
    output = log.read_text(encoding="utf-8")
    assert f"ut2j.yaml:{CERTIFIANTE_LINE}: 15_Y_1: certifiante:" in output
    assert "Serveur arrêté." in output
