"""Folders only their owner may read: ``$PERSONAE_HOME`` holds chat text (the vector
store's files, the embedded databases, logs), so it is made 0700 whatever the umask,
and so is every folder Personae creates on the way to it; an existing home others could
list is narrowed."""

from __future__ import annotations

import os
import stat
from pathlib import Path

PRIVATE_DIR = 0o700


def private_folder(path: Path) -> Path:
    """Create ``path`` and its missing parents as 0700 (set after creating, so the
    umask cannot widen or narrow it); an existing ``path`` this user owns that others
    may list or write is narrowed to 0700 (0711 where others could pass through).
    Returns ``path``."""
    missing = []
    at = path
    while not at.exists():
        missing.append(at)
        if at.parent == at:
            break
        at = at.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=PRIVATE_DIR)
        except FileExistsError:
            continue  # made meanwhile by another process
        os.chmod(folder, PRIVATE_DIR)
    info = path.stat()
    mode = stat.S_IMODE(info.st_mode)
    if info.st_uid == os.getuid() and mode & 0o066:
        # others lose listing and writing; pass-through stays (embedded PostgreSQL, run
        # as a system user of its own under root, passes through to its data folder)
        os.chmod(path, mode & ~0o066)
    return path
