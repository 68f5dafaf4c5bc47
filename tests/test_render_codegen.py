"""The pages' Jinja2 code generator (``render._CodeGenerator``) inlines attribute lookups and escapes:
each template here renders to the same text, or fails the same way, as with Jinja2's own generator."""

from __future__ import annotations

import enum

import pytest
from jinja2 import DictLoader, Environment, StrictUndefined, UndefinedError, pass_context
from markupsafe import Markup

from catalogue.render import _Environment


class Color(str, enum.Enum):
    RED = "<r&d>"


class Thing:
    name = "<b>\"O'Neil\" & co</b>"
    markup = Markup("<i>déjà sûr</i>")
    number = 42
    nothing = None
    color = Color.RED

    @property
    def items(self) -> list[str]:
        return ["<a>", "b&"]

    def __getitem__(self, key: str) -> str:
        return f"item <{key}>"


TEMPLATES = {
    "attr": "{{ t.name }}|{{ t.markup }}|{{ t.number }}|{{ t.nothing }}|{{ t.color }}"
    "|{{ t.items | join(', ') }}",
    "item": "{{ d.key }}|{{ d['key'] }}|{{ t.missing_attr }}|{{ d.items is defined }}",
    "nested": "{{ t.markup.upper() }}|{{ (t.name ~ t.markup) }}|{{ [t.name, t.markup] | join(' ') }}",
    "loop": "{% for x in t.items %}{{ x }}{% if not loop.last %},{% endif %}{% endfor %}",
    "macro": "{% macro m(v) %}<{{ v }}>{% endmacro %}{{ m(t.name) }}{{ m(t.markup) }}",
    "set": "{% set b %}{{ t.name }}<br>{% endset %}{{ b }}{{ b | trim }}",
    "filters": "{{ t.name | upper }}{{ t.name | e }}{{ t.name | safe }}{{ t.number | string }}",
    "autoescape": "{% autoescape false %}{{ t.name }}{% endautoescape %}{{ t.name }}",
    "calls": "{% macro m(a, b='<d>') %}[{{ a }}{{ b }}]{% endmacro %}{{ m(t.name) }}{{ m(t.name, b=t.number) }}"
    "{% for x in t.items %}{{ m(x) }}{{ m(x ~ '!') }}{% endfor %}{{ f(t.name) }}{{ ctxf(1) }}"
    "{% macro c() %}({{ caller() }}){% endmacro %}{% call c() %}{{ m(t.name) }}{% endcall %}{% set g = f %}{{ g(t.markup) }}{{ m(none) }}{{ m('\"') }}",
    "extends": "{% extends 'base' %}{% block body %}{{ t.name }}{{ super() }}{% endblock %}",
    "base": "<p>{% block body %}{{ t.markup }}{% endblock %}</p>",
}


@pass_context
def _from_context(context, value: int) -> str:
    return f"<{context['t'].number + value}>"


def _environments() -> tuple[Environment, Environment]:
    options = dict(loader=DictLoader(TEMPLATES), autoescape=True, undefined=StrictUndefined,
                   trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    environments = Environment(**options), _Environment(**options)
    for env in environments:
        env.globals.update(f=lambda s: s.upper(), ctxf=_from_context)
    return environments


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_same_text_as_jinja2(name: str) -> None:
    plain, ours = _environments()
    context = {"t": Thing(), "d": {"key": "<v>", "items": 1}}
    assert ours.get_template(name).render(context) == plain.get_template(name).render(context)
    assert "<b>" not in ours.get_template("attr").render(context)


def test_undefined_fails_the_same_way() -> None:
    plain, ours = _environments()
    for source in ("{{ t.nope.deeper }}", "{{ nope.x }}", "{{ d.absent.x }}"):
        errors = []
        for env in (plain, ours):
            with pytest.raises(UndefinedError) as info:
                env.from_string(source).render(t=Thing(), d={})
            errors.append(str(info.value))
        assert errors[0] == errors[1]

