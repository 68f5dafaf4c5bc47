"""The fiche's shortcuts say what the plain code they replace says, on hostile text.

``lheo_text`` and ``plain_text`` skip their regexes when the text cannot match,
``is_http_url`` tests its characters with one regex, and the JSON-LD's street
lines are made without building an ``Adresse``: each against the plain version.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

import pytest
from markupsafe import Markup, escape

from catalogue import render
from catalogue.model import Adresse

TEXTS = [
    "",
    "   ",
    "Une ligne",
    "Deux\nlignes",
    "CR\rseul",
    "CRLF\r\nfin",
    "Balise &lt;br /&gt; lue",
    "<br>",
    "<BR/>\n suivi",
    "< br >",
    "&lt;br&gt;",
    "a &lt; b &gt; c",
    "<script>alert(1)</script>",
    "ligne\n\n\nespacée",
    "\u2028séparateur Unicode\u2029",
    "tab\tet\x0bvt",
    " \n bords \r\n ",
    "x<br/>\r\ny",
]


def lheo_text_plain(value: str) -> Markup:
    if not value:
        return Markup("")
    text = str(escape(value.strip()))
    text = render._BR_RE.sub("<br>", text)
    text = render._NEWLINE_RE.sub("<br>", text)
    return Markup(text)


def plain_text_plain(value: str) -> str:
    if not value:
        return ""
    text = re.sub(r"<\s*br\s*/?\s*>", " ", value, flags=re.IGNORECASE)
    return " ".join(text.split())


def is_http_url_plain(value: Any) -> bool:
    if not isinstance(value, str) or any(c.isspace() or ord(c) < 32 for c in value.strip()):
        return False
    try:
        parts = urlsplit(value.strip())
    except ValueError:
        return False
    return parts.scheme.lower() in ("http", "https") and bool(parts.netloc)


@pytest.mark.parametrize("text", TEXTS)
def test_lheo_text_is_the_plain_one(text):
    assert render.lheo_text(text) == lheo_text_plain(text)


@pytest.mark.parametrize("text", TEXTS)
def test_plain_text_is_the_plain_one(text):
    assert render.plain_text(text) == plain_text_plain(text)


@pytest.mark.parametrize(
    "url",
    [
        "https://exemple.fr/page",
        " http://exemple.fr ",
        "http://exemple.fr/a b",
        "http://exemple.fr/\x07",
        "http://exemple.fr/\u00a0",
        "http://exemple.fr/\u2003",
        "http://exemple.fr/\x1c",
        "javascript:alert(1)",
        "http://[::1",
        "www.exemple.fr",
        "",
        None,
        42,
    ],
)
def test_http_url_is_the_plain_test(url):
    assert render.is_http_url(url) == is_http_url_plain(url)


def test_no_character_tells_the_two_url_tests_apart():
    for code in range(0x3100):
        url = f"https://exemple.fr/{chr(code)}x"
        assert render.is_http_url(url) == is_http_url_plain(url), hex(code)


@pytest.mark.parametrize(
    "lignes",
    [
        [],
        ["12 rue des Lilas"],
        ["  bâtiment B  ", "-", " 3 allée\nescalier 2 "],
        ["\n\n", "a\r\nb\rc", " - "],
        ["\u2028 ligne \u00a0", "\x1c"],
    ],
)
def test_street_lines_are_those_of_an_address_of_these_lignes(lignes):
    adresse = Adresse(lignes=lignes, codepostal="75001", ville="Paris")
    assert render._lines_of(adresse.lignes) == render.address_lines(Adresse(lignes=adresse.lignes))
