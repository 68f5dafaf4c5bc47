"""Where a record came from, and what is wrong with it.

Every reader, rule and build phase reports through :class:`Problem`, so that
every message has the same shape: ``path:line: numero: field: message``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


@dataclass(frozen=True, order=True)
class Origin:
    """A place in an input file (1-based line; 0 when unknown)."""

    path: str
    line: int = 0

    def __str__(self) -> str:
        return f"{self.path}:{self.line}"


class Severity(str, Enum):
    ERROR = "erreur"
    WARNING = "avertissement"


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the input.

    ``numero`` is the formation's Ref, or ``-`` when the formation has none
    (or the file could not be read far enough to know it). ``field`` names
    the field in LHEO terms (``action[1]/session[2]/periode/fin``), or ``-``.
    """

    origin: Origin
    numero: str
    field: str
    message: str
    severity: Severity = Severity.ERROR

    def __str__(self) -> str:
        return f"{self.origin}: {self.numero or '-'}: {self.field or '-'}: {self.message}"

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR


class InvalidInput(Exception):
    """Raised by a build that refuses its input; carries every problem found."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


#: French wording of pydantic's error types; our own validators already speak French.
_PYDANTIC_FR = {
    "missing": "champ obligatoire manquant",
    "extra_forbidden": "champ inconnu",
    "string_type": "texte attendu",
    "string_pattern_mismatch": "valeur invalide {value} (format attendu : {pattern})",
    "string_too_long": "texte trop long ({max_length} caractères au plus)",
    "too_long": "trop d'éléments ({max_length} au plus)",
    "too_short": "au moins {min_length} élément(s) attendu(s)",
    "int_parsing": "nombre entier attendu, pas {value}",
    "int_type": "nombre entier attendu",
    "int_from_float": "nombre entier attendu, pas {value}",
    "float_parsing": "nombre attendu, pas {value}",
    "float_type": "nombre attendu",
    "decimal_parsing": "nombre décimal attendu, pas {value}",
    "bool_parsing": "booléen attendu (0/1, oui/non), pas {value}",
    "bool_type": "booléen attendu (0/1, oui/non)",
    "greater_than_equal": "valeur {value} trop petite (au moins {ge})",
    "less_than_equal": "valeur {value} trop grande (au plus {le})",
    "enum": "valeur {value} inconnue (attendu : {expected})",
    "list_type": "liste attendue",
    "model_type": "bloc de champs attendu",
    "dict_type": "bloc de champs attendu",
    "date_from_datetime_parsing": "date attendue",
}


def french_message(error: dict) -> str:
    """A pydantic error (one item of ``ValidationError.errors()``) in French, with the value."""
    template = _PYDANTIC_FR.get(error.get("type", ""))
    if template is None:
        return str(error.get("msg", "valeur invalide")).removeprefix("Value error, ")
    context = dict(error.get("ctx") or {})
    value = error.get("input")
    context["value"] = repr(value[:60] + "…" if isinstance(value, str) and len(value) > 60 else value)
    try:
        return template.format(**context)
    except (KeyError, IndexError):
        return template
