"""Where a command's data lives: ``$PERSONAE_HOME``, by default the per-user data
folder, and the one line a command prints when it would start a new, empty home there."""

from __future__ import annotations

from runtime.settings import Settings


def new_home_notice(settings: Settings) -> str | None:
    """One line saying that the command is about to start a new, empty home, naming the
    folder: the embedded database is not there yet (or, with a database URL, the home
    that keeps the embedded vector store does not exist). None otherwise, and when every
    store is a server's."""
    home = settings.home
    if settings.database_url is None:
        fresh = not (home / "pg").exists()
    else:
        fresh = settings.qdrant_url is None and not home.exists()
    if not fresh:
        return None
    return (
        f"personae: no data under {home} yet: starting a new, empty home there "
        "(PERSONAE_HOME names another folder)"
    )
