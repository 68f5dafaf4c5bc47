"""The managers' report: ``BUILD/report.json`` and ``BUILD/report.html``, outside the public site.

It lists what the public site does not show: YAML submissions that are not
validated (brouillon, proposée, refusée with the reason), formations refused by
the build and why, and the warnings of the checks. Published formations appear
only as counts: their pages say the rest.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .catalog import Entry
from .problems import Problem
from .settings import Settings

if TYPE_CHECKING:  # pragma: no cover
    from .build import BuildReport

REPORT_FILES = ("report.json", "report.html")
STATUT_LABELS = {"brouillon": "brouillon", "proposee": "proposée", "validee": "validée", "refusee": "refusée"}


def _problem(problem: Problem) -> dict[str, Any]:
    return {
        "fichier": problem.origin.path,
        "ligne": problem.origin.line,
        "numero": problem.numero,
        "champ": problem.field,
        "message": problem.message,
        "gravite": problem.severity.value,
    }


def _submission(entry: Entry) -> dict[str, Any]:
    return {
        "ref": entry.ref,
        "intitule": entry.intitule,
        "statut": entry.statut.value,
        "motif_refus": entry.motif_refus,
        "siret": entry.siret,
        "organisme": entry.organisme,
        "datemaj": entry.datemaj_french,
        "fichier": entry.origin.path,
        "ligne": entry.origin.line,
    }


def report_data(report: "BuildReport", today: dt.date) -> dict[str, Any]:
    """The report as plain data, in a stable order."""
    unpublished = sorted(report.unpublished, key=lambda e: (e.siret, e.ref))
    return {
        "date": today.isoformat(),
        "totaux": {
            "lues": report.read,
            "publiees": report.published,
            "archivees": report.archived,
            "non_validees": len(report.unpublished),
            "refusees_par_le_build": len(report.rejected),
            "erreurs": len(report.errors),
            "avertissements": len(report.warnings),
        },
        "soumissions_non_publiees": [_submission(e) for e in unpublished],
        "erreurs": [_problem(p) for p in report.errors],
        "avertissements": [_problem(p) for p in report.warnings],
    }


def write_report(folder: Path, report: "BuildReport", settings: Settings, today: dt.date) -> None:
    """Write ``report.json`` and ``report.html`` into ``folder`` (the build's staging folder)."""
    from .render import make_environment

    data = report_data(report, today)
    (folder / "report.json").write_text(json.dumps(data, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    by_organisme: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for item in data["soumissions_non_publiees"]:
        by_organisme[(item["siret"], item["organisme"])].append(item)
    html = make_environment(settings).get_template("report.html").render(
        data=data, by_organisme=sorted(by_organisme.items()), statut_labels=STATUT_LABELS
    )
    (folder / "report.html").write_text(html, encoding="utf-8")
