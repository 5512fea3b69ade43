"""Folders only their owner may read: ``$PERSONAE_HOME`` holds chat text (the vector
store's files, the embedded databases, logs), so it is made 0700 whatever the umask,
and so is every folder Personae creates on the way to it."""

from __future__ import annotations

import os
import stat
from pathlib import Path

PRIVATE_DIR = 0o700


def private_folder(path: Path) -> Path:
    """Create ``path`` and its missing parents as 0700 (set after creating, so the
    umask cannot widen or narrow it); an existing ``path`` this user owns that others
    may enter or read is narrowed to 0700. Returns ``path``."""
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
    if info.st_uid == os.getuid() and stat.S_IMODE(info.st_mode) & 0o077:
        os.chmod(path, stat.S_IMODE(info.st_mode) & ~0o077)
    return path
