"""A seeded generator of realistic LHEO catalogues, for the demo, the tests and the benchmarks.

``generate(out, formations=N, seed=S)`` writes N formations as LHEO (2.3 by
default): same arguments, same bytes. The formations look like a Carif-Oref
export: French vocational titles (titres professionnels, CAP, BTS, DE,
certifications of the Répertoire spécifique, remises à niveau, langues...),
objectives and contents of real length, some with ``<br />`` line breaks,
organismes with Luhn-valid SIRETs in real towns, 1 to 4 actions of 1 to 3
sessions each, dated from a year before ``reference`` to two years after it.

Every formation is validated by the model (``Formation(...)``), and its numero
carries the prefix of the Carif-Oref of the région where it takes place.

Memory stays flat: formations are generated organisme by organisme and streamed
through :func:`catalogue.lheo_export.write_lheo`; only the current organisme's
titles are remembered (to avoid accidental duplicates).
"""

from __future__ import annotations

import datetime as dt
import itertools
import random
import zlib
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import BinaryIO, Iterator, Optional, Union

from .catalog import is_archived
from .lheo_export import write_lheo
from .model import (
    Adresse,
    Coordonnees,
    Formation,
    OrganismeFormationResponsable,
    luhn_ok,
)
from .settings import DEFAULT_CARIF_OREF

DEFAULT_REFERENCE = dt.date(2026, 9, 1)


@dataclass
class GenerateStats:
    """What a generation produced; shares are relative to the ``reference`` date."""

    formations: int = 0
    actions: int = 0
    sessions: int = 0
    organismes: int = 0
    archived: int = 0
    entrees_sorties_permanentes: int = 0
    eligible_cpf: int = 0
    certifiante: int = 0
    a_distance: int = 0
    duplicates: int = 0
    #: Size of the written file, when it can be known (a path, or a seekable stream).
    bytes: Optional[int] = None

    def count(self, formation: Formation, reference: dt.date) -> None:
        self.formations += 1
        self.actions += len(formation.actions)
        sessions = formation.sessions
        self.sessions += len(sessions)
        self.archived += is_archived(formation, reference)
        self.entrees_sorties_permanentes += formation.entrees_sorties_permanentes
        self.eligible_cpf += formation.eligible_cpf
        self.certifiante += formation.certifiante
        self.a_distance += formation.a_distance


def generate(
    out: Union[Path, BinaryIO],
    formations: int,
    seed: int = 0,
    version: str = "2.3",
    reference: dt.date = DEFAULT_REFERENCE,
) -> GenerateStats:
    """Write ``formations`` generated formations to ``out`` as LHEO ``version``; same arguments, same bytes."""
    stats = GenerateStats()
    generator = Generator(seed, reference)

    def counted() -> Iterator[Formation]:
        for formation in generator.formations(formations):
            stats.count(formation, reference)
            yield formation

    start = None if isinstance(out, (str, Path)) else _tell(out)
    write_lheo(counted(), out, version)
    if isinstance(out, (str, Path)):
        stats.bytes = Path(out).stat().st_size
    elif start is not None:
        end = _tell(out)
        stats.bytes = end - start if end is not None else None
    stats.organismes = generator.organismes
    stats.duplicates = generator.duplicates
    return stats


def generate_formations(
    formations: int, seed: int = 0, reference: dt.date = DEFAULT_REFERENCE
) -> Iterator[Formation]:
    """The formations :func:`generate` writes, as models (for tests and benchmarks)."""
    return Generator(seed, reference).formations(formations)


def _tell(stream: BinaryIO) -> Optional[int]:
    try:
        return stream.tell()
    except (AttributeError, OSError, ValueError):
        return None


# --------------------------------------------------------------------------
# Reference tables: towns, régions, names
# --------------------------------------------------------------------------

#: (INSEE code, name, département, région, population in thousands, latitude, longitude, postal codes)
#: Codes checked against Etalab's tables (``data/geo/communes.csv``); coordinates approximate.
TOWNS = (
    ("75056", "Paris", "75", "11", 2104, 48.8566, 2.3522,
     "75001 75002 75003 75004 75005 75006 75007 75008 75009 75010 "
     "75011 75012 75013 75014 75015 75016 75116 75017 75018 75019 75020"),
    ("92012", "Boulogne-Billancourt", "92", "11", 119, 48.8352, 2.241, "92100"),
    ("93066", "Saint-Denis", "93", "11", 149, 48.9362, 2.3574, "93200 93210 93380"),
    ("95018", "Argenteuil", "95", "11", 106, 48.9472, 2.2467, "95100"),
    ("93048", "Montreuil", "93", "11", 112, 48.8638, 2.4485, "93100"),
    ("92050", "Nanterre", "92", "11", 98, 48.8924, 2.2071, "92000"),
    ("94028", "Créteil", "94", "11", 93, 48.7904, 2.4556, "94000"),
    ("78646", "Versailles", "78", "11", 84, 48.8049, 2.1204, "78000"),
    ("94081", "Vitry-sur-Seine", "94", "11", 96, 48.7875, 2.3928, "94400"),
    ("93005", "Aulnay-sous-Bois", "93", "11", 87, 48.9386, 2.4973, "93600"),
    ("95127", "Cergy", "95", "11", 70, 49.0364, 2.0761, "95000 95800"),
    ("91228", "Évry-Courcouronnes", "91", "11", 67, 48.629, 2.441, "91000 91080"),
    ("77284", "Meaux", "77", "11", 56, 48.9601, 2.8788, "77100"),
    ("77288", "Melun", "77", "11", 41, 48.5421, 2.6554, "77000"),
    ("91377", "Massy", "91", "11", 54, 48.7309, 2.2713, "91300"),
    ("78361", "Mantes-la-Jolie", "78", "11", 45, 48.9908, 1.7172, "78200"),
    ("93051", "Noisy-le-Grand", "93", "11", 70, 48.8486, 2.5526, "93160"),
    ("94041", "Ivry-sur-Seine", "94", "11", 64, 48.8157, 2.3849, "94200"),
    ("77108", "Chelles", "77", "11", 55, 48.8811, 2.59, "77500"),
    ("95500", "Pontoise", "95", "11", 32, 49.0516, 2.1008, "95000 95300"),
    ("31555", "Toulouse", "31", "76", 504, 43.6047, 1.4442, "31000 31100 31200 31300 31400 31500"),
    ("34172", "Montpellier", "34", "76", 302, 43.6108, 3.8767, "34000 34070 34080 34090"),
    ("30189", "Nîmes", "30", "76", 149, 43.8367, 4.3601, "30000 30900"),
    ("66136", "Perpignan", "66", "76", 120, 42.6887, 2.8948, "66000 66100"),
    ("34032", "Béziers", "34", "76", 80, 43.3442, 3.2158, "34500"),
    ("11262", "Narbonne", "11", "76", 56, 43.1839, 3.0042, "11100"),
    ("11069", "Carcassonne", "11", "76", 46, 43.213, 2.3491, "11000"),
    ("81004", "Albi", "81", "76", 49, 43.9289, 2.1464, "81000"),
    ("65440", "Tarbes", "65", "76", 42, 43.2328, 0.0781, "65000"),
    ("82121", "Montauban", "82", "76", 62, 44.0176, 1.355, "82000"),
    ("12202", "Rodez", "12", "76", 25, 44.3506, 2.575, "12000"),
    ("81065", "Castres", "81", "76", 42, 43.606, 2.24, "81100"),
    ("30007", "Alès", "30", "76", 43, 44.125, 4.081, "30100"),
    ("34301", "Sète", "34", "76", 44, 43.4028, 3.6928, "34200"),
    ("32013", "Auch", "32", "76", 22, 43.6465, 0.5855, "32000"),
    ("46042", "Cahors", "46", "76", 20, 44.4475, 1.4419, "46000"),
    ("09122", "Foix", "09", "76", 10, 42.9653, 1.6069, "09000"),
    ("48095", "Mende", "48", "76", 12, 44.5181, 3.5006, "48000"),
    ("31149", "Colomiers", "31", "76", 40, 43.6112, 1.335, "31770"),
    ("31069", "Blagnac", "31", "76", 25, 43.637, 1.39, "31700"),
    ("34145", "Lunel", "34", "76", 27, 43.6753, 4.136, "34400"),
    ("12145", "Millau", "12", "76", 22, 44.0986, 3.0783, "12100"),
    ("46102", "Figeac", "46", "76", 10, 44.6086, 2.0317, "46100"),
    ("13055", "Marseille", "13", "93", 873, 43.2965, 5.3698,
     "13001 13002 13003 13004 13005 13006 13007 13008 "
     "13009 13010 13011 13012 13013 13014 13015 13016"),
    ("06088", "Nice", "06", "93", 348, 43.7102, 7.262, "06000 06100 06200 06300"),
    ("83137", "Toulon", "83", "93", 180, 43.1242, 5.928, "83000 83100 83200"),
    ("13001", "Aix-en-Provence", "13", "93", 147, 43.5297, 5.4474, "13080 13090 13100 13290 13540"),
    ("84007", "Avignon", "84", "93", 91, 43.9493, 4.8055, "84000 84140"),
    ("06004", "Antibes", "06", "93", 75, 43.5808, 7.1251, "06160 06600"),
    ("06029", "Cannes", "06", "93", 74, 43.5528, 7.0174, "06150 06400"),
    ("83126", "La Seyne-sur-Mer", "83", "93", 62, 43.1007, 5.8788, "83500"),
    ("83069", "Hyères", "83", "93", 55, 43.1204, 6.1286, "83400"),
    ("83061", "Fréjus", "83", "93", 57, 43.4332, 6.737, "83370 83600"),
    ("13004", "Arles", "13", "93", 51, 43.6766, 4.6278, "13104 13123 13129 13200 13280"),
    ("05061", "Gap", "05", "93", 41, 44.5594, 6.0786, "05000"),
    ("04070", "Digne-les-Bains", "04", "93", 16, 44.0925, 6.2356, "04000"),
    ("13056", "Martigues", "13", "93", 49, 43.4053, 5.0476, "13117 13500"),
    ("13005", "Aubagne", "13", "93", 48, 43.2927, 5.5708, "13400"),
    ("13103", "Salon-de-Provence", "13", "93", 46, 43.6403, 5.097, "13300"),
    ("13047", "Istres", "13", "93", 44, 43.515, 4.9895, "13118 13800"),
    ("83050", "Draguignan", "83", "93", 40, 43.5366, 6.4646, "83300"),
    ("06069", "Grasse", "06", "93", 50, 43.6589, 6.9237, "06130 06520"),
    ("04112", "Manosque", "04", "93", 22, 43.8297, 5.7864, "04100"),
    ("84031", "Carpentras", "84", "93", 29, 44.0556, 5.0481, "84200"),
    ("84087", "Orange", "84", "93", 28, 44.1381, 4.8075, "84100"),
    ("84035", "Cavaillon", "84", "93", 26, 43.8372, 5.0381, "84300"),
    ("05023", "Briançon", "05", "93", 11, 44.8986, 6.6436, "05100"),
    ("67482", "Strasbourg", "67", "44", 291, 48.5734, 7.7521, "67000 67100 67200"),
    ("51454", "Reims", "51", "44", 180, 49.2583, 4.0317, "51100"),
    ("57463", "Metz", "57", "44", 121, 49.1193, 6.1757, "57000 57050 57070"),
    ("68224", "Mulhouse", "68", "44", 106, 47.7508, 7.3359, "68100 68200"),
    ("54395", "Nancy", "54", "44", 104, 48.6921, 6.1844, "54000 54100"),
    ("68066", "Colmar", "68", "44", 67, 48.0794, 7.3585, "68000"),
    ("10387", "Troyes", "10", "44", 62, 48.2973, 4.0744, "10000"),
    ("08105", "Charleville-Mézières", "08", "44", 45, 49.7624, 4.7262, "08000"),
    ("51108", "Châlons-en-Champagne", "51", "44", 44, 48.9566, 4.3631, "51000"),
    ("88160", "Épinal", "88", "44", 32, 48.1724, 6.4496, "88000"),
    ("57672", "Thionville", "57", "44", 42, 49.3579, 6.1683, "57100"),
    ("67180", "Haguenau", "67", "44", 35, 48.8156, 7.7906, "67500"),
    ("52448", "Saint-Dizier", "52", "44", 23, 48.6383, 4.9497, "52100"),
    ("52121", "Chaumont", "52", "44", 22, 48.1113, 5.1392, "52000"),
    ("55029", "Bar-le-Duc", "55", "44", 15, 48.7727, 5.16, "55000"),
    ("55545", "Verdun", "55", "44", 16, 49.1598, 5.3844, "55100"),
    ("57227", "Forbach", "57", "44", 21, 49.188, 6.896, "57600"),
    ("57631", "Sarreguemines", "57", "44", 21, 49.11, 7.0686, "57200"),
    ("88413", "Saint-Dié-des-Vosges", "88", "44", 19, 48.2846, 6.9492, "88100"),
    ("51230", "Épernay", "51", "44", 22, 49.0403, 3.959, "51200"),
    ("54329", "Lunéville", "54", "44", 18, 48.5894, 6.4964, "54300"),
    ("67462", "Sélestat", "67", "44", 19, 48.2594, 7.4542, "67600"),
    ("76540", "Rouen", "76", "28", 114, 49.4432, 1.0999, "76000 76100"),
    ("76351", "Le Havre", "76", "28", 166, 49.4944, 0.1079, "76600 76610 76620"),
    ("14118", "Caen", "14", "28", 108, 49.1829, -0.3707, "14000"),
    ("50129", "Cherbourg-en-Cotentin", "50", "28", 78, 49.6337, -1.6222, "50100 50110 50120 50130 50460 50470"),
    ("27229", "Évreux", "27", "28", 47, 49.027, 1.1508, "27000"),
    ("76217", "Dieppe", "76", "28", 28, 49.9229, 1.0775, "76200 76370"),
    ("50502", "Saint-Lô", "50", "28", 19, 49.1157, -1.0906, "50000"),
    ("61001", "Alençon", "61", "28", 26, 48.4329, 0.0913, "61000"),
    ("14366", "Lisieux", "14", "28", 20, 49.1466, 0.2264, "14100"),
    ("27681", "Vernon", "27", "28", 24, 49.0929, 1.4847, "27200"),
    ("76259", "Fécamp", "76", "28", 18, 49.7578, 0.3747, "76400"),
    ("76231", "Elbeuf", "76", "28", 17, 49.2866, 1.0078, "76500"),
    ("61006", "Argentan", "61", "28", 13, 48.7445, -0.0203, "61200"),
    ("61169", "Flers", "61", "28", 15, 48.75, -0.5667, "61100"),
    ("14047", "Bayeux", "14", "28", 13, 49.2764, -0.7024, "14400"),
    ("50218", "Granville", "50", "28", 13, 48.8378, -1.5975, "50400"),
    ("27375", "Louviers", "27", "28", 18, 49.2153, 1.1656, "27400"),
    ("45234", "Orléans", "45", "24", 116, 47.903, 1.9093, "45000 45100"),
    ("37261", "Tours", "37", "24", 136, 47.3941, 0.6848, "37000 37100 37200"),
    ("18033", "Bourges", "18", "24", 64, 47.081, 2.3988, "18000"),
    ("41018", "Blois", "41", "24", 46, 47.5861, 1.3359, "41000"),
    ("36044", "Châteauroux", "36", "24", 43, 46.8103, 1.6913, "36000"),
    ("28085", "Chartres", "28", "24", 38, 48.4439, 1.489, "28000"),
    ("28134", "Dreux", "28", "24", 30, 48.7368, 1.366, "28100"),
    ("18279", "Vierzon", "18", "24", 26, 47.2219, 2.0686, "18100"),
    ("37122", "Joué-lès-Tours", "37", "24", 38, 47.3522, 0.6633, "37300"),
    ("45232", "Olivet", "45", "24", 22, 47.8642, 1.9013, "45160"),
    ("45208", "Montargis", "45", "24", 14, 47.9975, 2.733, "45200"),
    ("41269", "Vendôme", "41", "24", 15, 47.7929, 1.0656, "41100"),
    ("37003", "Amboise", "37", "24", 13, 47.4123, 0.9826, "37400"),
    ("41194", "Romorantin-Lanthenay", "41", "24", 17, 47.3597, 1.7411, "41200"),
    ("36088", "Issoudun", "36", "24", 11, 46.9486, 1.9933, "36100"),
    ("37266", "Veigné", "37", "24", 6, 47.286, 0.7377, "37250"),
    ("37072", "Chinon", "37", "24", 8, 47.1671, 0.2425, "37500"),
    ("45155", "Gien", "45", "24", 14, 47.6883, 2.6306, "45500"),
)


@dataclass(frozen=True)
class Town:
    code_insee: str
    nom: str
    departement: str
    region: str
    population: int
    latitude: float
    longitude: float
    codes_postaux: tuple[str, ...]


#: Carif-Oref prefix by current région code (the demo's network, see settings).
CARIF_OF_REGION = {carif.region: prefix for prefix, carif in DEFAULT_CARIF_OREF.items()}

#: Share of the offer by région (roughly by population).
REGION_WEIGHTS = {"11": 30, "76": 18, "93": 16, "44": 14, "28": 10, "24": 9}

#: How each Carif-Oref writes its numeros: formation, action (sessions add ``-N``).
NUMERO_FORMATS = {
    "01": ("01_AF_{:08d}", "01_SE_{:08d}"),
    "04": ("04_{:07d}", "04_A{:07d}"),
    "07": ("07_{:d}", "07_{:d}"),
    "14": ("14_AF_{:010d}", "14_SE_{:010d}"),
    "15": ("15_AF_{:010d}", "15_SE_{:010d}"),
    "24": ("24_{:07d}", "24_S{:07d}"),
}

PRENOMS = (
    "Camille", "Léa", "Manon", "Chloé", "Inès", "Sarah", "Clémence", "Hélène", "Anaïs", "Maëlle",
    "Zoé", "Élodie", "Nathalie", "Sophie", "Isabelle", "Céline", "Sandrine", "Valérie", "Aurélie", "Amélie",
    "Thomas", "Nicolas", "Julien", "Maxime", "Hugo", "Lucas", "Jérôme", "François", "Loïc", "Noé",
    "Stéphane", "Frédéric", "Sébastien", "Cédric", "Karim", "Mehdi", "Yannick", "Grégory", "Benoît", "Rémi",
)
NOMS = (
    "Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand", "Leroy", "Moreau",
    "Simon", "Laurent", "Lefèvre", "Michel", "Garcia", "David", "Bertrand", "Roux", "Vincent", "Fournier",
    "Morel", "Girard", "André", "Mercier", "Dupont", "Lambert", "Bonnet", "Martinez", "Legrand", "Garnier",
    "Faure", "Rousseau", "Blanc", "Guérin", "Muller", "Henry", "Perrin", "Morin", "Mathieu", "Clément",
    "Gauthier", "Dumont", "Lopez", "Fontaine", "Chevalier", "Robin", "Masson", "Nguyen", "Boyer", "Lemaire",
    "Duval", "Joly", "Noël", "Meyer", "Meunier", "Pérez", "Marchand", "Dufour", "Barbier", "Brunet",
    "Schmitt", "Leroux", "Colin", "Renard", "Arnaud", "Caron", "Aubert", "Giraud", "Leclerc", "Vidal",
    "Bourgeois", "Lemoine", "Picard", "Fabre", "Lacroix", "Benoît", "Ménard", "Prévost", "Rémy", "Le Gall",
)
RUES = (
    "rue Victor Hugo", "rue Jean Jaurès", "avenue de la République", "boulevard Gambetta", "rue Pasteur",
    "place de la Mairie", "rue de l'Industrie", "allée des Tilleuls", "rue du Général Leclerc",
    "avenue Jean Moulin", "rue Émile Zola", "chemin des Écoliers", "rue de la Gare", "rue des Artisans",
    "boulevard de la Liberté", "rue du Maréchal Foch", "avenue des Frères Lumière", "rue Voltaire",
    "rue de la Paix", "quai de la Loire", "rue des Écoles", "avenue Pierre Mendès France", "rue Denis Papin",
    "rue du Moulin", "impasse des Acacias", "rue Jules Ferry", "avenue du 8 Mai 1945", "rue Ampère",
    "rue Lavoisier", "rue de Verdun", "cours Saint-Michel", "rue Marcel Pagnol", "avenue de l'Europe",
)
COMPLEMENTS = (
    "Bâtiment B", "2e étage", "Zone d'activités des Érables", "Parc d'activités du Moulin", "Hall A",
    "Espace Formation", "Entrée par le parking", "Pôle tertiaire", "ZI Nord", "Campus des métiers",
)


# --------------------------------------------------------------------------
# Domains: titles, codes and the words their texts are made of
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Titre:
    intitule: str
    #: Key of :data:`KINDS`: what the formation leads to.
    kind: str
    #: The job's ROME code; ``None`` for courses that aim at no particular job.
    rome: Optional[str]
    #: The job, for the objectives ("exercer le métier de ..."); ``None`` when there is none.
    metier: Optional[str] = None
    #: ``code-niveau-sortie`` (2.3 nomenclature: 13 = niveau 3 ... 16 = niveau 6).
    niveau: Optional[int] = None


@dataclass(frozen=True)
class Domaine:
    nom: str
    poids: int
    titres: tuple[Titre, ...]
    formacodes: tuple[str, ...]
    nsf: tuple[str, ...]
    competences: tuple[str, ...]
    modules: tuple[str, ...]
    prerequis: tuple[str, ...]
    #: Hours of a certifying course (min, max); short courses take 7 to 140 hours.
    heures: tuple[int, int]
    #: Price per hour, in euros (min, max).
    taux: tuple[float, float]


@dataclass(frozen=True)
class Kind:
    certifiante: bool
    #: ``rncp``, ``rs`` or ``None``: where the certification is registered.
    registre: Optional[str]
    resultat: str
    objectif_general: tuple[int, ...]
    long: bool


KINDS = {
    "tp": Kind(
        True, "rncp", "Titre professionnel de {niveau} délivré par le ministère chargé de l'emploi.", (6,), True
    ),
    "cap": Kind(True, "rncp", "Certificat d'aptitude professionnelle (CAP), diplôme de {niveau}.", (6,), True),
    "bp": Kind(True, "rncp", "Brevet professionnel, diplôme de {niveau}.", (6,), True),
    "bts": Kind(True, "rncp", "Brevet de technicien supérieur (BTS), diplôme de {niveau}.", (6,), True),
    "de": Kind(True, "rncp", "Diplôme d'État de {niveau} délivré par le ministère chargé de la santé.", (6,), True),
    "diplome": Kind(True, "rncp", "Diplôme national de {niveau}.", (6,), True),
    "cqp": Kind(
        True, "rncp", "Certificat de qualification professionnelle de la branche, inscrit au RNCP.", (6, 7), True
    ),
    "rs": Kind(True, "rs", "Certification inscrite au Répertoire spécifique de France compétences.", (6,), False),
    "none": Kind(
        False, None, "Attestation de fin de formation précisant les compétences acquises.", (2, 5, 7, 9), False
    ),
}

NIVEAUX = {
    13: "niveau 3 (CAP, BEP)",
    14: "niveau 4 (baccalauréat)",
    15: "niveau 5 (bac + 2)",
    16: "niveau 6 (bac + 3 ou 4)",
}

T = Titre

DOMAINES = (
    Domaine(
        "bâtiment", 10,
        (
            T("Titre professionnel Maçon", "tp", "F1703", "maçon", 13),
            T("Titre professionnel Plaquiste", "tp", "F1604", "plaquiste", 13),
            T("Titre professionnel Peintre en bâtiment", "tp", "F1606", "peintre en bâtiment", 13),
            T("Titre professionnel Électricien d'équipement du bâtiment", "tp", "F1602", "électricien du bâtiment", 13),
            T("Titre professionnel Installateur en thermique et sanitaire", "tp", "F1603", "plombier chauffagiste", 13),
            T("Titre professionnel Menuisier poseur installateur", "tp", "F1607", "menuisier poseur", 13),
            T("Titre professionnel Technicien d'études du bâtiment en dessin de projet", "tp", "F1104",
              "dessinateur-projeteur du bâtiment", 15),
            T("CAP Carreleur mosaïste", "cap", "F1608", "carreleur", 13),
            T("CAP Monteur en installations sanitaires", "cap", "F1603", "monteur sanitaire", 13),
            T("BP Électricien", "bp", "F1602", "électricien", 14),
            T("Habilitation électrique B1V-BR-BC", "rs", "F1602"),
            T("Travail en hauteur et port du harnais", "none", "F1703"),
            T("Lecture de plans et métré du bâtiment", "none", "F1104"),
            T("Découverte des métiers du bâtiment et remise à niveau", "none", "F1703"),
        ),
        ("22403", "22454", "22336", "22654", "22402", "22435"),
        ("232", "233", "227", "230"),
        (
            "organiser et sécuriser son poste de travail sur un chantier",
            "lire et interpréter un plan d'exécution",
            "réaliser les travaux dans le respect des règles de l'art et des DTU",
            "appliquer les règles de prévention des risques sur chantier",
            "réaliser des ouvrages conformes aux normes d'isolation thermique et acoustique",
            "contrôler la conformité de son ouvrage et rendre compte à son chef d'équipe",
            "utiliser l'outillage électroportatif en sécurité",
            "trier et évacuer les déchets de chantier",
        ),
        (
            "Lecture de plans et implantation", "Technologie des matériaux",
            "Sécurité sur chantier et gestes et postures",
            "Réalisation d'ouvrages sur plateau technique", "Isolation thermique et acoustique",
            "Mise en œuvre des réseaux", "Finitions et contrôle qualité", "Calculs professionnels et métré",
        ),
        (
            "Aptitude au travail en hauteur et à la manutention.",
            "Savoir lire, écrire et compter. Une première expérience sur chantier est un plus.",
            "Visite médicale d'aptitude avant l'entrée en formation.",
        ),
        (420, 1100), (9.0, 16.0),
    ),
    Domaine(
        "industrie et maintenance", 6,
        (
            T("Titre professionnel Soudeur assembleur industriel", "tp", "H2913", "soudeur", 13),
            T("Titre professionnel Technicien de maintenance industrielle", "tp", "I1304",
              "technicien de maintenance", 14),
            T("Titre professionnel Agent de fabrication industrielle", "tp", "H2102", "agent de fabrication", 13),
            T("Titre professionnel Mécanicien automobile", "tp", "I1604", "mécanicien automobile", 13),
            T("CAP Maintenance des véhicules option voitures particulières", "cap", "I1604",
              "mécanicien automobile", 13),
            T("Titre professionnel Conducteur d'installations et de machines automatisées", "tp", "H2102",
              "conducteur de ligne", 13),
            T("CQP Opérateur régleur sur machine-outil à commande numérique", "cqp", "H2903",
              "opérateur régleur", 13),
            T("Habilitation électrique BR - personnel de maintenance", "rs", "I1309"),
            T("Initiation à la lecture de plans industriels", "none", "H2903"),
        ),
        ("23054", "23684", "31624", "24049", "23660"),
        ("251", "254", "250", "252"),
        (
            "réaliser la maintenance préventive et corrective d'un équipement",
            "diagnostiquer une panne électrique, mécanique ou pneumatique",
            "régler et conduire une machine de production",
            "souder en toutes positions selon un descriptif de mode opératoire",
            "contrôler la qualité des pièces produites",
            "respecter les consignes d'hygiène, de sécurité et d'environnement",
            "renseigner les documents de suivi de production",
        ),
        (
            "Lecture de plans et cotation", "Électricité industrielle", "Pneumatique et hydraulique",
            "Procédés de soudage", "Maintenance préventive", "Qualité, hygiène, sécurité, environnement",
            "Métrologie", "Conduite de machines automatisées",
        ),
        (
            "Maîtrise des savoirs de base. Aptitude médicale au poste.",
            "Niveau CAP ou expérience en milieu industriel souhaitée.",
        ),
        (490, 1200), (10.0, 18.0),
    ),
    Domaine(
        "transport et logistique", 9,
        (
            T("Titre professionnel Conducteur du transport routier de marchandises sur porteur", "tp", "N4101",
              "conducteur routier", 13),
            T("Titre professionnel Conducteur du transport en commun sur route", "tp", "N4103",
              "conducteur de bus et d'autocar", 13),
            T("Titre professionnel Préparateur de commandes en entrepôt", "tp", "N1103",
              "préparateur de commandes", 13),
            T("Titre professionnel Agent magasinier", "tp", "N1103", "agent magasinier", 13),
            T("Titre professionnel Technicien supérieur en méthodes et exploitation logistique", "tp", "N1301",
              "technicien logistique", 15),
            T("CACES R489 chariots de manutention catégories 1A, 3 et 5", "rs", "N1101"),
            T("FIMO transport de marchandises", "rs", "N4101"),
            T("FCO - formation continue obligatoire des conducteurs", "rs", "N4101"),
            T("Permis C - conduite de véhicules poids lourds", "none", "N4101"),
        ),
        ("31811", "31812", "31854", "31860", "31795"),
        ("311",),
        (
            "conduire un véhicule en sécurité dans le respect de la réglementation sociale européenne",
            "préparer et contrôler son véhicule avant le départ",
            "charger, arrimer et décharger une marchandise",
            "préparer des commandes à l'aide d'un terminal de radiofréquence",
            "conduire un chariot élévateur en sécurité",
            "réceptionner, contrôler et stocker des marchandises",
            "appliquer les gestes et postures adaptés à la manutention",
            "utiliser un logiciel de gestion d'entrepôt",
        ),
        (
            "Réglementation des transports", "Conduite sur piste et sur route", "Sécurité routière et éco-conduite",
            "Gestion des stocks et inventaires", "Conduite de chariots en sécurité", "Prévention des risques",
            "Logiciels de gestion d'entrepôt", "Relation client et livraison",
        ),
        (
            "Être titulaire du permis B en cours de validité.",
            "Aptitude médicale à la conduite (visite médicale du permis).",
            "Être âgé de 21 ans au moins pour le transport de voyageurs.",
        ),
        (280, 700), (11.0, 22.0),
    ),
    Domaine(
        "hôtellerie et restauration", 7,
        (
            T("Titre professionnel Cuisinier", "tp", "G1602", "cuisinier", 13),
            T("Titre professionnel Agent de restauration", "tp", "G1603", "agent de restauration", 13),
            T("Titre professionnel Serveur en restauration", "tp", "G1803", "serveur", 13),
            T("Titre professionnel Réceptionniste en hôtellerie", "tp", "G1703", "réceptionniste", 14),
            T("CAP Cuisine", "cap", "G1602", "cuisinier", 13),
            T("CAP Commercialisation et services en hôtel-café-restaurant", "cap", "G1803", "serveur", 13),
            T("BP Barman", "bp", "G1801", "barman", 14),
            T("Hygiène alimentaire en restauration commerciale (HACCP)", "none", "G1602"),
            T("Permis d'exploitation de débit de boissons", "rs", "G1402"),
        ),
        ("42752", "42754", "42745", "42758"),
        ("221", "334"),
        (
            "préparer et dresser des entrées, plats et desserts",
            "appliquer les règles d'hygiène et de sécurité alimentaire (HACCP)",
            "accueillir et conseiller la clientèle",
            "réaliser la mise en place de la salle et du bar",
            "gérer les stocks et les commandes de denrées",
            "assurer le service à table dans le respect des usages",
            "maîtriser les techniques de base de la cuisine",
        ),
        (
            "Techniques culinaires de base", "Hygiène et sécurité alimentaire", "Service en salle",
            "Accueil et relation client", "Gestion des approvisionnements", "Anglais professionnel",
            "Œnologie et boissons", "Stage en restaurant",
        ),
        (
            "Goût pour le travail en équipe et disponibilité en soirée et le week-end.",
            "Aucun prérequis de diplôme.",
        ),
        (400, 900), (9.0, 15.0),
    ),
    Domaine(
        "commerce et vente", 8,
        (
            T("Titre professionnel Employé commercial", "tp", "D1507", "employé commercial", 13),
            T("Titre professionnel Vendeur conseil en magasin", "tp", "D1214", "vendeur conseil", 14),
            T("Titre professionnel Conseiller relation client à distance", "tp", "D1408",
              "conseiller clientèle à distance", 14),
            T("Titre professionnel Manager d'unité marchande", "tp", "D1301", "manager de rayon", 15),
            T("BTS Management commercial opérationnel", "bts", "D1301", "manager commercial", 15),
            T("BTS Négociation et digitalisation de la relation client", "bts", "D1402", "commercial", 15),
            T("Techniques de vente et de négociation", "none", "D1402"),
            T("Développer ses ventes grâce aux réseaux sociaux", "none", "D1406"),
        ),
        ("34566", "34588", "34054", "34076"),
        ("312",),
        (
            "accueillir, conseiller et fidéliser la clientèle",
            "approvisionner un rayon et assurer sa bonne tenue",
            "conduire un entretien de vente jusqu'à la conclusion",
            "tenir une caisse et réaliser les opérations d'encaissement",
            "analyser les indicateurs commerciaux d'un rayon",
            "animer et encadrer une équipe de vente",
            "traiter les réclamations par téléphone et par écrit",
        ),
        (
            "Techniques de vente", "Merchandising et gestion de rayon", "Relation client omnicanale",
            "Gestion commerciale et indicateurs", "Management d'équipe", "Outils numériques du commerce",
            "Droit de la consommation", "Stage en entreprise",
        ),
        (
            "Aisance relationnelle et goût du contact.",
            "Niveau baccalauréat ou expérience commerciale pour les formations de niveau 5.",
        ),
        (450, 1350), (9.0, 16.0),
    ),
    Domaine(
        "gestion, comptabilité et secrétariat", 9,
        (
            T("Titre professionnel Comptable assistant", "tp", "M1203", "comptable assistant", 14),
            T("Titre professionnel Gestionnaire comptable et fiscal", "tp", "M1203", "gestionnaire comptable", 15),
            T("Titre professionnel Gestionnaire de paie", "tp", "M1203", "gestionnaire de paie", 15),
            T("Titre professionnel Secrétaire assistant", "tp", "M1607", "secrétaire assistant", 14),
            T("Titre professionnel Secrétaire comptable", "tp", "M1608", "secrétaire comptable", 14),
            T("Titre professionnel Assistant de direction", "tp", "M1604", "assistant de direction", 15),
            T("Titre professionnel Assistant ressources humaines", "tp", "M1501", "assistant RH", 15),
            T("BTS Comptabilité et gestion", "bts", "M1203", "comptable", 15),
            T("Logiciel de paie : prise en main et paramétrage", "none", "M1203"),
            T("Les fondamentaux de la comptabilité", "none", "M1203"),
        ),
        ("32663", "32688", "32654", "35054", "35066"),
        ("314", "324", "315"),
        (
            "enregistrer les opérations comptables courantes",
            "préparer les déclarations fiscales et sociales",
            "établir les bulletins de paie et les déclarations sociales nominatives",
            "assurer l'accueil physique et téléphonique",
            "produire des documents professionnels avec les outils bureautiques",
            "organiser les déplacements, réunions et agendas",
            "participer à l'élaboration des comptes annuels",
            "assurer le suivi administratif du personnel",
        ),
        (
            "Comptabilité générale", "Fiscalité des entreprises", "Paie et déclarations sociales",
            "Bureautique avancée", "Communication écrite professionnelle", "Logiciels comptables",
            "Droit du travail", "Organisation et gestion administrative",
        ),
        (
            "Maîtrise du français écrit et des outils bureautiques de base.",
            "Niveau baccalauréat ou expérience administrative.",
        ),
        (500, 1300), (9.0, 17.0),
    ),
    Domaine(
        "numérique et informatique", 10,
        (
            T("Titre professionnel Développeur web et web mobile", "tp", "M1805", "développeur web", 15),
            T("Titre professionnel Concepteur développeur d'applications", "tp", "M1805",
              "concepteur développeur", 16),
            T("Titre professionnel Technicien d'assistance en informatique", "tp", "I1401",
              "technicien d'assistance informatique", 14),
            T("Titre professionnel Technicien supérieur systèmes et réseaux", "tp", "M1810",
              "technicien systèmes et réseaux", 15),
            T("Titre professionnel Administrateur d'infrastructures sécurisées", "tp", "M1801",
              "administrateur systèmes", 16),
            T("Titre professionnel Designer web", "tp", "E1205", "designer web", 15),
            T("Bureautique : Word, Excel et PowerPoint - certification TOSA", "rs", "M1607"),
            T("Excel perfectionnement : tableaux croisés dynamiques et macros", "none", "M1607"),
            T("Certification PIX - compétences numériques", "rs", "M1607"),
            T("Cybersécurité : sensibilisation et bonnes pratiques", "none", "M1802"),
        ),
        ("31054", "31028", "31034", "70322", "46270"),
        ("326",),
        (
            "développer des interfaces web adaptatives et accessibles",
            "concevoir et exploiter une base de données relationnelle",
            "installer, configurer et dépanner un poste de travail",
            "administrer un réseau local et ses services",
            "sécuriser une infrastructure et gérer les sauvegardes",
            "travailler en mode projet avec les méthodes agiles",
            "produire des tableaux de calcul et des graphiques avec un tableur",
            "maîtriser les outils collaboratifs en ligne",
        ),
        (
            "Algorithmique et programmation", "HTML, CSS et JavaScript", "Bases de données et SQL",
            "Réseaux et systèmes", "Cybersécurité", "Gestion de projet agile",
            "Tableur et traitement de texte", "Projet professionnel et stage en entreprise",
        ),
        (
            "Appétence pour le numérique et logique de raisonnement ; tests de positionnement.",
            "Niveau baccalauréat souhaité pour les titres de niveau 5 et 6.",
            "Savoir utiliser un ordinateur et naviguer sur internet.",
        ),
        (600, 1500), (11.0, 25.0),
    ),
    Domaine(
        "santé", 7,
        (
            T("Diplôme d'État d'aide-soignant", "de", "J1501", "aide-soignant", 14),
            T("Diplôme d'État d'auxiliaire de puériculture", "de", "J1304", "auxiliaire de puériculture", 14),
            T("Diplôme d'État d'ambulancier", "de", "J1305", "ambulancier", 13),
            T("Formation d'auxiliaire ambulancier", "none", "J1305"),
            T("Assistant de soins en gérontologie", "none", "J1501"),
            T("Préparation à la sélection d'entrée en formation d'aide-soignant", "none", "J1501"),
            T("Agent de service hospitalier : hygiène et bionettoyage", "none", "J1301"),
        ),
        ("43436", "43454", "43441", "42829"),
        ("331", "330"),
        (
            "accompagner la personne dans les activités de la vie quotidienne",
            "évaluer l'état clinique d'une personne et mettre en œuvre des soins adaptés",
            "appliquer les règles d'hygiène et de prévention des infections",
            "communiquer avec le patient, son entourage et l'équipe soignante",
            "transmettre les informations utiles à la continuité des soins",
            "réaliser les gestes d'urgence",
        ),
        (
            "Accompagnement de la personne", "Soins et évaluation clinique", "Hygiène et prévention des infections",
            "Communication et relation de soin", "Gestes et soins d'urgence (AFGSU)", "Stages cliniques",
        ),
        (
            "Dossier de sélection et entretien de motivation.",
            "Vaccinations obligatoires à jour pour les stages en établissement de santé.",
        ),
        (770, 1540), (10.0, 14.0),
    ),
    Domaine(
        "aide à la personne et action sociale", 8,
        (
            T("Titre professionnel Assistant de vie aux familles", "tp", "K1302", "assistant de vie aux familles", 13),
            T("Diplôme d'État d'accompagnant éducatif et social", "diplome", "K1301",
              "accompagnant éducatif et social", 13),
            T("CAP Accompagnant éducatif petite enfance", "cap", "K1303", "accompagnant petite enfance", 13),
            T("Titre professionnel Agent de service médico-social", "tp", "J1301",
              "agent de service médico-social", 13),
            T("Gestes et postures : prévention des risques liés à l'activité physique", "none", "K1302"),
            T("Accompagner les personnes atteintes de la maladie d'Alzheimer", "none", "K1302"),
        ),
        ("44028", "42056", "44092", "44054"),
        ("330", "332"),
        (
            "accompagner une personne âgée ou en situation de handicap à son domicile",
            "entretenir le logement et le linge d'un particulier",
            "préparer des repas adaptés aux besoins des personnes",
            "assurer la garde d'enfants à domicile et veiller à leur sécurité",
            "prévenir les risques domestiques et réagir face à une situation d'urgence",
            "établir une relation professionnelle avec la personne aidée et sa famille",
        ),
        (
            "Entretien du cadre de vie", "Accompagnement dans les actes essentiels", "Petite enfance et développement",
            "Prévention des risques professionnels", "Communication et bientraitance", "Période en entreprise",
        ),
        (
            "Savoir lire, écrire et compter ; sens du contact et de l'écoute.",
            "Permis B souhaité pour les interventions à domicile.",
        ),
        (420, 900), (9.0, 14.0),
    ),
    Domaine(
        "sécurité", 5,
        (
            T("Titre professionnel Agent de sûreté et de sécurité privée", "tp", "K2503", "agent de sécurité", 13),
            T("CQP Agent de prévention et de sécurité", "cqp", "K2503", "agent de prévention et de sécurité", 13),
            T("SSIAP 1 - agent de service de sécurité incendie", "rs", "K2503"),
            T("Sauveteur secouriste du travail (SST)", "rs", "K2503"),
            T("Maintien et actualisation des compétences d'agent de prévention et de sécurité", "none", "K2503"),
        ),
        ("42864", "42830", "42854"),
        ("344",),
        (
            "assurer la surveillance d'un site et le contrôle des accès",
            "prévenir les risques d'incendie et évacuer le public",
            "porter secours à une victime en attendant les secours",
            "rédiger une main courante et un rapport d'intervention",
            "appliquer le cadre juridique de la sécurité privée",
        ),
        (
            "Cadre juridique de la sécurité privée", "Prévention incendie", "Secourisme",
            "Gestion des conflits", "Surveillance et rondes", "Palpation et contrôle d'accès",
        ),
        (
            "Autorisation préalable du CNAPS et casier judiciaire compatible.",
            "Maîtrise du français à l'oral et à l'écrit.",
        ),
        (140, 400), (10.0, 18.0),
    ),
    Domaine(
        "propreté et espaces verts", 5,
        (
            T("Titre professionnel Agent de propreté et d'hygiène", "tp", "K2204", "agent de propreté", 13),
            T("CAPa Jardinier paysagiste", "diplome", "A1203", "jardinier paysagiste", 13),
            T("Titre professionnel Ouvrier du paysage", "tp", "A1203", "ouvrier paysagiste", 13),
            T("Brevet professionnel responsable d'entreprise agricole", "diplome", "A1416",
              "responsable d'exploitation agricole", 14),
            T("Certiphyto - décideur en entreprise non soumise à agrément", "rs", "A1203"),
            T("Techniques de nettoyage en milieu hospitalier", "none", "K2204"),
        ),
        ("42085", "21054", "21046", "21086"),
        ("343", "214", "211"),
        (
            "réaliser le nettoyage manuel et mécanisé des locaux",
            "utiliser les produits d'entretien en sécurité",
            "entretenir des espaces verts et des massifs",
            "réaliser des travaux de création paysagère",
            "conduire et entretenir le matériel motorisé",
            "respecter les protocoles d'hygiène en milieu sensible",
        ),
        (
            "Techniques de nettoyage", "Produits et matériels", "Entretien des espaces verts",
            "Reconnaissance des végétaux", "Sécurité et prévention", "Stage pratique",
        ),
        ("Aptitude physique au travail en extérieur ou debout.", "Aucun prérequis de diplôme."),
        (350, 1200), (8.0, 14.0),
    ),
    Domaine(
        "langues", 7,
        (
            T("Anglais professionnel - niveau B1 - préparation au TOEIC", "rs", None),
            T("Anglais intensif tous niveaux - certification Linguaskill", "rs", None),
            T("Espagnol professionnel - niveau A2", "rs", None),
            T("Allemand des affaires", "rs", None),
            T("Italien pour débutants", "none", None),
            T("Anglais à distance avec tutorat - niveaux A1 à C1", "rs", None),
        ),
        ("15254", "15226", "15206", "15230"),
        ("136",),
        (
            "comprendre et se faire comprendre dans les situations professionnelles courantes",
            "rédiger des courriels et des comptes rendus simples",
            "participer à une réunion ou à une conversation téléphonique",
            "présenter son entreprise et ses produits",
            "enrichir son vocabulaire professionnel",
        ),
        (
            "Compréhension orale", "Expression orale en situation professionnelle", "Écrits professionnels",
            "Grammaire et vocabulaire", "Préparation à la certification", "Culture et usages des affaires",
        ),
        ("Test de positionnement en début de formation.", "Aucun prérequis."),
        (20, 120), (20.0, 60.0),
    ),
    Domaine(
        "remise à niveau et savoirs de base", 8,
        (
            T("Remise à niveau en français et mathématiques", "none", None),
            T("Compétences clés : savoirs de base et insertion professionnelle", "none", None),
            T("Certificat CléA - socle de connaissances et de compétences professionnelles", "rs", None),
            T("Français langue étrangère - préparation au DELF B1", "rs", None),
            T("Diplôme d'accès aux études universitaires (DAEU) option A", "diplome", None, None, 14),
            T("Savoirs numériques de base", "none", None),
            T("Prépa apprentissage : découverte des métiers et remise à niveau", "none", None),
        ),
        ("15041", "15040", "15043", "15235", "15093"),
        ("415", "100"),
        (
            "consolider ses compétences en français écrit et oral",
            "maîtriser les opérations de calcul utiles dans la vie professionnelle",
            "utiliser les outils numériques du quotidien",
            "se repérer dans l'espace et le temps et organiser son travail",
            "construire un projet d'orientation réaliste",
            "travailler en équipe et respecter les règles de vie collective",
        ),
        (
            "Communication écrite et orale", "Calcul et raisonnement logique", "Numérique au quotidien",
            "Techniques de recherche d'emploi", "Découverte des métiers", "Culture générale",
        ),
        ("Entretien individuel et positionnement.", "Aucun prérequis."),
        (150, 450), (8.0, 13.0),
    ),
    Domaine(
        "orientation et création d'entreprise", 4,
        (
            T("Construire son projet professionnel", "none", "K1801"),
            T("Créer ou reprendre une entreprise", "none", "M1302"),
            T("Gérer sa micro-entreprise", "none", "M1302"),
            T("Dynamique vers l'emploi : reprendre confiance et se remobiliser", "none", "K1801"),
        ),
        ("15066", "32047", "15064"),
        ("413", "310"),
        (
            "identifier ses compétences et ses centres d'intérêt",
            "explorer des métiers et des secteurs qui recrutent",
            "construire un plan d'action vers l'emploi ou la formation",
            "élaborer un business plan et un prévisionnel financier",
            "choisir le statut juridique adapté à son projet",
            "valoriser sa candidature auprès des employeurs",
        ),
        (
            "Bilan personnel et professionnel", "Connaissance du marché du travail", "Enquêtes métiers",
            "Étude de marché", "Prévisionnel financier", "Statuts juridiques et démarches",
        ),
        ("Aucun prérequis.",),
        (35, 280), (8.0, 20.0),
    ),
    Domaine(
        "coiffure et esthétique", 3,
        (
            T("CAP Métiers de la coiffure", "cap", "D1202", "coiffeur", 13),
            T("BP Coiffure", "bp", "D1202", "coiffeur", 14),
            T("CAP Esthétique, cosmétique, parfumerie", "cap", "D1208", "esthéticien", 13),
            T("Techniques de maquillage professionnel", "none", "D1208"),
        ),
        ("42629", "42643", "42650"),
        ("336",),
        (
            "réaliser des coupes, colorations et coiffages",
            "conseiller la clientèle et vendre des produits",
            "réaliser des soins esthétiques du visage et du corps",
            "appliquer les règles d'hygiène et de sécurité du salon",
        ),
        (
            "Techniques de coupe", "Coloration et soins capillaires", "Soins esthétiques", "Vente conseil",
            "Biologie et technologie", "Stage en salon",
        ),
        ("Sens du contact et de la présentation.",),
        (400, 800), (9.0, 15.0),
    ),
)

#: Sentences of the objectives, the contents and the conditions.
#: ``{de_metier}`` is "de plaquiste" or "d'électricien".
INTRO_METIER = (
    "Cette formation prépare au métier {de_metier} et permet d'obtenir une qualification reconnue.",
    "Acquérir les compétences nécessaires pour exercer le métier {de_metier} en entreprise.",
    "Former des professionnels capables d'exercer le métier {de_metier} en autonomie.",
    "Se qualifier pour accéder à un emploi {de_metier}, métier qui recrute dans la région.",
)
INTRO_GENERIC = (
    "Cette formation permet de développer ses compétences et de sécuriser son parcours professionnel.",
    "Acquérir ou actualiser des compétences directement utiles en situation de travail.",
    "Une formation courte et opérationnelle pour monter en compétences rapidement.",
    "Permettre aux participants de gagner en autonomie et en confiance dans leur activité.",
)
OUTRO = (
    "La formation alterne apports théoriques, exercices pratiques et mises en situation professionnelle.",
    "Un accompagnement individualisé est proposé tout au long du parcours.",
    "Les acquis sont évalués en continu et lors d'une évaluation finale.",
    "Une période en entreprise permet de mettre en pratique les compétences acquises.",
    "Chaque stagiaire bénéficie d'un suivi par un formateur référent.",
)
DEBOUCHES = (
    "Débouchés : emploi {de_metier} en entreprise, en collectivité ou en agence d'intérim.",
    "Le métier {de_metier} offre de nombreuses opportunités d'emploi dans la région, en CDI comme en intérim.",
    "Après quelques années d'expérience, évolution possible vers des fonctions d'encadrement.",
)
CONTENU_EXTRAS = (
    "Accompagnement à la recherche d'emploi",
    "Préparation aux épreuves de certification",
    "Sensibilisation au développement durable",
    "Prévention des risques professionnels",
    "Bilan individuel et évaluation finale",
)
RYTHMES = (
    "Temps plein", "Temps plein, 35 heures par semaine", "Continu temps plein", "Temps partiel",
    "Continu temps plein, Modulaire", "Discontinu, 2 à 3 jours par semaine", "Cours du soir et samedi matin",
)
PUBLICS = (
    "Demandeurs d'emploi, salariés, personnes en reconversion professionnelle.",
    "Tout public : demandeurs d'emploi, salariés, jeunes de 16 à 25 ans.",
    "Demandeurs d'emploi inscrits à France Travail.",
    "Salariés dans le cadre du plan de développement des compétences ou du CPF.",
    "Jeunes de 16 à 29 ans en contrat d'apprentissage ou de professionnalisation.",
    "Personnes en situation de handicap (locaux et pédagogie adaptés).",
)
CODES_PUBLIC = ("83056", "80006", "80001", "82054", "80052", "86013")
RECRUTEMENTS = (
    "Information collective, tests de positionnement et entretien individuel.",
    "Entretien, Tests",
    "Sur dossier et entretien de motivation.",
    "Inscription directe auprès de l'organisme, après un entretien de positionnement.",
    "Réunion d'information puis entretien individuel avec un formateur.",
)
PEDAGOGIES = (
    "Alternance d'apports théoriques et de mises en situation professionnelle sur plateau technique.",
    "Formation individualisée en centre de ressources, accompagnement par un formateur référent.",
    "Pédagogie active : études de cas, travaux de groupe et mises en situation.",
    "Cours en petits groupes, exercices pratiques et évaluations régulières.",
)
PEDAGOGIES_DISTANCE = (
    "Classes virtuelles et plateforme d'apprentissage en ligne, tutorat hebdomadaire.",
    "Formation ouverte et à distance (FOAD) avec regroupements mensuels en centre.",
)
RESTAURATIONS = ("Restauration sur place", "Restaurant d'entreprise à proximité", "Non", "Salle de pause équipée")
HEBERGEMENTS = ("Hébergement possible", "Non", "Liste d'hébergements à proximité sur demande")
TRANSPORTS = (
    "Accès en transports en commun", "Parking gratuit", "Accès parking possible",
    "Gare à 10 minutes à pied", "Ligne de bus à proximité",
)
ACCES_HANDICAPES = (
    "Locaux accessibles aux personnes à mobilité réduite",
    "Accès handicapé possible",
    "Référent handicap : adaptations possibles sur demande",
)
FRAIS_RESTANTS = (
    "Aucun frais à la charge du stagiaire pour les demandeurs d'emploi.",
    "Frais d'inscription à l'examen : 80 euros.",
    "Équipements de protection individuelle à la charge du stagiaire.",
)
PRISE_EN_CHARGE = (
    "Formation financée par la Région pour les demandeurs d'emploi ; rémunération possible selon la situation.",
    "Prise en charge possible par France Travail (AIF) ou par le CPF.",
    "Financement possible par l'OPCO de l'entreprise dans le cadre du plan de développement des compétences.",
    "Éligible au CPF ; reste à charge éventuel selon les droits acquis.",
)
ALTERNANCES = (
    "Stage pratique en entreprise de {semaines} semaines.",
    "Alternance : 2 semaines en centre, 2 semaines en entreprise.",
    "Période d'application en entreprise de {semaines} semaines en fin de parcours.",
)
TITLE_SUFFIXES = (
    " - parcours complet", " - en alternance", " (contrat de professionnalisation)", " - parcours individualisé",
    " - session intensive", " - par blocs de compétences",
)
SHORT_TITLE_SUFFIXES = (" - session intensive", " - en soirée", " - formation courte", " - inter-entreprises")
#: LHEO ``dict-financeurs``: 2 Conseil régional, 3 FSE, 4 France Travail, 5 entreprise,
#: 7 Agefiph, 10 bénéficiaire, 11 État (emploi), 16 OPCO.
FINANCEURS_CONVENTIONNES = ("2", "4", "2", "11", "3")
FINANCEURS_LIBRES = ("10", "5", "16", "4", "7")
CPF_SOURCES = (
    "France compétences - Répertoire national des certifications professionnelles",
    "France compétences - Répertoire spécifique",
    "Caisse des dépôts - Mon Compte Formation",
)


# --------------------------------------------------------------------------
# The generator
# --------------------------------------------------------------------------


@dataclass
class Organisme:
    model: OrganismeFormationResponsable
    town: Town
    region: str
    domaines: tuple[Domaine, ...]
    slug: str
    #: Networks (AFPA-like) also train in other régions.
    national: bool
    adresse: Adresse
    used_titles: set[str] = field(default_factory=set)


class Generator:
    """One seeded stream of formations; every random draw goes through ``self.rng``."""

    def __init__(self, seed: int, reference: dt.date):
        self.rng = random.Random(seed)
        self.reference = reference
        self.towns = [Town(*row[:7], tuple(row[7].split())) for row in TOWNS]
        self.towns_by_region: dict[str, list[Town]] = {}
        for town in self.towns:
            self.towns_by_region.setdefault(town.region, []).append(town)
        # Big cities hold more of the offer, but not in proportion to their size.
        self.town_weights = {
            region: list(itertools.accumulate(t.population**0.6 for t in towns))
            for region, towns in self.towns_by_region.items()
        }
        self.regions = list(REGION_WEIGHTS)
        self.region_weights = list(itertools.accumulate(REGION_WEIGHTS[r] for r in self.regions))
        self.domaine_weights = list(itertools.accumulate(d.poids for d in DOMAINES))
        self.family_weights = list(itertools.accumulate(f[0] for f in ORGANISME_FAMILIES))
        rng = self.rng
        # Numeros look organic: each Carif-Oref starts somewhere and counts with gaps.
        self.counters = {prefix: [rng.randrange(10_000, 900_000), rng.randrange(10_000, 900_000)]
                         for prefix in sorted(NUMERO_FORMATS)}
        self.organismes = 0
        self.duplicates = 0
        self._sirets: set[str] = set()

    # -- small draws ------------------------------------------------------

    def chance(self, p: float) -> bool:
        return self.rng.random() < p

    def pick_region(self) -> str:
        return self.rng.choices(self.regions, cum_weights=self.region_weights)[0]

    def pick_town(self, region: str) -> Town:
        return self.rng.choices(self.towns_by_region[region], cum_weights=self.town_weights[region])[0]

    def pick_domaines(self, count: int) -> tuple[Domaine, ...]:
        """``count`` distinct domains, the usual ones (bâtiment, numérique...) more often."""
        picked: list[Domaine] = []
        while len(picked) < count:
            domaine = self.rng.choices(DOMAINES, cum_weights=self.domaine_weights)[0]
            if domaine not in picked:
                picked.append(domaine)
        return tuple(picked)

    def days(self, low: int, high: int) -> dt.timedelta:
        return dt.timedelta(days=self.rng.randint(low, high))

    def next_numero(self, prefix: str, which: int) -> str:
        counter = self.counters[prefix]
        counter[which] += self.rng.randint(1, 40)
        return NUMERO_FORMATS[prefix][which].format(counter[which])

    def person(self) -> tuple[str, str, str]:
        prenom = self.rng.choice(PRENOMS)
        civilite = "Madame" if prenom in PRENOMS[:20] else "Monsieur"
        return civilite, prenom, self.rng.choice(NOMS)

    def adresse(self, town: Town) -> Adresse:
        rng = self.rng
        lignes = [f"{rng.randint(1, 180)} {rng.choice(RUES)}"]
        if self.chance(0.25):
            lignes.insert(0, rng.choice(COMPLEMENTS))
        return Adresse(
            lignes=lignes,
            codepostal=rng.choice(town.codes_postaux),
            ville=town.nom,
            departement=town.departement,
            code_insee_commune=town.code_insee,
            region=town.region,
            pays="FR",
            geolocalisation={
                "latitude": round(town.latitude + rng.uniform(-0.03, 0.03), 6),
                "longitude": round(town.longitude + rng.uniform(-0.03, 0.03), 6),
            },
        )

    def siret(self) -> str:
        """A fresh 14-digit SIRET whose SIREN and SIRET keys both pass Luhn."""
        while True:
            body = str(self.rng.randrange(10_000_000, 100_000_000))
            siren = next(body + k for k in "0123456789" if luhn_ok(body + k))
            nic = f"{self.rng.randrange(1, 300):04d}"
            siret = next(siren + nic + k for k in "0123456789" if luhn_ok(siren + nic + k))
            if siret not in self._sirets and not siret.startswith("356000000"):
                self._sirets.add(siret)
                return siret

    # -- organismes ---------------------------------------------------------

    def organisme(self) -> Organisme:
        rng = self.rng
        self.organismes += 1
        region = self.pick_region()
        town = self.pick_town(region)
        prefix = CARIF_OF_REGION[region]
        famille = rng.choices(ORGANISME_FAMILIES, cum_weights=self.family_weights)[0]
        _, nom_pattern, raison_pattern, domaine_names, national = famille
        nom_personne = rng.choice(NOMS)
        values = {"ville": town.nom, "nom": nom_personne, "sigle": _sigle(rng)}
        nom = nom_pattern.format(**values)
        raison = raison_pattern.format(**values)
        if domaine_names:
            domaines = tuple(d for d in DOMAINES if d.nom in domaine_names)
        else:
            domaines = self.pick_domaines(rng.randint(2, 4))
        slug = _slug(nom)
        adresse = self.adresse(town)
        civilite, prenom, nom_contact = self.person()
        telephone = "01 00 00 00 00"
        model = OrganismeFormationResponsable(
            numero=f"{prefix}_OF_{rng.randrange(1, 10**7):07d}",
            numero_activite=f"{region}{town.departement}{rng.randrange(0, 100000):05d}{town.departement}",
            siret_organisme_formation=self.siret(),
            nom_organisme=nom,
            raison_sociale=raison,
            coordonnees_organisme=Coordonnees(
                adresse=adresse,
                telfixe=[telephone],
                courriel=f"contact@{slug}.exemple.invalid",
                web=[f"https://www.{slug}.exemple.invalid"],
            ),
            contact_organisme=[
                Coordonnees(
                    civilite=civilite,
                    nom=nom_contact,
                    prenom=prenom,
                    telfixe=[telephone],
                    courriel=f"{_slug(prenom)}.{_slug(nom_contact)}@{slug}.exemple.invalid",
                )
            ],
            renseignements_specifiques=rng.choice(
                (
                    None,
                    None,
                    "Organisme certifié Qualiopi au titre des actions de formation.",
                    "Organisme certifié Qualiopi. Référent handicap joignable à l'accueil.",
                )
            ),
        )
        return Organisme(model, town, region, domaines, slug, national, adresse)

    # -- formations ---------------------------------------------------------

    def formations(self, count: int) -> Iterator[Formation]:
        produced = 0
        while produced < count:
            organisme = self.organisme()
            # Most organismes offer a few formations, a few offer many (mean about 8).
            size = min(count - produced, 1 + int(self.rng.expovariate(1 / 7)))
            previous: Optional[dict] = None
            for _ in range(size):
                if previous is not None and self.chance(0.004):
                    data = self.duplicate(previous)
                    self.duplicates += 1
                else:
                    data = self.formation(organisme)
                previous = data
                produced += 1
                yield Formation(**data)

    def duplicate(self, data: dict) -> dict:
        """A probable duplicate: same organisme, title and places, new numeros (entered twice)."""
        prefix = data["numero"].split("_", 1)[0]
        copy = dict(data, numero=self.next_numero(prefix, 0))
        copy["actions"] = []
        for action in data["actions"]:
            numero = self.next_numero(prefix, 1)
            sessions = [dict(s, numero=f"{numero}-{k}") for k, s in enumerate(action["sessions"], start=1)]
            copy["actions"].append(dict(action, numero=numero, sessions=sessions))
        return copy

    def formation(self, organisme: Organisme) -> dict:
        rng = self.rng
        domaine, titre, intitule = self.intitule(organisme)
        kind = KINDS[titre.kind]

        region = organisme.region
        elsewhere = organisme.national and self.chance(0.15)
        if elsewhere:
            region = rng.choice([r for r in self.regions if r != organisme.region])
        prefix = CARIF_OF_REGION[region]

        heures = self.heures(domaine, kind)
        esp = self.chance(0.15)
        distance = "distance" in intitule.lower() or self.chance(0.08)
        cpf = kind.certifiante and self.chance(0.6) or not kind.certifiante and self.chance(0.05)
        datemaj = self.reference - self.days(1, 330)
        datecrea = datemaj - self.days(0, 1500)

        actions = []
        for _ in range(rng.choices((1, 2, 3, 4), (72, 18, 7, 3))[0]):
            actions.append(
                self.action(organisme, domaine, kind, prefix, region, heures, esp, distance, cpf, elsewhere)
            )
        niveau = titre.niveau
        certifications = []
        if kind.registre == "rncp":
            certifications.append(
                {
                    "code_rncp": _code(titre.intitule, 5000, 39000),
                    "code_certifinfo": _code(titre.intitule, 50000, 120000),
                }
            )
        elif kind.registre == "rs":
            certifications.append({"code_rs": _code(titre.intitule, 1000, 6999)})
        civilite, prenom, nom = self.person()
        formacodes = [domaine.formacodes[0]] + rng.sample(domaine.formacodes[1:], rng.randint(0, 2))
        rng.shuffle(formacodes)
        return {
            "numero": self.next_numero(prefix, 0),
            "datecrea": datecrea,
            "datemaj": datemaj,
            "intitule_formation": intitule,
            "objectif_formation": self.objectif(titre, domaine, kind),
            "resultats_attendus": self.resultats(kind, niveau),
            "contenu_formation": self.contenu(domaine, heures),
            "certifiante": kind.certifiante,
            "code_formacode": formacodes,
            "code_formacode_principal": formacodes[0],
            "code_nsf": [rng.choice(domaine.nsf)],
            "code_rome": [titre.rome] if titre.rome else [],
            "contact_formation": [
                {
                    "civilite": civilite,
                    "nom": nom,
                    "prenom": prenom,
                    "telfixe": ["01 00 00 00 00"],
                    "courriel": f"formation@{organisme.slug}.exemple.invalid",
                }
            ],
            "parcours_de_formation": rng.choices((1, 2, 3, 4), (55, 15, 20, 10))[0],
            "code_niveau_entree": rng.choice((0, 1, 1, 13)) if not niveau or niveau <= 13 else niveau - 1,
            "objectif_general_formation": rng.choice(kind.objectif_general),
            "certifications": certifications,
            "code_niveau_sortie": niveau,
            "url_formation": [f"https://www.{organisme.slug}.exemple.invalid/formations/{_slug(titre.intitule)}"]
            if self.chance(0.6)
            else [],
            "actions": actions,
            "organisme_formation_responsable": organisme.model,
        }

    def intitule(self, organisme: Organisme) -> tuple[Domaine, Titre, str]:
        """A domain, a title and its wording, never twice the same for one organisme (but by duplicates)."""
        rng = self.rng
        for _ in range(8):
            domaine = rng.choice(organisme.domaines)
            titre = rng.choice(domaine.titres)
            suffixes = TITLE_SUFFIXES if KINDS[titre.kind].registre == "rncp" else SHORT_TITLE_SUFFIXES
            candidate = titre.intitule + rng.choice(suffixes) if self.chance(0.3) else titre.intitule
            if candidate not in organisme.used_titles:
                break
        else:
            # A big organisme runs the same course for several groups.
            candidate = f"{titre.intitule} - groupe {len(organisme.used_titles) + 1}"
        organisme.used_titles.add(candidate)
        # Some systems export titles in capitals.
        return domaine, titre, candidate.upper() if self.chance(0.04) else candidate

    def heures(self, domaine: Domaine, kind: Kind) -> int:
        if kind.long:
            low, high = domaine.heures
            return self.rng.randrange(low, high + 1, 7)
        low, high = (domaine.heures if domaine.heures[1] <= 150 else (7, 140))
        return max(7, self.rng.randrange(low, high + 1, 7))

    # -- texts --------------------------------------------------------------

    def objectif(self, titre: Titre, domaine: Domaine, kind: Kind) -> str:
        """An intro, the skills aimed at (a ``<br />`` list or prose), sometimes outlets and method."""
        rng = self.rng
        de_metier = _de(titre.metier) if titre.metier else ""
        intro = rng.choice(INTRO_METIER).format(de_metier=de_metier) if titre.metier else rng.choice(INTRO_GENERIC)
        competences = rng.sample(domaine.competences, rng.randint(3, min(7, len(domaine.competences))))
        if self.chance(0.6):
            items = "<br />".join(f"- {c}" for c in competences)
            parts = [intro, f"À l'issue de la formation, le stagiaire sera capable de :<br />{items}"]
            sep = "<br />"
        else:
            parts = [intro, f"Objectifs : {', '.join(competences[:-1])} et {competences[-1]}."]
            sep = " "
        if titre.metier and self.chance(0.5):
            parts.append(rng.choice(DEBOUCHES).format(de_metier=de_metier))
        parts += rng.sample(OUTRO, rng.choice((0, 1, 1, 2, 3)))
        return sep.join(parts)

    def resultats(self, kind: Kind, niveau: Optional[int]) -> str:
        text = kind.resultat.format(niveau=NIVEAUX.get(niveau or 0, "niveau national"))
        if kind.registre == "rncp" and self.chance(0.4):
            text += " Possibilité de valider un ou plusieurs blocs de compétences."
        return text

    def contenu(self, domaine: Domaine, heures: int) -> str:
        """Modules with their hours (``<br />`` lines), or prose."""
        rng = self.rng
        modules = rng.sample(domaine.modules, rng.randint(4, len(domaine.modules)))
        modules += rng.sample(CONTENU_EXTRAS, rng.randint(0, 2))
        if self.chance(0.65):
            share = max(1, heures // len(modules))
            details = rng.sample(domaine.competences, len(domaine.competences)) if self.chance(0.4) else []
            lines = []
            for i, module in enumerate(modules, start=1):
                line = f"Module {i} : {module} ({max(3, share + rng.randint(-share // 3, share // 3))} h)"
                if i <= len(details):
                    line += f" : {details[i - 1]}"
                lines.append(line)
            text = "<br />".join(lines)
            sep = "<br />"
        else:
            text = (
                f"La formation aborde les thèmes suivants : {', '.join(m.lower() for m in modules)}. "
                f"Elle comprend {heures} heures en centre de formation."
            )
            sep = " "
        if self.chance(0.4):
            text += sep + rng.choice(OUTRO)
        return text

    # -- actions and sessions ---------------------------------------------

    def action(
        self,
        organisme: Organisme,
        domaine: Domaine,
        kind: Kind,
        prefix: str,
        region: str,
        heures: int,
        esp: bool,
        distance: bool,
        cpf: bool,
        elsewhere: bool,
    ) -> dict:
        rng = self.rng
        numero = self.next_numero(prefix, 1)
        lieux = []
        # An action out of the organisme's région is necessarily out of its premises.
        if elsewhere or (not distance and self.chance(0.25)):
            town = self.pick_town(region) if elsewhere or self.chance(0.6) else organisme.town
            adresse = self.adresse(town)
            lieux.append({"nom": f"Site de {town.nom}", "adresse": adresse, "telfixe": ["01 00 00 00 00"]})
            place = adresse
        else:
            place = organisme.adresse
        entreprise = rng.randrange(70, 281, 35) if kind.long and self.chance(0.6) else 0
        conventionne = self.chance(0.35)
        priced = self.chance(0.75)
        taux = rng.uniform(*domaine.taux)
        total = round(heures * taux, -1) or 10
        modalite = 2 if distance else rng.choices((0, 1), (88, 12))[0]
        financeurs = []
        if conventionne:
            for code in dict.fromkeys(rng.sample(FINANCEURS_CONVENTIONNES, rng.randint(1, 2))):
                financeurs.append({"code_financeur": code, "nb_places_financees": rng.randint(6, 16)})
        else:
            for code in dict.fromkeys(rng.sample(FINANCEURS_LIBRES, rng.randint(1, 3))):
                financeurs.append({"code_financeur": code})
        return {
            "numero": numero,
            "rythme_formation": "Entrées et sorties permanentes, rythme individualisé" if esp else rng.choice(RYTHMES),
            "code_public_vise": rng.sample(CODES_PUBLIC, rng.randint(1, 2)),
            "info_public_vise": rng.choice(PUBLICS) if self.chance(0.6) else None,
            "niveau_entree_obligatoire": self.chance(0.3),
            "modalites_alternance": rng.choice(ALTERNANCES).format(semaines=entreprise // 35 or 2)
            if entreprise
            else None,
            "modalites_enseignement": modalite,
            "conditions_specifiques": rng.choice(domaine.prerequis) if self.chance(0.7) else None,
            "prise_en_charge_frais_possible": self.chance(0.4),
            "lieux_de_formation": lieux,
            "entrees_sorties_permanentes": esp,
            "url_action": [f"https://www.{organisme.slug}.exemple.invalid/sessions/{numero}"]
            if self.chance(0.3)
            else [],
            "sessions": self.sessions(numero, place, heures + entreprise, esp, cpf),
            "adresse_information": organisme.adresse if self.chance(0.4) else None,
            "restauration": rng.choice(RESTAURATIONS) if self.chance(0.6) else None,
            "hebergement": rng.choice(HEBERGEMENTS) if self.chance(0.4) else None,
            "transport": rng.choice(TRANSPORTS) if self.chance(0.6) else None,
            "acces_handicapes": rng.choice(ACCES_HANDICAPES) if self.chance(0.7) else None,
            "langue_formation": ["fr"],
            "modalites_recrutement": rng.choice(RECRUTEMENTS) if self.chance(0.7) else None,
            "modalites_pedagogiques": rng.choice(PEDAGOGIES_DISTANCE if modalite == 2 else PEDAGOGIES)
            if self.chance(0.6)
            else None,
            "frais_restants": rng.choice(FRAIS_RESTANTS) if self.chance(0.3) else None,
            "prix_horaire_ttc": Decimal(f"{total / heures:.2f}") if priced else None,
            "prix_total_ttc": Decimal(f"{total:.2f}") if priced else None,
            "duree_indicative": _duree(heures + entreprise) if self.chance(0.5) else None,
            "nombre_heures_centre": heures,
            "nombre_heures_entreprise": entreprise or None,
            "nombre_heures_total": heures + entreprise,
            "detail_conditions_prise_en_charge": rng.choice(PRISE_EN_CHARGE) if self.chance(0.5) else None,
            "conventionnement": conventionne,
            "duree_conventionnee": heures if conventionne else None,
            "organismes_formateurs": [
                {
                    "siret_formateur": organisme.model.siret_organisme_formation,
                    "raison_sociale_formateur": organisme.model.raison_sociale,
                }
            ]
            if self.chance(0.3)
            else [],
            "organismes_financeurs": financeurs,
        }

    def sessions(self, numero: str, place: Adresse, heures: int, esp: bool, cpf: bool) -> list[dict]:
        rng = self.rng
        reference = self.reference
        first, last = reference - dt.timedelta(days=365), reference + dt.timedelta(days=730)
        eligibilite = self.eligibilite_cpf() if cpf else []
        if esp:
            debut = reference + self.days(-300, 330)
            periods = [(None if self.chance(0.1) else debut, debut + dt.timedelta(days=364))]
        else:
            # Full time is 35 hours a week; short courses take a few days.
            length = max(1, round(heures / self.rng.choice((35, 35, 28, 20)) * 7)) if heures > 35 else max(
                1, heures // 7
            )
            length = min(length, 330)
            # Some formations are over (archived on the reference date), most are current or to come.
            end_of_window = reference - dt.timedelta(days=1) if self.chance(0.1) else last
            start = first + self.days(0, max(0, (end_of_window - first).days - length))
            periods = []
            for _ in range(rng.choices((1, 2, 3), (78, 15, 7))[0]):
                end = start + dt.timedelta(days=length - 1)
                if end > end_of_window:
                    break
                periods.append((start, end))
                start = end + self.days(14, 160)
        sessions = []
        for k, (debut, fin) in enumerate(periods, start=1):
            session: dict = {
                "numero": f"{numero}-{k}",
                "periode": {"debut": debut, "fin": fin},
                "adresse_inscription": place,
                "eligibilite_cpf": eligibilite,
            }
            if debut is not None and self.chance(0.3):
                session["periode_inscription"] = {
                    "debut": None if self.chance(0.5) else debut - self.days(30, 90),
                    "fin": debut - self.days(1, 14),
                }
            if self.chance(0.6):
                session["etat_recrutement"] = 1 if fin >= reference else 2
            sessions.append(session)
        return sessions

    def eligibilite_cpf(self) -> list[dict]:
        rng = self.rng
        debut = self.reference - self.days(200, 1500)
        return [
            {
                "numero": str(rng.randrange(100_000, 400_000)),
                "source": rng.choice(CPF_SOURCES),
                "debut_validite": debut,
                "fin_validite": debut + self.days(730, 1825),
            }
        ]


# --------------------------------------------------------------------------
# Organismes' families: (weight, nom, raison sociale, domains or None for a few at random, national)
# --------------------------------------------------------------------------

ORGANISME_FAMILIES = (
    (10, "GRETA {ville}", "GRETA {ville} - groupement d'établissements publics d'enseignement", None, False),
    (6, "Afpa {ville}", "Agence nationale pour la formation professionnelle des adultes - centre de {ville}",
     ("bâtiment", "industrie et maintenance", "transport et logistique", "hôtellerie et restauration",
      "gestion, comptabilité et secrétariat", "commerce et vente", "propreté et espaces verts"), True),
    (14, "{nom} Formation", "{nom} Formation SARL", None, False),
    (8, "{sigle} Conseil et Formation", "{sigle} Conseil et Formation SAS", None, False),
    (6, "Centre de formation {nom}", "Centre de formation {nom}", None, False),
    (6, "Association {sigle} Insertion", "Association {sigle} Insertion Emploi (loi 1901)",
     ("remise à niveau et savoirs de base", "orientation et création d'entreprise",
      "aide à la personne et action sociale", "propreté et espaces verts"), False),
    (4, "IFSI-IFAS de {ville}",
     "Institut de formation en soins infirmiers et d'aides-soignants du centre hospitalier de {ville}",
     ("santé",), False),
    (3, "E2C {ville}", "École de la deuxième chance de {ville}",
     ("remise à niveau et savoirs de base", "orientation et création d'entreprise"), False),
    (4, "CCI {ville} Formation", "Chambre de commerce et d'industrie - centre de formation de {ville}",
     ("commerce et vente", "gestion, comptabilité et secrétariat", "langues", "numérique et informatique"), False),
    (4, "CFR {nom}", "Centre de formation routière {nom}", ("transport et logistique",), True),
    (4, "{nom} Langues", "{nom} Langues - institut de langues", ("langues",), False),
    (5, "Campus numérique {ville}", "Campus numérique de {ville} SAS", ("numérique et informatique",), False),
    (2, "Académie {nom}", "Académie {nom} coiffure et esthétique", ("coiffure et esthétique",), False),
    (3, "IRTS {ville}", "Institut régional du travail social - site de {ville}",
     ("aide à la personne et action sociale",), False),
    (3, "{nom} Sécurité Formation", "{nom} Sécurité Formation SAS", ("sécurité",), True),
    (2, "CFPPA {ville}", "Centre de formation professionnelle et de promotion agricoles de {ville}",
     ("propreté et espaces verts",), False),
    (3, "CMA Formation {ville}", "Chambre de métiers et de l'artisanat - campus de {ville}",
     ("coiffure et esthétique", "hôtellerie et restauration", "orientation et création d'entreprise",
      "bâtiment"), False),
    (2, "Université {ville} - formation continue", "Service de formation continue de l'université de {ville}",
     ("remise à niveau et savoirs de base", "langues", "gestion, comptabilité et secrétariat"), False),
)


# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------


def _code(text: str, low: int, high: int) -> str:
    """A stable code for a title (same title, same RNCP code in every run and process)."""
    return str(low + zlib.crc32(text.encode("utf-8")) % (high - low))


_FOLD = str.maketrans("àâäéèêëîïôöùûüçœæ", "aaaeeeeiioouuucoa")


def _slug(text: str) -> str:
    folded = text.lower().translate(_FOLD)
    return "-".join("".join(c if c.isalnum() and c.isascii() else " " for c in folded).split())[:40].strip("-")


def _sigle(rng: random.Random) -> str:
    return "".join(rng.choice("ABCDEFGILMNOPRST") for _ in range(rng.randint(3, 4)))


def _de(noun: str) -> str:
    """French elision: "de plaquiste", "d'électricien"."""
    return f"d'{noun}" if noun[0].lower() in "aeéèêiîoôuh" else f"de {noun}"


def _duree(heures: int) -> str:
    if heures <= 35:
        return f"{heures // 7} jour{'s' if heures > 7 else ''}"
    if heures < 350:
        return f"{heures} heures"
    return f"{round(heures / 151.67)} mois environ"
