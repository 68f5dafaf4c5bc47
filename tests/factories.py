"""Build valid formations inline, varying only what a test is about."""

from __future__ import annotations

import copy
from typing import Any, Optional

from catalogue.model import Formation

#: Luhn-valid SIRETs for tests.
SIRET_TOULOUSE = "19311383400389"
SIRET_VEIGNE = "82422814200660"

ADRESSE_TOULOUSE = {
    "lignes": ["5 allées Antonio Machado"],
    "codepostal": "31500",
    "ville": "Toulouse",
    "departement": "31",
    "code_insee_commune": "31555",
    "region": "73",
    "geolocalisation": {"latitude": 43.579523, "longitude": 1.403225},
}

ADRESSE_MONTPELLIER = {
    "lignes": ["12 rue de la Loge"],
    "codepostal": "34000",
    "ville": "Montpellier",
    "departement": "34",
    "geolocalisation": {"latitude": 43.6109, "longitude": 3.8772},
}

ADRESSE_TOURS = {
    "lignes": ["1 place Jean Jaurès"],
    "codepostal": "37000",
    "ville": "Tours",
    "departement": "37",
    "region": "24",
}


def session(debut: Optional[str] = "20260901", fin: Optional[str] = "20270630", numero: str = "S1") -> dict:
    return {"numero": numero, "periode": {"debut": debut, "fin": fin}}


def action(
    numero: str = "15_A1",
    sessions: Optional[list[dict]] = None,
    lieux: Optional[list[dict]] = None,
    **fields: Any,
) -> dict:
    data = {
        "numero": numero,
        "sessions": sessions if sessions is not None else [session()],
        "lieux_de_formation": [{"adresse": a} for a in (lieux if lieux is not None else [ADRESSE_TOULOUSE])],
    }
    data.update(fields)
    return data


def organisme(siret: str = SIRET_TOULOUSE, nom: str = "UT2J FC", adresse: Optional[dict] = None) -> dict:
    return {
        "siret_organisme_formation": siret,
        "nom_organisme": nom,
        "raison_sociale": f"{nom} (raison sociale)",
        "coordonnees_organisme": {"adresse": adresse or ADRESSE_TOULOUSE},
    }


def formation_data(
    numero: str = "15_AF_0000000001",
    intitule: str = "Électricien d'équipement du bâtiment",
    actions: Optional[list[dict]] = None,
    org: Optional[dict] = None,
    datemaj: str = "20261102",
    **fields: Any,
) -> dict:
    data = {
        "numero": numero,
        "datemaj": datemaj,
        "intitule_formation": intitule,
        "objectif_formation": "Obtenir le titre professionnel.",
        "actions": actions if actions is not None else [action()],
        "organisme_formation_responsable": org or organisme(),
    }
    data.update(fields)
    return copy.deepcopy(data)


def make_formation(**kwargs: Any) -> Formation:
    return Formation.model_validate(formation_data(**kwargs))
