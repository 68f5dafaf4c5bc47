"""Faults: a build killed at any moment, a full disk, a read-only BUILD, a corrupted or missing index.

Each time the previous site keeps being served, the error says what happened,
and the next build repairs it. Builds that matter run as real processes
(``python -m catalogue.cli build``), killed with SIGKILL.
"""

from __future__ import annotations

import datetime as dt
import errno
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from catalogue import render
from catalogue.build import BUILDS_DIR, BuildOptions, build
from catalogue.cli import main
from catalogue.generate import generate
from catalogue.server import create_app
from catalogue.settings import Settings

TODAY = dt.date(2026, 11, 29)
ROOT = Path(__file__).resolve().parent.parent
#: Long enough a build (about 7 s here, so still running at 2 s on a machine three times faster).
BIG = 1500


# -- helpers ---------------------------------------------------------------------------


def tree_digest(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def current_target(build_dir: Path) -> str:
    return os.readlink(build_dir / "current")


def published_refs(build_dir: Path) -> set[str]:
    return {p.stem for p in (build_dir / "site" / "formations").glob("*.html")}


def build_in_process(content: Path, build_dir: Path):
    return build(BuildOptions(content=(content,), build_dir=build_dir, today=TODAY), Settings())


def cli_command(content: Path, build_dir: Path) -> list[str]:
    return [sys.executable, "-m", "catalogue.cli", "build", "--content", str(content), "--build", str(build_dir),
            "--today", TODAY.isoformat(), "--quiet"]


def cli_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}


def run_cli(content: Path, build_dir: Path, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(cli_command(content, build_dir), cwd=cwd, env=cli_env(), capture_output=True, text=True,
                          timeout=120)


def group_members(pgid: int) -> list[int]:
    """Live processes of a process group (Linux /proc)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(entry.name))
    return members


def kill_group(pgid: int) -> None:
    """Clean up after a test: the process group the test started itself."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


@pytest.fixture(scope="module")
def contents(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("contents")
    paths = {"small": root / "small.xml", "other": root / "other.xml", "big": root / "big.xml"}
    generate(paths["small"], 20, seed=3)
    generate(paths["other"], 25, seed=4)
    generate(paths["big"], BIG, seed=3)
    return paths


@pytest.fixture
def published(contents, tmp_path) -> Path:
    """A BUILD folder with one good build of the small content published."""
    build_dir = tmp_path / "build"
    report = build_in_process(contents["small"], build_dir)
    assert report.ok and report.published > 0
    return build_dir


# -- a build killed at any moment -----------------------------------------------------


@pytest.mark.parametrize("after", [0.3, 1.0, 2.0])
def test_a_killed_build_leaves_the_previous_site_and_the_next_build_repairs(contents, published, tmp_path, after):
    build_dir = published
    before = tree_digest(build_dir / "site")
    before_target = current_target(build_dir)
    killed = subprocess.Popen(cli_command(contents["big"], build_dir), cwd=tmp_path, env=cli_env(),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        time.sleep(after)
        assert killed.poll() is None, "the big build finished before it could be killed"
        killed.send_signal(signal.SIGKILL)
        killed.wait(timeout=10)

        assert current_target(build_dir) == before_target
        assert tree_digest(build_dir / "site") == before

        # The next build runs at once: the killed build's lock does not outlive it.
        repair = run_cli(contents["other"], build_dir, tmp_path)
        assert repair.returncode == 0, repair.stderr
        assert current_target(build_dir) != before_target
        assert len(published_refs(build_dir)) == 25
        # Only published builds are kept: the new one and the one before; the killed staging folder is gone.
        kept = {p.name for p in (build_dir / BUILDS_DIR).iterdir()}
        assert kept == {Path(before_target).name, Path(current_target(build_dir)).name}
    finally:
        kill_group(killed.pid)


def test_a_killed_build_leaves_no_process_behind(contents, published, tmp_path):
    """Whoosh's writer processes die with the build rather than hold its lock and memory forever."""
    killed = subprocess.Popen(cli_command(contents["big"], published), cwd=tmp_path, env=cli_env(),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        time.sleep(2.0)
        assert killed.poll() is None, "the big build finished before it could be killed"
        killed.send_signal(signal.SIGKILL)
        killed.wait(timeout=10)
        deadline = time.monotonic() + 3
        while group_members(killed.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert group_members(killed.pid) == []
    finally:
        kill_group(killed.pid)


# -- read-only BUILD --------------------------------------------------------------------

#: Run as root (CI), chmod stops nothing: the CLI then runs in a process where creating a
#: folder under BUILD fails with EROFS, as on a read-only mount.
READ_ONLY_CLI = textwrap.dedent(
    """
    import errno, os, sys
    build_dir = os.path.realpath(sys.argv[1])
    real_mkdir = os.mkdir

    def mkdir(path, *args, **kwargs):
        if os.path.realpath(path).startswith(build_dir + os.sep):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), os.fspath(path))
        return real_mkdir(path, *args, **kwargs)

    os.mkdir = mkdir
    from catalogue.cli import main
    main(sys.argv[2:], prog_name="catalogue")
    """
)


def test_a_read_only_build_folder_exits_3_and_keeps_the_site(contents, published, tmp_path):
    build_dir = published
    before = tree_digest(build_dir / "site")
    before_target = current_target(build_dir)
    args = cli_command(contents["other"], build_dir)[3:]  # after "-m catalogue.cli"
    if os.geteuid() == 0:
        command = [sys.executable, "-c", READ_ONLY_CLI, str(build_dir), *args]
    else:
        command = [sys.executable, "-m", "catalogue.cli", *args]
    folders = (build_dir, build_dir / BUILDS_DIR)
    for folder in folders:
        folder.chmod(0o555)
    try:
        result = subprocess.run(command, cwd=tmp_path, env=cli_env(), capture_output=True, text=True, timeout=120)
    finally:
        for folder in folders:
            folder.chmod(0o755)
    assert result.returncode == 3, result.stderr
    assert "Traceback" not in result.stderr
    assert str(build_dir) in result.stderr
    assert any(word in result.stderr for word in ("Permission denied", "Read-only", "lecture seule", "permission"))
    assert "le site précédent reste en place" in result.stderr
    assert current_target(build_dir) == before_target
    assert tree_digest(build_dir / "site") == before
    # Writable again, the next build publishes.
    assert run_cli(contents["other"], build_dir, tmp_path).returncode == 0
    assert len(published_refs(build_dir)) == 25


# -- full disk --------------------------------------------------------------------------


def fill_the_disk_after(monkeypatch, pages: int) -> None:
    """The site sink's writes fail with ENOSPC after ``pages`` pages, as on a full disk.

    Every page goes through ``render._write``, in the build process and in its
    rendering workers (forked after the patch, each counting for itself)."""
    real_write = render._write
    written = [0]

    def write(path, content, *rest):
        written[0] += 1
        if written[0] > pages:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        real_write(path, content, *rest)

    monkeypatch.setattr(render, "_write", write)


def test_a_full_disk_keeps_the_previous_site_and_removes_the_staging_folder(contents, published, monkeypatch):
    build_dir = published
    before = tree_digest(build_dir / "site")
    before_builds = sorted((build_dir / BUILDS_DIR).iterdir())
    fill_the_disk_after(monkeypatch, 10)
    with pytest.raises(OSError) as raised:
        build_in_process(contents["other"], build_dir)
    assert raised.value.errno == errno.ENOSPC
    assert tree_digest(build_dir / "site") == before
    assert sorted((build_dir / BUILDS_DIR).iterdir()) == before_builds
    monkeypatch.undo()
    build_in_process(contents["other"], build_dir)
    assert len(published_refs(build_dir)) == 25


def test_a_full_disk_through_the_cli_exits_3_and_says_so(contents, published, monkeypatch):
    build_dir = published
    before = tree_digest(build_dir / "site")
    fill_the_disk_after(monkeypatch, 10)
    result = CliRunner().invoke(main, ["build", "--content", str(contents["other"]), "--build", str(build_dir),
                                       "--today", TODAY.isoformat(), "--quiet"])
    assert result.exit_code == 3, result.output
    assert "No space left" in result.output or "plus de place" in result.output
    assert "le site précédent reste en place" in result.output
    assert tree_digest(build_dir / "site") == before


# -- corrupted or missing index ---------------------------------------------------------


def _garble_toc(index: Path) -> None:
    for toc in index.glob("_MAIN_*.toc"):
        toc.write_bytes(b"garbage" * 10)


def _truncate_toc(index: Path) -> None:
    for toc in index.glob("_MAIN_*.toc"):
        toc.write_bytes(toc.read_bytes()[:40])


def _truncate_segments(index: Path) -> None:
    for segment in index.glob("*.seg"):
        segment.write_bytes(segment.read_bytes()[:16])


def _garble_store(index: Path) -> None:
    (index / "formations.sqlite").write_bytes(b"not a database" * 100)


def _remove(index: Path) -> None:
    shutil.rmtree(index)


@pytest.mark.parametrize(
    "damage", [_garble_toc, _truncate_toc, _truncate_segments, _garble_store, _remove], ids=lambda f: f.__name__[1:]
)
def test_a_damaged_index_is_503_the_site_is_served_and_the_next_build_repairs(contents, published, damage):
    build_dir = published
    ref = sorted(published_refs(build_dir))[0]
    damage(Path(os.path.realpath(build_dir / "index")))
    client = TestClient(create_app(build_dir), raise_server_exceptions=False)

    # Each answer is a 503 naming the cure, or a right answer from the part left intact: never a 500.
    statuses = []
    requests = [
        ("/api/search", {"q": "formation"}),
        ("/api/search", {"q": ref, "include_archived": "true"}),
        (f"/api/formations/{ref}", {}),
    ]
    for path, params in requests:
        response = client.get(path, params=params)
        statuses.append(response.status_code)
        assert response.status_code in (200, 503), (path, params, response.status_code, response.text[:200])
        assert response.headers["content-type"].startswith("application/json")
        if response.status_code == 503:
            assert "catalogue build" in response.json()["detail"]
        elif path.startswith("/api/formations/"):
            assert response.json()["numero"] == ref
        elif params["q"] == ref:
            assert response.json()["results"][0]["ref"] == ref
    assert 503 in statuses
    home = client.get("/")
    assert home.status_code == 200 and "<html" in home.text
    assert client.get(f"/formations/{ref}.html").status_code == 200

    build_in_process(contents["small"], build_dir)  # the same server, no restart
    found = client.get("/api/search", params={"q": ref, "include_archived": "true"})
    assert found.status_code == 200
    assert found.json()["results"][0]["ref"] == ref
    assert client.get(f"/api/formations/{ref}").json()["numero"] == ref
