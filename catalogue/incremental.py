"""Reusing the previous build's files in an incremental build.

A build never writes into the published folder: what did not change is
hard-linked from it into the new folder (a link costs one system call, the
same bytes for free), and every changed file is written anew. Since a linked
file is shared by two builds, nothing may ever open one for writing in place.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

#: Errors after which a copy replaces the link (another device, a file system without links).
_NO_LINK = {errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EOPNOTSUPP}


def link_file(source: Path, target: Path) -> None:
    """Hard-link ``source`` as ``target`` (a copy where links are impossible), creating its folder."""
    try:
        os.link(source, target)
        return
    except FileNotFoundError:
        if source.exists() or target.parent.exists():
            raise
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        if exc.errno not in _NO_LINK:
            raise
        shutil.copy2(source, target)
        return
    try:
        os.link(source, target)
    except OSError as exc:
        if exc.errno not in _NO_LINK:
            raise
        shutil.copy2(source, target)


def link_tree(source: Path, target: Path) -> int:
    """Link every file under ``source`` to the same place under ``target``; returns how many."""
    count = 0
    for folder, _dirs, files in os.walk(source):
        relative = os.path.relpath(folder, source)
        destination = target / relative if relative != "." else target
        destination.mkdir(parents=True, exist_ok=True)
        for name in files:
            link_file(Path(folder) / name, destination / name)
            count += 1
    return count
