"""The LHEO reader: real samples, the element -> field mapping, problems, security, memory."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Callable

import pytest
from lxml import etree

from catalogue import model
from catalogue.model import Certification, ModalitesEnseignement, PartialDate
from catalogue.problems import Origin, Problem
from catalogue.sources import Record
from catalogue.sources import lheo as reader
from catalogue.sources.lheo import read_lheo

SAMPLES = Path(__file__).parent / "data" / "lheo"
PLAQUISTE = SAMPLES / "centre-plaquiste.xml"
DAEU = SAMPLES / "occitanie-daeu.xml"
NS22 = "http://www.lheo.org/2.2"
NS23 = "http://lheo.gouv.fr/2.3"


# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------


def read(path: Path) -> tuple[list[Record], list[Problem]]:
    items = list(read_lheo(path))
    assert all(isinstance(i, (Record, Problem)) for i in items)
    return [i for i in items if isinstance(i, Record)], [i for i in items if isinstance(i, Problem)]


def only_record(path: Path) -> Record:
    records, problems = read(path)
    assert problems == []
    assert len(records) == 1
    return records[0]


def mutated(tmp_path: Path, change: Callable[[etree._Element], None], sample: Path = PLAQUISTE) -> Path:
    """A copy of a sample with ``change`` applied to its root; lines are kept."""
    tree = etree.parse(str(sample))
    change(tree.getroot())
    out = tmp_path / f"mutated-{sample.name}"
    tree.write(str(out), xml_declaration=True, encoding="utf-8")
    return out


def line_of(path: Path, xpath: str, index: int = 0) -> int:
    """The line of an element in a written file, found again by lxml."""
    return etree.parse(str(path)).getroot().findall(xpath)[index].sourceline


def set_text(xpath: str, value: str, index: int = 0) -> Callable[[etree._Element], None]:
    def change(root: etree._Element) -> None:
        root.findall(xpath)[index].text = value

    return change


def remove(xpath: str, index: int = 0) -> Callable[[etree._Element], None]:
    def change(root: etree._Element) -> None:
        el = root.findall(xpath)[index]
        el.getparent().remove(el)

    return change


FORMATION = """<formation numero="{numero}" datemaj="20240115">
  <domaine-formation><code-FORMACODE tag="principal">22403</code-FORMACODE></domaine-formation>
  <intitule-formation>Formation {numero}</intitule-formation>
  <objectif-formation>Apprendre</objectif-formation>
  <resultats-attendus>-</resultats-attendus>
  <contenu-formation>{contenu}</contenu-formation>
  <certifiante>0</certifiante>
  <contact-formation><coordonnees>{contact}<courriel>a@exemple.invalid</courriel></coordonnees></contact-formation>
  <parcours-de-formation>1</parcours-de-formation>
  <code-niveau-entree>0</code-niveau-entree>
  {certification}
  <action numero="{numero}_A">
    <rythme-formation>-</rythme-formation>
    <code-public-vise>80001</code-public-vise>
    <niveau-entree-obligatoire>0</niveau-entree-obligatoire>
    <modalites-alternance>-</modalites-alternance>
    <modalites-enseignement>0</modalites-enseignement>
    <conditions-specifiques>-</conditions-specifiques>
    <prise-en-charge-frais-possible>0</prise-en-charge-frais-possible>
    {lieu}
    <modalites-entrees-sorties>{es}</modalites-entrees-sorties>
    <session><periode><debut>20240901</debut><fin>20250630</fin></periode>
      <adresse-inscription>
        <adresse><ligne>1 rue X</ligne><codepostal>31000</codepostal><ville>Toulouse</ville></adresse>
      </adresse-inscription>
    </session>
    {action_extra}
  </action>
  <organisme-formation-responsable>
    <numero-activite>1</numero-activite>
    <SIRET-organisme-formation><SIRET>82422814200660</SIRET></SIRET-organisme-formation>
    <nom-organisme>AFPA</nom-organisme><raison-sociale>AFPA</raison-sociale>
    <coordonnees-organisme><coordonnees/></coordonnees-organisme>
    <contact-organisme><coordonnees/></contact-organisme>
  </organisme-formation-responsable>
</formation>
"""


def formation(numero: str = "15_1", **parts: str) -> str:
    """A small valid LHEO formation; ``parts`` fill its optional slots."""
    slots = dict(contenu="Contenu", contact="", certification="", lieu="", es="0", action_extra="")
    slots.update(parts)
    return FORMATION.format(numero=numero, **slots)


def lheo(*formations: str, ns: str = NS22) -> str:
    xmlns = f' xmlns="{ns}"' if ns else ""
    return f'<?xml version="1.0" encoding="utf-8"?>\n<lheo{xmlns}><offres>\n{"".join(formations)}</offres></lheo>\n'


def write(tmp_path: Path, text: str, name: str = "export.xml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


ADRESSE = "<adresse><ligne>{ligne}</ligne><codepostal>{cp}</codepostal><ville>{ville}</ville>{more}</adresse>"


def adresse(ligne="1 rue X", cp="31000", ville="Toulouse", more="") -> str:
    return ADRESSE.format(ligne=ligne, cp=cp, ville=ville, more=more)


def geoloc(latitude: str, longitude: str) -> str:
    return f"<geolocalisation><latitude>{latitude}</latitude><longitude>{longitude}</longitude></geolocalisation>"


# --------------------------------------------------------------------------
# The real samples
# --------------------------------------------------------------------------


def test_both_samples_read_without_problem():
    for sample in (PLAQUISTE, DAEU):
        records, problems = read(sample)
        assert problems == [], [str(p) for p in problems]
        assert len(records) == 1


def test_plaquiste_formation():
    record = only_record(PLAQUISTE)
    f = record.formation
    assert record.numero == "07_10"
    assert record.origin.path == str(PLAQUISTE)
    assert record.origin.line == line_of(PLAQUISTE, ".//{*}formation")
    assert f.datemaj == PartialDate(2017, 12, 13) and f.datecrea == PartialDate(2001, 5, 3)
    assert f.intitule_formation == "Titre professionnel plaquiste"
    assert f.objectif_formation.startswith("L'objectif est d'obtenir")  # leading blank dropped
    assert f.resultats_attendus is None  # "-"
    assert "isolation acoustique" in f.contenu_formation
    assert f.certifiante is True
    assert f.code_formacode == ["22403", "22402"]
    assert f.code_formacode_principal == "22403"
    assert f.code_nsf == ["233"] and f.code_rome == ["F1604"]
    assert (f.parcours_de_formation, f.code_niveau_entree, f.objectif_general_formation, f.code_niveau_sortie) == (
        3,
        1,
        6,
        4,
    )
    assert f.certifications == [Certification(code_rncp="320", code_certifinfo="80735")]
    assert f.url_formation == [
        "http://www.etoile.regioncentre.fr/GIP/accueiletoile/seformer/formation/detailformation/"
        "engineName/carifengine?screen=fiche_formation&idFormation=10"
    ]


def test_plaquiste_contact_formation():
    (contact,) = only_record(PLAQUISTE).formation.contact_formation
    assert (contact.civilite, contact.nom, contact.prenom) == ("Madame", "MARTIN", "Camille")
    assert contact.telfixe == ["01 00 00 00 01"] and contact.portable == ["01 00 00 00 02"]
    assert contact.courriel == "contact@exemple.invalid"
    assert contact.web == ["http://www.centre.afpa.fr"]
    a = contact.adresse
    assert a.lignes == ["AFPA de Veigné", "Le Passoir"]
    assert (a.codepostal, a.ville, a.departement, a.code_insee_commune, a.region, a.pays) == (
        "37250",
        "Veigné",
        "37",
        "37266",
        "24",
        "FR",
    )
    assert (a.geolocalisation.latitude, a.geolocalisation.longitude) == (47.3077865, 0.6867685)


def test_plaquiste_actions():
    f = only_record(PLAQUISTE).formation
    assert [a.numero for a in f.actions] == ["07_114782", "07_123324"]
    first, second = f.actions
    assert first.datemaj == PartialDate(2017, 12, 13)
    assert first.rythme_formation == "Continu temps plein, Modulaire"
    assert first.code_public_vise == ["83056"] and second.code_public_vise == ["80006"]
    assert first.niveau_entree_obligatoire is False
    assert first.modalites_alternance is None and first.conditions_specifiques is None
    assert first.modalites_enseignement is ModalitesEnseignement.PRESENTIEL
    assert first.prise_en_charge_frais_possible is False
    assert first.entrees_sorties_permanentes is False
    (lieu,) = first.lieux_de_formation
    assert lieu.nom == "AFPA de Veigné" and lieu.fax == ["01 00 00 00 04"]
    assert lieu.adresse.lignes == ["Le Passoir"] and lieu.adresse.geolocalisation.latitude == 47.286057
    assert second.lieux_de_formation[0].adresse.lignes == ["LE PASSOIR"]
    assert first.url_action[0].endswith("idFormation=10")
    assert first.adresse_information.ville == "Veigné"
    assert (first.restauration, first.hebergement, first.transport, first.acces_handicapes) == (
        "Restauration sur place",
        "Hébergement possible",
        "Accès parking possible",
        "Accès handicapé possible",
    )
    assert first.langue_formation == ["FR"] and first.modalites_recrutement == "Entretien, Tests"
    assert first.conventionnement is False and second.conventionnement is True
    assert (first.nombre_heures_centre, first.nombre_heures_total) == (None, None)
    assert (second.nombre_heures_centre, second.nombre_heures_entreprise, second.nombre_heures_total) == (585, 112, 697)
    assert [(o.code_financeur, o.nb_places_financees) for o in first.organismes_financeurs] == [("10", 4), ("5", 4)]
    assert [(o.code_financeur, o.nb_places_financees) for o in second.organismes_financeurs] == [("2", 5)]
    (formateur,) = first.organismes_formateurs
    assert formateur.siret_formateur == "82422814201874"
    assert formateur.raison_sociale_formateur == "AFPA de Veigné"
    assert formateur.contact_formateur[0].portable == ["01 00 00 00 05"]
    assert second.organismes_formateurs[0].contact_formateur[0].portable == ["01 00 00 00 08"]


def test_plaquiste_sessions():
    f = only_record(PLAQUISTE).formation
    assert [len(a.sessions) for a in f.actions] == [1, 1]
    first, second = f.sessions
    assert (first.numero, second.numero) == ("114782", "123324")
    assert (first.periode.debut, first.periode.fin) == (PartialDate(2017, 12, 4), PartialDate(2018, 6, 1))
    assert second.periode.debut == PartialDate(2017, 10, 30)
    assert first.periode_inscription is None
    # <debut>00000000</debut>: an unknown start, not an error
    assert second.periode_inscription.debut is None
    assert second.periode_inscription.fin == PartialDate(2018, 5, 22)
    assert first.etat_recrutement == 1
    assert first.adresse_inscription.lignes == ["AFPA de Veigné", "Le Passoir"]
    assert [e.numero for e in first.eligibilite_cpf] == ["130805", "1487", "167204", "18320"]
    assert [e.numero for e in second.eligibilite_cpf] == ["130805", "13352", "1487", "167204", "18320"]
    copanef = first.eligibilite_cpf[0]
    assert copanef.source.startswith("COPANEF")
    assert (copanef.debut_validite, copanef.fin_validite) == (PartialDate(2015, 1, 1), PartialDate(2019, 12, 31))
    coparef = second.eligibilite_cpf[1]  # written 2015-01-01 / 2018-12-31
    assert (coparef.debut_validite, coparef.fin_validite) == (PartialDate(2015, 1, 1), PartialDate(2018, 12, 31))
    assert f.eligible_cpf


def test_plaquiste_organisme_responsable():
    o = only_record(PLAQUISTE).formation.organisme_formation_responsable
    assert (o.numero, o.numero_activite, o.siret_organisme_formation) == ("07_1494", "24930181145", "82422814200660")
    assert o.nom_organisme == "DRAFPA d'Olivet"
    assert o.raison_sociale.startswith("Direction régionale Centre")
    assert o.coordonnees_organisme.adresse.lignes == ["Propriété de l'Archette", "Rue Basse Mouillère", "CS 50613"]
    assert o.coordonnees_organisme.fax == ["01 00 00 00 10"]
    (contact,) = o.contact_organisme
    assert contact.telfixe == ["01 00 00 00 11"] and contact.adresse.code_insee_commune == "45232"


def test_occitanie_daeu():
    f = only_record(DAEU).formation
    assert f.numero == "15_464888" and f.datemaj == PartialDate(2018, 9, 11)
    # &lt;br /&gt; is read back as the text <br />, kept for the templates to escape
    assert "Baccalauréat<br />- accéder" in f.objectif_formation
    assert f.contenu_formation is None
    assert f.code_formacode_principal == "15093" and f.code_rome == []
    assert f.certifications[0].code_rncp == "28217"
    (action,) = f.actions
    assert action.numero == "15_927411" and action.datecrea is None
    assert action.rythme_formation is None
    assert action.niveau_entree_obligatoire is True
    lieu = action.lieux_de_formation[0].adresse
    assert lieu.lignes == ["UT2J\nCampus du Mirail\n5 allées Antonio Machado"]
    assert lieu.region == "73"  # a pre-2016 region, kept as written
    assert action.adresse_information.lignes == []  # <ligne>-</ligne>
    assert action.code_modalite_pedagogique == ["96311"]
    assert (action.nombre_heures_centre, action.nombre_heures_total, action.duree_conventionnee) == (250, 250, 0)
    assert action.organismes_financeurs[0].nb_places_financees is None
    assert action.organismes_formateurs[0].numero == "15_13903"
    (session,) = action.sessions
    assert session.periode.fin == PartialDate(2019, 5, 24) and session.eligibilite_cpf == []
    o = f.organisme_formation_responsable
    assert o.numero == "19_7300144" and o.siret_organisme_formation == "19311383400389"
    assert o.renseignements_specifiques is None
    # <codepostal>00000</codepostal>, <ville>-</ville>, <code-INSEE-commune>00000</code-INSEE-commune>
    unknown = o.contact_organisme[0].adresse
    assert (unknown.codepostal, unknown.ville, unknown.code_insee_commune, unknown.lignes) == (None, None, None, [])
    assert unknown.pays == "FR"
    assert not f.eligible_cpf


@pytest.mark.parametrize("sample", [PLAQUISTE, DAEU], ids=["plaquiste", "daeu"])
def test_namespace_is_irrelevant(tmp_path, sample):
    text = sample.read_text(encoding="utf-8")
    assert f'xmlns="{NS22}"' in text
    variants = {
        "23": text.replace(NS22, NS23),
        "none": text.replace(f' xmlns="{NS22}"', ""),
        "prefixed": text.replace(f'xmlns="{NS22}"', f'xmlns:l="{NS23}"').replace("<", "<l:").replace("<l:/", "</l:")
        .replace("<l:?", "<?"),
    }
    expected = only_record(sample).formation
    for name, variant in variants.items():
        record = only_record(write(tmp_path, variant, f"{name}.xml"))
        assert record.formation == expected, name
        assert record.formation.model_dump() == expected.model_dump(), name


# --------------------------------------------------------------------------
# Mapping details
# --------------------------------------------------------------------------


def _fields(spec: reader.Spec) -> set[str]:
    """The model fields a table fills."""
    fields = {field for _attr, field, _clean in spec.attrs}
    for rule in spec.rules.values():
        if isinstance(rule, reader.Flat):
            fields |= _fields(rule.spec)
            continue
        fields.add(rule.field)
        if isinstance(rule, reader.Formacode):
            fields.add("code_formacode_principal")
    return fields


@pytest.mark.parametrize(
    "spec, model_class",
    [
        (reader.FORMATION, model.Formation),
        (reader.ACTION, model.Action),
        (reader.SESSION, model.Session),
        (reader.PERIODE, model.Periode),
        (reader.ORGANISME_FORMATION_RESPONSABLE, model.OrganismeFormationResponsable),
        (reader.ORGANISME_FORMATEUR, model.OrganismeFormateur),
        (reader.ORGANISME_FINANCEUR, model.OrganismeFinanceur),
        (reader.CERTIFICATION, model.Certification),
        (reader.COORDONNEES, model.Coordonnees),
        (reader.COORDONNEES_LIEU, model.Coordonnees),
        (reader.ADRESSE, model.Adresse),
        (reader.ADRESSE_LIEU, model.Adresse),
        (reader.GEOLOCALISATION, model.Geolocalisation),
    ],
    ids=lambda v: getattr(v, "__name__", ""),
)
def test_every_model_field_has_its_lheo_element(spec, model_class):
    assert _fields(spec) == set(model_class.model_fields)


def test_every_cpf_field_has_its_extra():
    fields = {field for field, _clean in reader.CpfExtras.EXTRAS.values()} | {"numero"}
    assert fields == set(model.EligibiliteCpf.model_fields)


def test_action_fields_of_inline_formation(tmp_path):
    extra = (
        "<prix-horaire-TTC>12,50</prix-horaire-TTC><prix-total-TTC>1 200</prix-total-TTC>"
        "<duree-indicative>3 mois</duree-indicative>"
        "<detail-conditions-prise-en-charge>Région</detail-conditions-prise-en-charge>"
        "<frais-restants>0 euro</frais-restants><modalites-pedagogiques>Ateliers</modalites-pedagogiques>"
        "<info-public-vise>Jeunes</info-public-vise>"
    )
    cert = "<certification><code-RS>RS5063</code-RS><code-CPF>236593</code-CPF></certification>"
    f = only_record(write(tmp_path, lheo(formation(es="1", action_extra=extra, certification=cert)))).formation
    (action,) = f.actions
    assert action.entrees_sorties_permanentes is True and f.entrees_sorties_permanentes
    assert action.prix_horaire_ttc == Decimal("12.50") and action.prix_total_ttc == Decimal("1200")
    assert action.duree_indicative == "3 mois" and action.frais_restants == "0 euro"
    assert action.detail_conditions_prise_en_charge == "Région"
    assert action.modalites_pedagogiques == "Ateliers" and action.info_public_vise == "Jeunes"
    assert action.lieux_de_formation == []  # in the organisme's premises
    assert f.certifications == [Certification(code_rs="RS5063", code_cpf="236593")]
    assert f.eligible_cpf


def test_unknown_placeholders_in_secondary_fields(tmp_path):
    contact = (
        "<ligne>-</ligne>"
        + adresse(ligne="-", cp="00000", ville="-", more="<departement>00</departement>"
                  "<code-INSEE-commune>00000</code-INSEE-commune><region>-</region><geolocalisation/>")
        + "<telfixe><numtel>-</numtel></telfixe>"
    )
    f = only_record(write(tmp_path, lheo(formation(contact=contact)))).formation
    (coordonnees,) = f.contact_formation
    a = coordonnees.adresse
    assert (a.lignes, a.codepostal, a.ville, a.departement, a.code_insee_commune, a.region) == (
        [],
        None,
        None,
        None,
        None,
        None,
    )
    assert a.geolocalisation is None and coordonnees.lignes == [] and coordonnees.telfixe == []


@pytest.mark.parametrize(
    "latitude, longitude",
    [("0", "0"), ("-", "1.4"), ("", ""), ("0", "1.4"), ("95", "1.4"), ("43.6", "abc"), ("nan", "1.4")],
)
def test_unusable_coordinates_of_a_contact_are_dropped(tmp_path, latitude, longitude):
    contact = adresse(more=geoloc(latitude, longitude))
    f = only_record(write(tmp_path, lheo(formation(contact=contact)))).formation
    assert f.contact_formation[0].adresse.geolocalisation is None
    assert f.contact_formation[0].adresse.ville == "Toulouse"


def test_usable_coordinates_are_kept_with_a_decimal_comma(tmp_path):
    lieu = f"<lieu-de-formation><coordonnees>{adresse(more=geoloc('43,6', '1,43'))}</coordonnees></lieu-de-formation>"
    f = only_record(write(tmp_path, lheo(formation(lieu=lieu)))).formation
    point = f.actions[0].lieux_de_formation[0].adresse.geolocalisation
    assert (point.latitude, point.longitude) == (43.6, 1.43)


def test_unknown_coordinates_of_a_lieu_are_dropped(tmp_path):
    lieu = f"<lieu-de-formation><coordonnees>{adresse(more=geoloc('0', '-'))}</coordonnees></lieu-de-formation>"
    f = only_record(write(tmp_path, lheo(formation(lieu=lieu)))).formation
    assert f.actions[0].lieux_de_formation[0].adresse.geolocalisation is None


@pytest.mark.parametrize("latitude, message", [("95", "90"), ("abc", "nombre")])
def test_unusable_coordinates_of_a_lieu_are_errors(tmp_path, latitude, message):
    lieu = f"<lieu-de-formation><coordonnees>{adresse(more=geoloc(latitude, '1.4'))}</coordonnees></lieu-de-formation>"
    path = write(tmp_path, lheo(formation(lieu=lieu)))
    records, (problem,) = read(path)
    assert records == []
    assert problem.field == "action[1]/lieu-de-formation[1]/coordonnees/adresse/geolocalisation/latitude"
    assert problem.origin.line == line_of(path, ".//{*}lieu-de-formation//{*}latitude")
    assert message in problem.message and latitude in problem.message


def test_elements_the_model_lacks_are_ignored(tmp_path):
    extra = "<equipement>Atelier</equipement><extras info='x'><extra info='y'>z</extra></extras><inconnu><a/></inconnu>"
    f = only_record(write(tmp_path, lheo(formation(action_extra=extra)))).formation
    assert f.actions[0].numero == "15_1_A"


def test_stray_markup_in_a_text_keeps_its_words(tmp_path):
    f = only_record(write(tmp_path, lheo(formation(contenu="Savoir <b>plaquer</b> vite")))).formation
    assert f.contenu_formation == "Savoir plaquer vite"


def test_comments_and_cdata_do_not_cut_a_text(tmp_path):
    f = only_record(write(tmp_path, lheo(formation(contenu="Avant<!-- note --> après <![CDATA[<br />]]>")))).formation
    assert f.contenu_formation == "Avant après <br />"


# --------------------------------------------------------------------------
# Problems of one formation
# --------------------------------------------------------------------------


@pytest.mark.parametrize("value, words", [("20181345", "mois impossible"), ("20180230", "jour impossible")])
def test_impossible_date(tmp_path, value, words):
    path = mutated(tmp_path, set_text(".//{*}session/{*}periode/{*}debut", value))
    records, (problem,) = read(path)
    assert records == []
    assert (problem.numero, problem.field) == ("07_10", "action[1]/session[1]/periode/debut")
    assert problem.origin == Origin(str(path), line_of(path, ".//{*}session/{*}periode/{*}debut"))
    assert words in problem.message and value in problem.message


def test_session_ending_before_it_starts_is_reported_at_fin(tmp_path):
    path = mutated(tmp_path, set_text(".//{*}session/{*}periode/{*}fin", "20170101", index=1))
    (problem,) = read(path)[1]
    assert problem.field == "action[2]/session[1]/periode/fin"
    assert problem.origin.line == line_of(path, ".//{*}session/{*}periode/{*}fin", index=1)
    assert "précède" in problem.message and "01/01/2017" in problem.message


def test_cpf_validity_date_error_names_its_extra(tmp_path):
    xpath = ".//{*}session/{*}extras[@info='eligibilite-cpf']/{*}extra[@info='fin-validite']"
    path = mutated(tmp_path, set_text(xpath, "20191332", index=2))
    (problem,) = read(path)[1]
    # the third CPF list of the first session is the session's fourth <extras>
    assert problem.field == "action[1]/session[1]/extras[4]/extra[@info='fin-validite']"
    assert problem.origin.line == line_of(path, xpath, index=2)


@pytest.mark.parametrize(
    "siret, words", [("1234", "14 chiffres"), ("82422814200661", "clé"), ("8242281420066A", "14 chiffres")]
)
def test_invalid_siret_of_the_organisme(tmp_path, siret, words):
    xpath = ".//{*}SIRET-organisme-formation/{*}SIRET"
    path = mutated(tmp_path, set_text(xpath, siret))
    records, (problem,) = read(path)
    assert records == []
    assert problem.field == "organisme-formation-responsable/SIRET-organisme-formation"
    assert problem.origin.line == line_of(path, ".//{*}SIRET-organisme-formation")
    assert words in problem.message and siret in problem.message


def test_invalid_siret_of_a_formateur(tmp_path):
    path = mutated(tmp_path, set_text(".//{*}SIRET-formateur/{*}SIRET", "82422814201875", index=1))
    (problem,) = read(path)[1]
    assert problem.field == "action[2]/organisme-formateur[1]/SIRET-formateur"


def test_missing_siret_of_the_organisme(tmp_path):
    path = mutated(tmp_path, remove(".//{*}SIRET-organisme-formation"))
    (problem,) = read(path)[1]
    assert problem.field == "organisme-formation-responsable/SIRET-organisme-formation"
    assert problem.message == "élément obligatoire manquant"
    assert problem.origin.line == line_of(path, ".//{*}organisme-formation-responsable")


def test_formation_without_numero(tmp_path):
    def drop_numero(root):
        del root.find(".//{*}formation").attrib["numero"]

    path = mutated(tmp_path, drop_numero)
    records, (problem,) = read(path)
    assert records == []
    assert (problem.numero, problem.field, problem.message) == ("-", "@numero", "attribut obligatoire manquant")
    assert problem.origin.line == line_of(path, ".//{*}formation")


@pytest.mark.parametrize("numero", ["07 10", "07/10", "../etc", "07_10:x", "é"])
def test_formation_with_invalid_ref(tmp_path, numero):
    path = mutated(tmp_path, lambda root: root.find(".//{*}formation").set("numero", numero))
    records, (problem,) = read(path)
    assert records == []
    assert (problem.numero, problem.field) == ("-", "@numero")
    assert "numéro invalide" in problem.message and numero in problem.message
    assert "{" not in problem.message  # the model's template is filled


def test_formation_without_intitule(tmp_path):
    path = mutated(tmp_path, remove(".//{*}intitule-formation"))
    (problem,) = read(path)[1]
    assert (problem.numero, problem.field) == ("07_10", "intitule-formation")
    assert problem.message == "élément obligatoire manquant"
    assert problem.origin.line == line_of(path, ".//{*}formation")


def test_formation_with_placeholder_intitule(tmp_path):
    path = mutated(tmp_path, set_text(".//{*}intitule-formation", " - "))
    (problem,) = read(path)[1]
    assert problem.field == "intitule-formation" and "« - »" in problem.message
    assert problem.origin.line == line_of(path, ".//{*}intitule-formation")


def test_lieu_de_formation_without_usable_address(tmp_path):
    path = mutated(tmp_path, set_text(".//{*}lieu-de-formation//{*}codepostal", "00000", index=1))
    (problem,) = read(path)[1]
    assert problem.field == "action[2]/lieu-de-formation[1]"
    assert problem.origin.line == line_of(path, ".//{*}lieu-de-formation", index=1)
    assert "lieu de formation n°1" in problem.message


def test_lieu_de_formation_without_coordonnees(tmp_path):
    path = write(tmp_path, lheo(formation(lieu="<lieu-de-formation/>")))
    (problem,) = read(path)[1]
    assert problem.field == "action[1]/lieu-de-formation[1]"


def test_action_without_session(tmp_path):
    path = mutated(tmp_path, remove(".//{*}session"))
    (problem,) = read(path)[1]
    assert (problem.field, problem.message) == ("action[1]/session", "élément obligatoire manquant")
    assert problem.origin.line == line_of(path, ".//{*}action")


def test_wrong_codes_name_their_element(tmp_path):
    def change(root):
        root.findall(".//{*}organisme-financeur/{*}code-financeur")[1].text = "xx"
        root.find(".//{*}code-ROME").text = "Z9999"
        root.findall(".//{*}action/{*}nombre-heures-total")[0].text = "beaucoup"

    path = mutated(tmp_path, change)
    records, problems = read(path)
    assert records == []
    fields = {p.field: p for p in problems}
    assert set(fields) == {
        "domaine-formation/code-ROME[1]",
        "action[1]/organisme-financeur[2]/code-financeur",
        "action[2]/nombre-heures-total",
    }
    assert fields["action[2]/nombre-heures-total"].message == "nombre entier attendu (valeur « beaucoup »)"
    assert fields["domaine-formation/code-ROME[1]"].origin.line == line_of(path, ".//{*}code-ROME")


def test_enum_message_is_french(tmp_path):
    path = mutated(tmp_path, set_text(".//{*}modalites-enseignement", "7"))
    (problem,) = read(path)[1]
    assert problem.field == "action[1]/modalites-enseignement"
    assert problem.message == "valeur inconnue (0, 1 ou 2 attendu) (valeur « 7 »)"


def test_long_values_are_truncated_in_messages(tmp_path):
    path = write(tmp_path, lheo(formation(action_extra=f"<nombre-heures-total>{'9x' * 500}</nombre-heures-total>")))
    (problem,) = read(path)[1]
    assert len(problem.message) < 150 and "…" in problem.message


def test_one_bad_formation_among_good_ones(tmp_path):
    bad = formation("15_2").replace("<debut>20240901</debut>", "<debut>20241301</debut>").replace(
        "<SIRET>82422814200660</SIRET>", "<SIRET>123</SIRET>"
    )
    path = write(tmp_path, lheo(formation("15_1"), bad, formation("15_3")))
    records, problems = read(path)
    assert [r.numero for r in records] == ["15_1", "15_3"]
    assert {p.numero for p in problems} == {"15_2"}
    assert sorted(p.field for p in problems) == [
        "action[1]/session[1]/periode/debut",
        "organisme-formation-responsable/SIRET-organisme-formation",
    ]
    text = path.read_text(encoding="utf-8").splitlines()
    formation_lines = [i for i, line in enumerate(text, 1) if "<formation " in line]
    assert [r.origin.line for r in records] == [formation_lines[0], formation_lines[2]]
    assert all(formation_lines[1] < p.origin.line < formation_lines[2] for p in problems)


def test_problem_prints_path_line_numero_field_message(tmp_path):
    path = mutated(tmp_path, set_text(".//{*}session/{*}periode/{*}debut", "20181345"))
    (problem,) = read(path)[1]
    line = line_of(path, ".//{*}session/{*}periode/{*}debut")
    assert str(problem).startswith(f"{path}:{line}: 07_10: action[1]/session[1]/periode/debut: mois impossible")


# --------------------------------------------------------------------------
# Problems of the whole file
# --------------------------------------------------------------------------


def whole_file_problem(path: Path) -> Problem:
    records, problems = read(path)
    assert records == [] and len(problems) == 1
    assert problems[0].numero == "-" and problems[0].origin.path == str(path)
    return problems[0]


@pytest.mark.parametrize("content", [b"", b"  \n\n"])
def test_empty_file(tmp_path, content):
    path = tmp_path / "vide.xml"
    path.write_bytes(content)
    assert whole_file_problem(path).message == "fichier vide"


def test_missing_file_and_folder(tmp_path):
    assert "lecture impossible" in whole_file_problem(tmp_path / "absent.xml").message
    assert "lecture impossible" in whole_file_problem(tmp_path).message


def test_truncated_file_keeps_the_formations_before_the_break(tmp_path):
    text = lheo(formation("15_1"), formation("15_2"), formation("15_3"))
    cut = text.index("<formation", text.index('numero="15_3"') - 20) + 200
    path = write(tmp_path, text[:cut])
    records, (problem,) = read(path)
    assert [r.numero for r in records] == ["15_1", "15_2"]
    assert "tronqué" in problem.message
    assert problem.origin.line == text[:cut].count("\n") + 1


def test_malformed_file(tmp_path):
    path = write(tmp_path, lheo(formation("15_1")).replace("</action>", "</actio>"))
    problem = whole_file_problem(path)
    assert "balises mal imbriquées" in problem.message
    assert problem.origin.line == next(i for i, l in enumerate(path.read_text().splitlines(), 1) if "</actio>" in l)


def test_undeclared_entity(tmp_path):
    path = write(tmp_path, lheo(formation("15_1", contenu="a&nbsp;b")))
    problem = whole_file_problem(path)
    assert "entité inconnue" in problem.message and "nbsp" in problem.message
    assert problem.origin.line == next(i for i, l in enumerate(path.read_text().splitlines(), 1) if "&nbsp;" in l)


def test_wrong_encoding(tmp_path):
    path = tmp_path / "latin1.xml"
    path.write_bytes(lheo(formation("15_1", contenu="Café")).encode("latin-1"))  # declares utf-8
    problem = whole_file_problem(path)
    assert "encodage" in problem.message
    assert problem.origin.line == next(i for i, l in enumerate(path.read_bytes().splitlines(), 1) if b"Caf" in l)


def test_declared_encoding_is_honoured(tmp_path):
    path = tmp_path / "latin1.xml"
    path.write_bytes(lheo(formation("15_1", contenu="Café")).replace("utf-8", "ISO-8859-1").encode("latin-1"))
    assert only_record(path).formation.contenu_formation == "Café"


def test_utf16_with_bom(tmp_path):
    path = tmp_path / "utf16.xml"
    path.write_bytes(lheo(formation("15_1", contenu="Café")).replace("utf-8", "UTF-16").encode("utf-16"))
    assert only_record(path).formation.contenu_formation == "Café"


@pytest.mark.parametrize(
    "text, root",
    [
        ("<html><body><formation numero='1'/></body></html>", "html"),
        ('<?xml version="1.0"?>\n<!-- export -->\n<x:offres xmlns:x="u"/>', "offres"),
        ("<!--" + "a" * 70_000 + "-->\n<catalogue><formation numero='1'/></catalogue>", "catalogue"),
    ],
    ids=["html", "prefixed", "after-long-comment"],
)
def test_not_an_lheo_export(tmp_path, text, root):
    path = write(tmp_path, text)
    problem = whole_file_problem(path)
    assert "n'est pas un export LHEO" in problem.message and f"<{root}>" in problem.message
    assert problem.origin.line == line_of(path, ".")  # the root's line


def test_lheo_without_formation(tmp_path):
    problem = whole_file_problem(write(tmp_path, lheo()))
    assert "aucune formation" in problem.message


# --------------------------------------------------------------------------
# Security: no DTD, no entity, nothing fetched
# --------------------------------------------------------------------------

SECRET = "SECRET-7f3a9c-never-to-be-read"
LONG_PROLOG = '<?xml version="1.0" encoding="utf-8"?>\n<!--' + "x" * 70_000 + "-->\n"


def leaked(items: list) -> bool:
    def texts(item):
        yield str(item)
        if isinstance(item, Record):
            yield item.formation.model_dump_json()

    return any(SECRET in t for item in items for t in texts(item))


def entity_documents(target: str) -> dict[str, str]:
    body = formation("15_1", contenu="&x;")
    return {
        "external": f'<!DOCTYPE lheo [<!ENTITY x SYSTEM "{target}">]>\n' + lheo(body).split("\n", 1)[1],
        "parameter": f'<!DOCTYPE lheo [<!ENTITY % p SYSTEM "{target}"> %p;]>\n'
        + lheo(formation("15_1")).split("\n", 1)[1],
        "external-dtd": f'<!DOCTYPE lheo SYSTEM "{target}">\n' + lheo(formation("15_1")).split("\n", 1)[1],
    }


@pytest.mark.parametrize("prolog", ["", LONG_PROLOG], ids=["at-the-top", "after-a-long-prolog"])
def test_doctype_with_external_entities_is_refused_and_nothing_read(tmp_path, prolog):
    secret = tmp_path / "secret.txt"
    secret.write_text(f"{SECRET}\n", encoding="utf-8")
    for name, document in entity_documents(secret.as_uri()).items():
        path = write(tmp_path, prolog + document, f"{name}.xml")
        items = list(read_lheo(path))
        assert not leaked(items), name
        (problem,) = items
        assert isinstance(problem, Problem) and problem.field == "DOCTYPE" and "DOCTYPE" in problem.message, name


def test_nothing_is_opened_even_past_the_prolog_scan(tmp_path):
    """An external entity naming a FIFO: opening it would block the reader forever."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    paths = []
    for name, document in entity_documents(fifo.as_uri()).items():
        paths.append(write(tmp_path, LONG_PROLOG + document, f"{name}.xml"))
    script = (
        "import sys; from pathlib import Path; from catalogue.sources.lheo import read_lheo\n"
        "for p in sys.argv[1:]: print(*(i.field for i in read_lheo(Path(p))))"
    )
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run(
        [sys.executable, "-c", script, *map(str, paths)], cwd=root, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["DOCTYPE"] * len(paths)


def billion_laughs() -> str:
    entities = '<!ENTITY lol0 "lol">' + "".join(
        f'<!ENTITY lol{i} "{("&lol%d;" % (i - 1)) * 10}">' for i in range(1, 10)
    )
    return f"<!DOCTYPE lheo [{entities}]>\n" + lheo(formation("15_1", contenu="&lol9;")).split("\n", 1)[1]


@pytest.mark.parametrize("prolog", ["", LONG_PROLOG], ids=["at-the-top", "after-a-long-prolog"])
def test_billion_laughs_is_refused_at_once(tmp_path, prolog):
    path = write(tmp_path, prolog + billion_laughs())
    started = time.perf_counter()
    (problem,) = list(read_lheo(path))
    assert time.perf_counter() - started < 1
    assert problem.field == "DOCTYPE" and "lol" not in problem.message


def test_doctype_line_is_given(tmp_path):
    path = write(tmp_path, '<?xml version="1.0"?>\n\n<!DOCTYPE lheo>\n' + lheo(formation()).split("\n", 1)[1])
    assert whole_file_problem(path).origin.line == 3


def test_utf16_doctype_is_refused(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text(SECRET, encoding="utf-8")
    document = entity_documents(secret.as_uri())["external"]
    path = tmp_path / "utf16.xml"
    path.write_bytes(('<?xml version="1.0" encoding="UTF-16"?>\n' + document).encode("utf-16"))
    items = list(read_lheo(path))
    assert not leaked(items) and [i.field for i in items] == ["DOCTYPE"]


# --------------------------------------------------------------------------
# Robustness and memory
# --------------------------------------------------------------------------

HOSTILE = ["", " ", "-", "0", "-1", "00000000", "99999999", "20180230", "NaN", "1e400", "١٢٣", "<br />",
           "a\u200bb", "x" * 25_000, "07_10", "82422814200660"]


@pytest.mark.parametrize("value", HOSTILE, ids=lambda v: repr(v[:12]))
def test_hostile_values_yield_problems_never_exceptions(tmp_path, value):
    def everywhere(root):
        for el in root.iter():
            if len(el) == 0 and el is not root:
                el.text = value
            for attr in el.attrib:
                el.set(attr, value)

    records, problems = read(mutated(tmp_path, everywhere))
    assert records or problems
    assert all(p.field and p.message and p.origin.line > 0 for p in problems)
    assert not [p.message for p in problems if "should" in p.message or "{" in p.message]  # French, filled
    assert not records or not problems  # one formation: a record or its problems


_PEAK = """
import sys
from pathlib import Path
from lxml import etree
from catalogue.sources.lheo import read_lheo
path, mode, limit = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
if mode == "dom":
    assert etree.parse(str(path)).getroot() is not None
else:
    for count, item in enumerate(read_lheo(path), 1):
        if count >= limit:
            break
# VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent across exec.
print(next(int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith("VmHWM:")))
"""


def _peak_rss(path, mode: str, limit: int = 0) -> int:
    """Peak resident memory of a fresh process reading ``path``: no other test's pages in it."""
    out = subprocess.run([sys.executable, "-c", _PEAK, str(path), mode, str(limit)], capture_output=True, text=True, check=True)
    return int(out.stdout.strip())


def test_memory_stays_flat_while_streaming(tmp_path):
    """Resident memory, not tracemalloc: libxml2's tree lives outside Python's allocator."""
    contenu = "Contenu détaillé de la formation. " * 30
    path = write(tmp_path, lheo(*(formation(f"15_{i}", contenu=contenu) for i in range(20_000))))
    first_tenth = _peak_rss(path, "stream", 2_000)
    whole = _peak_rss(path, "stream", 10**9)
    dom = _peak_rss(path, "dom")
    streamed_growth = whole - first_tenth  # reading 18,000 more formations
    assert streamed_growth < 8_000_000, streamed_growth
    assert dom - first_tenth > 10 * max(streamed_growth, 1_000_000), (dom, first_tenth, whole)

