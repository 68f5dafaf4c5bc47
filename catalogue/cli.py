"""The command line: each command parses its options and calls one function of the core.

Exit codes: 0 success; 1 the input has errors (nothing published); 2 bad usage;
3 the build could not run (another build holds the lock, unreadable settings,
a file system error).
"""

from __future__ import annotations

import datetime as dt
import errno
import json
import sys
from pathlib import Path
from typing import Optional

import click

from . import __version__, cli_french
from .problems import InvalidInput, Problem
from .settings import SettingsError, load_settings

cli_french.install()  # before the options below are made: a path option words its kind when it is made

EXIT_INVALID = 1
EXIT_ENVIRONMENT = 3


def _date(ctx: click.Context, param: click.Parameter, value: Optional[str]) -> dt.date:
    if value is None:
        return dt.date.today()
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"date AAAA-MM-JJ attendue, pas {value!r}") from None


def _settings(config: Optional[Path]):
    try:
        return load_settings(config)
    except SettingsError as exc:
        click.echo(f"réglages : {exc}", err=True)
        sys.exit(EXIT_ENVIRONMENT)


content_option = click.option(
    "--content",
    "content",
    multiple=True,
    type=click.Path(path_type=Path),
    help="Fichier ou dossier à lire (*.xml LHEO, *.yaml) ; répétable. Défaut : content/.",
)
today_option = click.option(
    "--today", callback=_date, metavar="AAAA-MM-JJ", help="Jour de référence pour l'archivage. Défaut : aujourd'hui."
)
config_option = click.option(
    "--config",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Fichier de réglages. Défaut : catalogue.toml s'il existe.",
)
build_dir_option = click.option(
    "--build",
    "build_dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("build"),
    show_default=True,
    help="Dossier de sortie (site/ et index/).",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]}, subcommand_metavar="COMMANDE [ARGUMENTS]...")
@click.version_option(__version__, prog_name="catalogue")
def main() -> None:
    """Catalogue public des actions de formation validées par les Carif-Oref."""


def _print_problems(problems: list[Problem]) -> None:
    for problem in problems:
        click.echo(str(problem) if problem.is_error else f"{problem} [avertissement]", err=True)


@main.command()
@content_option
@build_dir_option
@today_option
@click.option("--skip-invalid", is_flag=True, help="Publier les formations valides et lister les refusées.")
@click.option("--quiet", "-q", is_flag=True, help="N'afficher que les erreurs.")
@click.option("--full", is_flag=True, help="Tout reconstruire, sans reprendre le build publié.")
@config_option
def build(content, build_dir, today, skip_invalid, quiet, full, config) -> None:
    """Construire le site statique et les index dans BUILD/.

    Le build reprend ce qui n'a pas changé depuis le build publié (mêmes
    formations, même code, mêmes gabarits et réglages) ; --full refait tout.
    """
    from .build import BuildLocked, BuildOptions, build as run_build

    settings = _settings(config)
    options = BuildOptions(
        content=tuple(content) or (Path("content"),),
        build_dir=build_dir,
        today=today,
        skip_invalid=skip_invalid,
        full=full,
    )
    try:
        with _BuildProgress(options.content, enabled=not quiet) as progress:
            report = run_build(options, settings, progress=progress)
    except InvalidInput as exc:
        _print_problems(exc.problems)
        click.echo(f"{len(exc.problems)} erreur(s) : rien n'a été publié, le site précédent reste en place.", err=True)
        sys.exit(EXIT_INVALID)
    except BuildLocked as exc:
        click.echo(str(exc), err=True)
        sys.exit(EXIT_ENVIRONMENT)
    except OSError as exc:
        click.echo(f"échec du build : {_os_error(exc)} ; le site précédent reste en place.", err=True)
        sys.exit(EXIT_ENVIRONMENT)
    if report.errors:
        _print_problems(report.errors)
    if not quiet:
        _print_problems(report.warnings)
        click.echo(_summary(report), err=True)


_ERRNO_FR = {
    errno.ENOSPC: "plus de place sur le disque",
    errno.EDQUOT: "quota disque dépassé",
    errno.EROFS: "système de fichiers en lecture seule",
    errno.EACCES: "permission refusée",
    errno.EPERM: "opération non permise",
    errno.ENOENT: "fichier ou dossier introuvable",
    errno.EEXIST: "existe déjà",
}


def _os_error(exc: OSError) -> str:
    """An OSError in French, with the file it concerns and the system's own words."""
    what = _ERRNO_FR.get(exc.errno or -1, exc.strerror or str(exc))
    where = f"{exc.filename} : " if exc.filename else ""
    return f"{where}{what} ({exc.strerror or exc})"


class _BuildProgress:
    """click's progress bar over the input's bytes, then one line per later phase (on a terminal only)."""

    def __init__(self, content: tuple[Path, ...], enabled: bool):
        from .incremental import source_bytes

        self.enabled = enabled and sys.stderr.isatty()
        self.bar = None
        if self.enabled:
            self.bar = click.progressbar(
                length=max(source_bytes(content), 1), label="Lecture et rendu", file=sys.stderr, show_eta=True
            )

    def __enter__(self) -> "_BuildProgress":
        if self.bar is not None:
            self.bar.__enter__()
        return self

    def __exit__(self, *exc_info) -> None:
        self._close_bar()

    def _close_bar(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None

    def advance(self, done: int) -> None:
        if self.bar is not None:
            self.bar.update(done)

    def phase(self, name: str) -> None:
        if self.enabled:
            self._close_bar()
            click.echo(f"  {PHASE_LABELS.get(name.split(':')[0], name)} {name.partition(':')[2]}".rstrip() + "…", err=True)


PHASE_LABELS = {"finish": "Pages d'ensemble et index :", "report": "Rapport", "publish": "Publication", "check": "Contrôles"}


def _summary(report) -> str:
    rejected = len(report.rejected)
    timings = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in report.timings.items())
    if report.unchanged:
        reuse = "Rien n'a changé depuis le build publié : il reste en place, rien n'a été écrit."
    elif report.incremental:
        reuse = (
            f"Build incrémental : {report.rendered} formation(s) rendue(s), {report.reused} reprise(s) telles quelles "
            f"du build précédent, {report.removed} retirée(s)."
        )
    else:
        reuse = f"Build complet : {report.rendered} formation(s) rendue(s)."
    return (
        f"{report.read} formation(s) lue(s), {report.published} publiée(s) dont {report.archived} archivée(s), "
        f"{len(report.unpublished)} non validée(s), {rejected} refusée(s), "
        f"{len(report.warnings)} avertissement(s). {reuse} Site : {report.output}. Durées : {timings}."
    )


@main.command()
@content_option
@today_option
@config_option
def check(content, today, config) -> None:
    """Valider les sources et signaler les problèmes, sans rien écrire."""
    from .build import BuildOptions, check as run_check

    settings = _settings(config)
    report = run_check(BuildOptions(content=tuple(content) or (Path("content"),), today=today), settings)
    _print_problems(report.errors + report.warnings)
    click.echo(
        f"{report.read} formation(s) lue(s) : {len(report.errors)} erreur(s), {len(report.warnings)} avertissement(s).",
        err=True,
    )
    if report.errors:
        sys.exit(EXIT_INVALID)


@main.command()
@click.option("--formations", "count", type=click.IntRange(min=1), required=True, help="Nombre de formations.")
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), required=True, help="Fichier LHEO à écrire.")
@click.option("--seed", type=int, default=0, show_default=True, help="Graine du générateur (même graine, même fichier).")
@click.option("--lheo-version", type=click.Choice(["2.2", "2.3"]), default="2.3", show_default=True)
def generate(count, out, seed, lheo_version) -> None:
    """Générer un catalogue LHEO réaliste (démonstration, bancs d'essai)."""
    from .generate import generate as run_generate

    try:
        stats = run_generate(out, count, seed=seed, version=lheo_version)
    except OSError as exc:
        click.echo(f"impossible d'écrire {out} : {_os_error(exc)}", err=True)
        sys.exit(EXIT_ENVIRONMENT)
    size = f", {stats.bytes / 1e6:.1f} Mo" if stats.bytes is not None else ""
    click.echo(
        f"{out} : {stats.formations} formation(s), {stats.actions} action(s), {stats.sessions} session(s), "
        f"{stats.organismes} organisme(s){size} (LHEO {lheo_version}, graine {seed}).",
        err=True,
    )


@main.command()
def schema() -> None:
    """Afficher le JSON Schema des fichiers de soumission YAML."""
    from .sources.yaml import submission_json_schema

    click.echo(json.dumps(submission_json_schema(), indent=2, ensure_ascii=False))


def _flag(name: str, help_text: str):
    return click.option(f"--{name}/--non-{name}", default=None, help=help_text)


@main.command()
@click.argument("query", default="")
@build_dir_option
@click.option("--limit", type=click.IntRange(1, 100), default=10, show_default=True)
@click.option("--offset", type=click.IntRange(min=0), default=0, help="Résultats à sauter (pagination).")
@click.option("--include-archived", is_flag=True, help="Inclure les formations archivées.")
@click.option("--region", help="Code INSEE de la région (76 : Occitanie).")
@click.option("--departement", help="Code du département (31, 2A).")
@_flag("certifiante", "Formations certifiantes seulement (ou non).")
@_flag("cpf", "Formations éligibles au CPF seulement (ou non).")
@_flag("distance", "Formations à distance seulement (ou non).")
@_flag("esp", "Entrées/sorties permanentes seulement (ou non).")
@click.option("--financeur", help="Code financeur LHEO (2 : Conseil régional, 4 : France Travail...).")
@click.option("--debut-apres", "debut_apres", metavar="AAAA-MM-JJ", help="Une session commence ce jour ou après.")
@click.option("--near", help="Ville ou code postal autour duquel chercher.")
@click.option("--rayon-km", "rayon_km", type=float, help="Rayon autour de --near, en km (30 par défaut).")
@click.option("--json", "as_json", is_flag=True, help="Sortie JSON (tableau de résultats).")
def search(query, build_dir, as_json, **filters) -> None:
    """Chercher une formation (mots, Ref, numéro d'action ou de session, SIRET, RNCP)."""
    from pydantic import ValidationError

    from .search.index import IndexMissing
    from .search.query import SearchError, SearchParams, format_results_text, french_message, search as run_search

    given = {name: value for name, value in filters.items() if value is not None}
    try:
        params = SearchParams(q=query, **given)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = f"--{str(error['loc'][0]).replace('_', '-')}" if error["loc"] and error["loc"][0] != "q" else "QUERY"
        raise click.BadParameter(french_message(error), param_hint=where) from None
    try:
        response = run_search(build_dir, params)
    except IndexMissing as exc:
        click.echo(str(exc), err=True)
        sys.exit(EXIT_ENVIRONMENT)
    except SearchError as exc:  # a query that cannot be answered as asked: unknown town, too many words
        raise click.UsageError(str(exc)) from None
    if as_json:
        click.echo(json.dumps([r.model_dump(mode="json") for r in response.results], indent=2, ensure_ascii=False))
    else:
        click.echo(format_results_text(response))


@main.command()
@build_dir_option
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@click.option("--workers", type=click.IntRange(1, 64), default=None,
              help="Processus serveurs (défaut : un par cœur, 8 au plus).")
@click.option("--search-wait-ms", type=click.IntRange(1, 60_000), default=None,
              help="Attente maximale d'une recherche avant de commencer ; au-delà, réponse 429 "
                   "avec Retry-After (défaut : 30).")
def serve(build_dir, host, port, workers, search_wait_ms) -> None:
    """Servir BUILD/site et l'API JSON (/api/search, /api/formations/{ref})."""
    from .server import run

    run(build_dir, host=host, port=port, workers=workers, search_wait_ms=search_wait_ms)


@main.command()
@content_option
@build_dir_option
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@config_option
def dev(content, build_dir, host, port, config) -> None:
    """Construire, servir BUILD/site et reconstruire à chaque modification (rechargement automatique)."""
    from .build import BuildLocked
    from .dev import serve_dev

    try:
        serve_dev(tuple(content) or (Path("content"),), build_dir, port=port, host=host, config=config)
    except BuildLocked as exc:
        click.echo(str(exc), err=True)
        sys.exit(EXIT_ENVIRONMENT)
    except OSError as exc:  # build errors are shown in the page; this is the port
        click.echo(f"impossible de servir sur {host}:{port} : {exc}", err=True)
        sys.exit(EXIT_ENVIRONMENT)


if __name__ == "__main__":  # pragma: no cover
    main()
