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
