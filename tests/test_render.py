"""The static pages: fiche, organisme, home, 404, sitemap, and a golden build of a tiny catalogue.

Regenerate the golden files after an intended change of the pages:
``UPDATE_GOLDEN=1 .venv/bin/pytest tests/test_render.py``, then review ``git diff tests/golden``.
"""

from __future__ import annotations

import datetime as dt
import difflib
import json
import os
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path
from xml.etree import ElementTree

import pytest

import catalogue.render as render  # registers the "site" sink before build() looks for sinks
from catalogue.build import BuildOptions, SinkContext, build
from catalogue.catalog import Catalog, summarize
from catalogue.model import Formation, Statut
from catalogue.problems import Origin
from catalogue.regions import geo
from catalogue.render import Site, SiteSink, lheo_text, make_environment
from catalogue.settings import Settings
from factories import (
    ADRESSE_MONTPELLIER,
    ADRESSE_TOULOUSE,
    ADRESSE_TOURS,
    SIRET_TOULOUSE,
    SIRET_VEIGNE,
    action,
    make_formation,
    organisme,
    session,
)

TODAY = dt.date(2026, 11, 29)
GOLDEN = Path(__file__).parent / "golden"
SITE_URL = "https://formations.exemple.fr"


# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------


class Page(HTMLParser):
    """A parsed page: its start tags with attributes, its visible text, its script bodies."""

    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.scripts: list[tuple[dict[str, str], str]] = []
        self._text: list[str] = []
        self._script: dict[str, str] | None = None
        self.feed(html)
        self.close()

    def handle_starttag(self, tag, attrs):
        attributes = {k: v or "" for k, v in attrs}
        self.tags.append((tag, attributes))
        if tag == "script":
            self._script = attributes
            self.scripts.append((attributes, ""))

    def handle_endtag(self, tag):
        if tag == "script":
            self._script = None

    def handle_data(self, data):
        if self._script is not None:
            attrs, body = self.scripts[-1]
            self.scripts[-1] = (attrs, body + data)
        else:
            self._text.append(data)

    @property
    def text(self) -> str:
        return " ".join(" ".join(self._text).split())

    def all(self, tag: str) -> list[dict[str, str]]:
        return [attrs for name, attrs in self.tags if name == tag]


def entry_of(formation: Formation, settings: Settings | None = None):
    return summarize(
        formation,
        origin=Origin("test.xml", 1),
        statut=Statut.VALIDEE,
        today=TODAY,
        settings=settings or Settings(),
        geo=geo(),
    )


def site(settings: Settings | None = None) -> Site:
    return Site(settings or Settings(), TODAY, geo())


def fiche(formation: Formation, settings: Settings | None = None) -> str:
    return site(settings).fiche(formation, entry_of(formation, settings))


def build_site(tmp_path: Path, formations: list[Formation], settings: Settings | None = None, **sink_options) -> Path:
    """Feed a SiteSink as a build would, and return the site folder."""
    settings = settings or Settings()
    sink = SiteSink(SinkContext(tmp_path, settings, TODAY, geo()), **sink_options)
    entries = []
    for formation in formations:
        entry = entry_of(formation, settings)
        sink.add(formation, entry)
        entries.append(entry)
    sink.finish(Catalog.of(entries, TODAY))
    return tmp_path / "site"


def action_sections(html: str) -> list[str]:
    return re.split(r'<section class="action', html)[1:]


# --------------------------------------------------------------------------
# The fiche
# --------------------------------------------------------------------------


def test_fiche_ends_with_its_date_and_ref():
    html = fiche(make_formation(numero="15_AF_0000000042", datemaj="20261102"))
    page = Page(html)
    assert "Date de mise à jour : 02/11/2026" in page.text
    assert "Ref : 15_AF_0000000042" in page.text
    start = html.index('<footer class="fiche-footer">')
    end = html.index("</footer>", start)
    assert "Date de mise à jour : 02/11/2026" in html[start:end] and "Ref : 15_AF_0000000042" in html[start:end]
    assert html[end + len("</footer>") : html.index("</article>")].strip() == ""  # the very bottom of the fiche


def test_archived_banner_only_when_archived():
    ended = make_formation(actions=[action(sessions=[session("20260105", "20261031")])])
    running = make_formation(actions=[action(sessions=[session("20260105", "20261231")])])
    assert entry_of(ended).archived and not entry_of(running).archived
    archived_page, current_page = Page(fiche(ended)), Page(fiche(running))
    assert "Archivée" in archived_page.text
    assert "référence reste valable" in archived_page.text
    assert any("banner-archived" in a.get("class", "") for a in archived_page.all("div"))
    assert "Archivée" not in current_page.text
    assert not any("banner-archived" in a.get("class", "") for a in current_page.all("div"))


def test_entrees_sorties_permanentes_shown_for_those_actions_only():
    formation = make_formation(
        actions=[
            action("15_A1", entrees_sorties_permanentes=True, sessions=[session("20260101", "20261231")]),
            action("15_A2", sessions=[session("20270104", "20270630")]),
        ]
    )
    esp, dated = action_sections(fiche(formation))
    assert "Entrées/sorties permanentes" in Page("<section" + esp).text
    assert "Entrées/sorties permanentes" not in Page("<section" + dated).text


def test_place_is_the_lieu_or_the_organisme_premises():
    formation = make_formation(
        org=organisme(adresse=ADRESSE_TOULOUSE),
        actions=[action("15_A1", lieux=[ADRESSE_MONTPELLIER]), action("15_A2", lieux=[])],
    )
    own, premises = (Page("<section" + s).text for s in action_sections(fiche(formation)))
    assert "12 rue de la Loge" in own and "34000 Montpellier" in own
    assert "Dans les locaux de l'organisme" not in own
    assert "Dans les locaux de l'organisme" in premises
    assert "5 allées Antonio Machado" in premises and "31500 Toulouse" in premises


def test_data_never_becomes_markup_or_script():
    formation = make_formation(
        intitule="<script>alert(1)</script> Électricien",
        objectif_formation="<img src=x onerror=alert(1)> objectif<br />suite",
        contenu_formation='<a href="javascript:alert(2)">clic</a>',
        url_formation=[
            "javascript:alert(3)",
            " JaVaScRiPt:alert(4)",
            "data:text/html,<script>x</script>",
            "https://ok.exemple.fr/a?b=1&c=2",
        ],
        contact_formation=[{"web": ["javascript:alert(5)"], "courriel": "x@y.fr\" onmouseover=\"alert(6)"}],
    )
    html = fiche(formation)
    page = Page(html)
    assert page.all("img") == []
    for attrs in (a for _, a in page.tags):
        assert not any(name.startswith("on") for name in attrs), attrs
    hrefs = [a.get("href", "") for a in page.all("a")]
    assert not any(h.strip().lower().startswith(("javascript:", "data:")) for h in hrefs)
    assert "https://ok.exemple.fr/a?b=1&c=2" in hrefs
    scripts = [attrs for attrs, _ in page.scripts]
    for attrs in scripts:
        assert attrs.get("type") == "application/ld+json" or attrs.get("src", "").startswith("/static/fiche.js")
    # The hostile text stays visible, as text.
    assert "<script>alert(1)</script> Électricien" in page.text
    assert "<img src=x onerror=alert(1)> objectif" in page.text
    assert "javascript:alert(3)" in page.text
    assert "objectif<br>suite" in html


def test_lheo_text_keeps_only_line_breaks():
    assert lheo_text("a<br />b<BR>c<br/>d<Br >e\nf") == "a<br>b<br>c<br>d<br>e<br>f"
    assert lheo_text("<b>gras</b> & <i>x</i>") == "&lt;b&gt;gras&lt;/b&gt; &amp; &lt;i&gt;x&lt;/i&gt;"
    assert lheo_text("<br onclick=x>") == "&lt;br onclick=x&gt;"
    assert lheo_text(None) == ""


def test_json_ld_is_a_course_with_one_instance_per_session():
    formation = make_formation(
        intitule="Soudeur </script><script>alert(1)</script>",
        actions=[
            action("15_A1", sessions=[session("20261201", "20270301", "S1"), session("20270401", "20270701", "S2")]),
            action("15_A2", lieux=[], sessions=[session("20270900", None, "S3")]),
        ],
    )
    page = Page(fiche(formation))
    bodies = [body for attrs, body in page.scripts if attrs.get("type") == "application/ld+json"]
    assert len(bodies) == 1
    assert "</" not in bodies[0]
    data = json.loads(bodies[0])
    assert data["@type"] == "Course"
    assert data["name"] == "Soudeur </script><script>alert(1)</script>"
    assert data["courseCode"] == formation.numero
    instances = data["hasCourseInstance"]
    assert [i["@type"] for i in instances] == ["CourseInstance"] * 3
    assert [i.get("startDate") for i in instances] == ["2026-12-01", "2027-04-01", "2027-09"]


def test_canonical_open_graph_and_breadcrumb():
    settings = Settings(site_url=SITE_URL)
    formation = make_formation(numero="15_AF_0000000007")
    page = Page(fiche(formation, settings))
    canonical = [a["href"] for a in page.all("link") if a.get("rel") == "canonical"]
    assert canonical == [f"{SITE_URL}/formations/15_AF_0000000007.html"]
    og = {a["property"]: a["content"] for a in page.all("meta") if "property" in a}
    assert og["og:url"] == canonical[0] and og["og:title"].startswith(formation.intitule_formation)
    crumbs = [a for a in page.all("nav") if a.get("aria-label") == "Fil d'Ariane"]
    assert len(crumbs) == 1
    html = fiche(formation, settings)
    start = html.index('aria-label="Fil d\'Ariane"')
    trail = html[start : html.index("</nav>", start)]
    assert trail.index("Occitanie") < trail.index(f"/organismes/{SIRET_TOULOUSE}.html") < trail.index('aria-current="page"')


def test_next_session_first_and_ended_ones_last():
    formation = make_formation(
        actions=[
            action(
                sessions=[
                    session("20250901", "20260630", "PAST"),
                    session("20270301", "20270630", "LATER"),
                    session(None, "20271231", "UNKNOWN"),
                    session("20270104", "20270330", "NEXT"),
                ]
            )
        ]
    )
    text = Page(fiche(formation)).text
    positions = [
        text.index("Du 04/01/2027 au 30/03/2027"),
        text.index("Du 01/03/2027 au 30/06/2027"),
        text.index("Date de début non communiquée"),
        text.index("Du 01/09/2025 au 30/06/2026"),
    ]
    assert positions == sorted(positions)


def test_dates_and_labels_in_french():
    formation = make_formation(
        actions=[
            action(
                sessions=[session("20270300", "20270000")],
                prix_total_ttc="1234.5",
                nombre_heures_total=910,
                modalites_enseignement=1,
                organismes_financeurs=[{"code_financeur": "2"}, {"code_financeur": "16"}],
            )
        ]
    )
    text = Page(fiche(formation)).text
    assert "Début en 03/2027, fin en 2027" in text
    assert "1 234,50 € TTC" in text  # Page.text folds the no-break spaces
    assert "910 heures" in text
    assert "Mixte : présentiel et à distance" in text
    assert "Conseil régional" in text and "OPCO" in text
    free = make_formation(actions=[action(prix_total_ttc="0")])
    assert "Prix Gratuit" in Page(fiche(free)).text


def test_fiche_is_deterministic():
    formation = make_formation(
        actions=[action(sessions=[session("20270104", "20270330", "B"), session("20270104", "20270330", "A")])]
    )
    assert fiche(formation).encode() == fiche(formation).encode()


# --------------------------------------------------------------------------
# The pages made from the whole catalogue
# --------------------------------------------------------------------------


def three_formations() -> list[Formation]:
    return [
        make_formation(numero="15_AF_0000000001", datemaj="20261102"),
        make_formation(
            numero="15_AF_0000000002",
            intitule="Comptabilité",
            datemaj="20250601",
            actions=[action(sessions=[session("20250105", "20250630")])],
        ),
        make_formation(
            numero="07_AF_0000000003",
            intitule="Agent de restauration",
            datemaj="20261120",
            org=organisme(siret=SIRET_VEIGNE, nom="AFPA de Veigné", adresse=ADRESSE_TOURS),
            actions=[action("07_A1", lieux=[ADRESSE_TOURS])],
        ),
    ]


def test_organisme_page_lists_current_and_archived_formations(tmp_path):
    root = build_site(tmp_path, three_formations())
    page = Page((root / "organismes" / f"{SIRET_TOULOUSE}.html").read_text())
    rows = re.findall(r"(15_AF_\d+) (.+?) Toulouse (\d\d/\d\d/\d{4}) (publiée|archivée)", page.text)
    assert rows == [
        ("15_AF_0000000001", "Électricien d'équipement du bâtiment", "02/11/2026", "publiée"),
        ("15_AF_0000000002", "Comptabilité", "01/06/2025", "archivée"),
    ]
    assert "07_AF_0000000003" not in page.text


def test_home_page(tmp_path):
    root = build_site(tmp_path, three_formations())
    page = Page((root / "index.html").read_text())
    assert "2 formations publiées" in page.text and "1 formation archivée" in page.text
    assert "2 organismes de formation" in page.text
    search = [f for f in page.all("form") if f.get("action") == "/recherche/"]
    assert search and search[0].get("method") == "get"
    assert any(i.get("name") == "q" for i in page.all("input"))
    assert any(f.get("action") == "/organismes/" and "data-siret-form" in f for f in page.all("form"))
    # Latest updates: current formations, newest first; the archived one is not among them.
    assert page.text.index("Agent de restauration") < page.text.index("Électricien")
    assert "Comptabilité" not in page.text
    assert "Occitanie" in page.text and "Centre-Val de Loire" in page.text


def test_organismes_list_is_paginated_by_initial(tmp_path, monkeypatch):
    monkeypatch.setattr(render, "ORGANISMES_PER_PAGE", 1)
    formations = [
        make_formation(numero=f"15_AF_{i}", org=organisme(siret=siret, nom=nom))
        for i, (siret, nom) in enumerate([(SIRET_TOULOUSE, "Université"), (SIRET_VEIGNE, "Usine école")])
    ]
    root = build_site(tmp_path, formations)
    first = Page((root / "organismes" / "u" / "index.html").read_text()).text
    second = Page((root / "organismes" / "u" / "2" / "index.html").read_text()).text
    assert "Université" in first and "Usine école" not in first.split("Organismes sous")[-1]
    assert SIRET_VEIGNE in second
    assert "2 organismes" in Page((root / "organismes" / "index.html").read_text()).text


def test_sitemap_is_an_index_of_absolute_urls_split_at_the_limit(tmp_path):
    settings = Settings(site_url=SITE_URL)
    root = build_site(tmp_path, three_formations(), settings, sitemap_max_urls=3)
    ns = {"s": "http://www.sitemaps.org/schemas/sitemap/0.9"}
    index = ElementTree.parse(root / "sitemap.xml").getroot()
    assert index.tag == "{http://www.sitemaps.org/schemas/sitemap/0.9}sitemapindex"
    parts = [loc.text for loc in index.findall("s:sitemap/s:loc", ns)]
    assert parts == [f"{SITE_URL}/sitemaps/sitemap-{n}.xml" for n in (1, 2, 3, 4)]  # 5 site pages + 3 fiches + 2 organismes, 3 a file
    urls = []
    for n in (1, 2, 3, 4):
        part = ElementTree.parse(root / "sitemaps" / f"sitemap-{n}.xml")
        chunk = [loc.text for loc in part.findall("s:url/s:loc", ns)]
        assert 0 < len(chunk) <= 3
        urls += chunk
    assert all(u.startswith(SITE_URL + "/") for u in urls)
    for ref in ("15_AF_0000000001", "15_AF_0000000002", "07_AF_0000000003"):
        assert f"{SITE_URL}/formations/{ref}.html" in urls
    assert f"{SITE_URL}/organismes/{SIRET_TOULOUSE}.html" in urls and f"{SITE_URL}/organismes/{SIRET_VEIGNE}.html" in urls


def test_404_and_publier_pages(tmp_path):
    root = build_site(tmp_path, three_formations(), Settings(contact_email="offre@carif.exemple.fr"))
    not_found = Page((root / "404.html").read_text())
    for name, attr in (("a", "href"), ("link", "href"), ("script", "src"), ("form", "action")):
        for attrs in not_found.all(name):
            if attr in attrs:
                assert attrs[attr].startswith(("/", "#", "mailto:")), attrs  # served at any depth
    publier = Page((root / "publier" / "index.html").read_text())
    assert "offre@carif.exemple.fr" in publier.text
    assert "Carif-Oref Occitanie" in publier.text and "Gip Alfa Centre-Val de Loire" in publier.text
    assert "où se déroule la formation" in publier.text
    assert "même référence" in publier.text


def test_every_page_is_csp_friendly_and_links_publier(tmp_path):
    root = build_site(tmp_path, three_formations())
    pages = sorted(root.rglob("*.html"))
    assert len(pages) >= 9
    for path in pages:
        html = path.read_text()
        page = Page(html)
        assert 'lang="fr"' in html
        assert "/publier/" in [a.get("href") for a in page.all("a")], path
        assert any(a.get("href") == "#contenu" for a in page.all("a")), path
        for _, attrs in page.tags:
            assert "style" not in attrs and not any(k.startswith("on") for k in attrs), (path, attrs)
        for attrs, body in page.scripts:
            assert attrs.get("type") == "application/ld+json" or (attrs.get("src") and not body.strip()), path
    assert (root / "static" / "catalogue.css").read_bytes() == (render.STATIC_DIR / "catalogue.css").read_bytes()


def test_site_is_byte_identical_whatever_the_input_order(tmp_path):
    formations = three_formations() + [
        make_formation(numero="15_AF_0000000000", org=organisme(adresse=ADRESSE_MONTPELLIER)),
    ]
    first = build_site(tmp_path / "a", formations)
    second = build_site(tmp_path / "b", list(reversed(formations)))
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(second) for p in second.rglob("*") if p.is_file())
    for name in files:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name


def test_paths_stay_under_the_site(tmp_path):
    sink = SiteSink(SinkContext(tmp_path, Settings(), TODAY, geo()))
    with pytest.raises(ValueError):
        sink._file("..", "evil.html")
    for ref in ("../etc", "a/b", "..", ""):
        with pytest.raises(ValueError):
            render._safe_ref(ref)
    with pytest.raises(ValueError):
        render._safe_siret("123/../../x")


def test_base_template_serves_other_pages():
    env = make_environment(Settings(site_name="Offre Occitanie"))
    html = env.from_string(
        '{% extends "base.html" %}{% set nav = "recherche" %}'
        "{% block head %}<meta name=x>{% endblock %}{% block content %}<p>ici</p>{% endblock %}"
        '{% block scripts %}<script src="/static/recherche.js"></script>{% endblock %}'
    ).render(title="Rechercher")
    page = Page(html)
    assert "Offre Occitanie" in page.text and "ici" in page.text
    assert [a for a in page.all("a") if a.get("href") == "/recherche/" and a.get("aria-current") == "page"]
    assert html.index("<meta name=x>") < html.index("</head>")
    assert html.index("/static/recherche.js") > html.index("</footer>")


# --------------------------------------------------------------------------
# Golden build of a tiny real catalogue
# --------------------------------------------------------------------------

_VERSION_RE = re.compile(r"\?v=[0-9a-f]{10}")


def _normalised(path: Path) -> str:
    # Static files' version hashes change with every stylesheet tweak; the pages' content is what is pinned here.
    return _VERSION_RE.sub("?v=…", path.read_text(encoding="utf-8"))


def _golden_files(root: Path) -> list[str]:
    return sorted(
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file() and p.relative_to(root).parts[0] != "static"
    )


def test_golden_site(tmp_path):
    content = GOLDEN / "content"
    report = build(
        BuildOptions(content=(content,), build_dir=tmp_path, today=TODAY),
        Settings(),
        sinks=["site"],
    )
    assert report.errors == [] and report.published == 5 and report.archived == 3
    site_dir = tmp_path / "site"
    expected_dir = GOLDEN / "expected"
    actual = _golden_files(site_dir)
    if os.environ.get("UPDATE_GOLDEN"):
        shutil.rmtree(expected_dir, ignore_errors=True)
        for name in actual:
            target = expected_dir / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(_normalised(site_dir / name), encoding="utf-8")
    expected = _golden_files(expected_dir)
    assert actual == expected, (
        f"fichiers en trop : {sorted(set(actual) - set(expected))}, manquants : {sorted(set(expected) - set(actual))} "
        "(UPDATE_GOLDEN=1 pour régénérer)"
    )
    for name in actual:
        got, want = _normalised(site_dir / name), (expected_dir / name).read_text(encoding="utf-8")
        if got != want:
            diff = difflib.unified_diff(
                want.splitlines(), got.splitlines(), f"expected/{name}", f"built/{name}", lineterm="", n=2
            )
            shown = "\n".join(list(diff)[:200])
            pytest.fail(f"{name} differs from tests/golden/expected (UPDATE_GOLDEN=1 to accept):\n{shown}")
    for path in (site_dir / "static").iterdir():
        assert path.read_bytes() == (render.STATIC_DIR / path.name).read_bytes()


def test_publier_shows_a_complete_yaml_example_that_reads_without_problem(tmp_path):
    import html as html_module

    from catalogue.problems import Problem
    from catalogue.sources.yaml import read_yaml

    root = build_site(tmp_path, three_formations())
    page = (root / "publier" / "index.html").read_text()
    pre = page.split('class="exemple-yaml"', 1)[1] if "exemple-yaml" in page else "<code></code>"
    example = html_module.unescape(pre.split("<code>", 1)[1].split("</code>", 1)[0])
    assert "formations:" in example and "statut:" in example
    path = tmp_path / "exemple.yaml"
    path.write_text(example, encoding="utf-8")
    items = list(read_yaml(path))
    assert items and not [i for i in items if isinstance(i, Problem)]
