"""Readers: one per input format, each streaming ``Record``s and ``Problem``s.

A reader never yields a half-parsed record: a formation is either a whole,
validated :class:`~catalogue.model.Formation` or one or more problems naming
its file, line, numero and field.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Optional, Union

from ..model import Formation, Statut
from ..problems import Origin, Problem

#: Suffixes read, and by which reader.
XML_SUFFIXES = (".xml",)
YAML_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class Record:
    """One formation read from a source, with its workflow state."""

    origin: Origin
    formation: Formation
    statut: Statut = Statut.VALIDEE
    #: Why the Carif-Oref managers refused it (YAML submissions only).
    motif_refus: Optional[str] = None

    @property
    def numero(self) -> str:
        return self.formation.numero


Item = Union[Record, Problem]


def discover(paths: Iterable[Path]) -> list[Path]:
    """Every LHEO and YAML file under ``paths`` (files or folders), in a stable order."""
    found: set[Path] = set()
    for path in paths:
        if path.is_dir():
            for child in path.rglob("*"):
                if child.is_file() and child.suffix.lower() in XML_SUFFIXES + YAML_SUFFIXES and not _hidden(child, path):
                    found.add(child)
        else:
            found.add(path)
    return sorted(found, key=lambda p: p.as_posix())


def _hidden(child: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in child.relative_to(root).parts)


def read_file(path: Path) -> Iterator[Item]:
    """Records and problems of one file, by its suffix."""
    from .lheo import read_lheo
    from .yaml import read_yaml

    suffix = path.suffix.lower()
    if not path.is_file():
        yield Problem(Origin(str(path), 0), "-", "-", "fichier introuvable")
    elif suffix in XML_SUFFIXES:
        yield from read_lheo(path)
    elif suffix in YAML_SUFFIXES:
        yield from read_yaml(path)
    else:
        yield Problem(Origin(str(path), 0), "-", "-", "format inconnu : .xml (LHEO) ou .yaml attendu")


def read_sources(paths: Iterable[Path]) -> Iterator[Item]:
    for path in discover(paths):
        yield from read_file(path)
