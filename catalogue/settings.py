"""The site's settings: one declared model, read from ``catalogue.toml`` when present.

Every option carries its documentation; ``tests/test_docs.py`` fails when one is
missing from the README.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError

#: The project's checkout: templates and the demo content live beside the package.
PROJECT_ROOT = Path(__file__).resolve().parent.parent
SETTINGS_FILE = "catalogue.toml"


class CarifOref(BaseModel):
    """A Carif-Oref of the network, named by the prefix of the numeros it produces."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    nom: str = Field(description="Nom du Carif-Oref, tel qu'affiché.")
    region: str = Field(description="Code INSEE de la région couverte (code actuel, depuis 2016).")


DEFAULT_CARIF_OREF = {
    "01": CarifOref(nom="Carif-Oref Grand Est", region="44"),
    "04": CarifOref(nom="Carif-Oref Normandie", region="28"),
    "07": CarifOref(nom="Gip Alfa Centre-Val de Loire", region="24"),
    "14": CarifOref(nom="Défi métiers (Île-de-France)", region="11"),
    "15": CarifOref(nom="Carif-Oref Occitanie", region="76"),
    "24": CarifOref(nom="Carif-Oref Provence-Alpes-Côte d'Azur", region="93"),
}


class Settings(BaseModel):
    """What a deployment of the catalogue may change, with the defaults of the demo."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    site_name: str = Field(
        default="Catalogue des formations",
        description="Nom du site, affiché dans l'en-tête et le titre des pages.",
    )
    site_url: str = Field(
        default="http://localhost:8000",
        pattern=r"^https?://[^\s/]+(/[^\s]*)?$",
        description="Adresse publique du site (sans « / » final), pour les URL canoniques et le sitemap.",
    )
    contact_email: str = Field(
        default="catalogue@exemple.invalid",
        description="Adresse des gestionnaires de l'offre, à qui écrire quand une fiche est fausse.",
    )
    carif_oref: dict[str, CarifOref] = Field(
        default_factory=lambda: dict(DEFAULT_CARIF_OREF),
        description="Carif-Oref du réseau, par préfixe de numéro (« 15 » pour 15_AF_0000910001). "
        "Une section [carif_oref.NN] du fichier complète ou remplace la table par défaut.",
    )

    def carif_of(self, numero: str) -> Optional[tuple[str, CarifOref]]:
        """The Carif-Oref that produced a numero, from its prefix, or ``None`` when unknown."""
        prefix = numero.split("_", 1)[0]
        carif = self.carif_oref.get(prefix)
        return (prefix, carif) if carif else None


class SettingsError(Exception):
    pass


def load_settings(path: Optional[Path] = None) -> Settings:
    """Read ``catalogue.toml`` (or ``path``); defaults when there is none."""
    if path is None:
        path = Path(SETTINGS_FILE)
        if not path.exists():
            return Settings()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise SettingsError(f"{path}: {exc}") from exc
    carifs = dict(DEFAULT_CARIF_OREF)
    carifs.update(data.pop("carif_oref", {}) or {})
    try:
        return Settings(carif_oref=carifs, **data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise SettingsError(f"{path}: {field}: {first['msg']}") from exc
