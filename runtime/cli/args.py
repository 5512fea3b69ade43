"""Argument types, the parser and the output files of the ``personae`` command line.

Every bad argument is one line on stderr naming the flag, and exit status 2 — never a
traceback, and never a silently empty result.
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn, TextIO

from runtime.errors import RuntimeLayerError

USAGE_EXIT = 2


class UsageError(RuntimeLayerError):
    """A bad argument found once the command runs (a folder that does not exist...):
    reported in one line, exit status 2."""


class CliInputError(RuntimeLayerError):
    """Input a command cannot use (a bad line of an input file, a missing setting): one
    line naming it, exit status 1."""


VERBOSE_HELP = (
    "show every log line on stderr (default: warnings only; the embedded servers' logs go "
    "to $PERSONAE_HOME/personae.log)"
)


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line: ``personae memory search: ...``.

    Sub-commands made with ``add_subparsers`` are of this class too, so each takes
    ``-v`` as well: ``personae -v personas list`` and ``personae personas list -v`` are
    the same command (the top-level parser sets the default)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # SUPPRESS: a sub-command without -v leaves the value the line set before it
        self.add_argument(
            "-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help=VERBOSE_HELP
        )

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: {message} (see --help)", file=sys.stderr)
        raise SystemExit(USAGE_EXIT)


def int_in(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse type: an integer in ``low..high`` (no upper bound when ``high`` is None)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < low or (high is not None and value > high):
            bound = f"from {low} to {high}" if high is not None else f"at least {low}"
            raise argparse.ArgumentTypeError(f"{value} is out of range: must be {bound}")
        return value

    parse.__name__ = "integer"  # argparse names the type in its messages
    return parse


def bounded_text(max_length: int) -> Callable[[str], str]:
    """An argparse type: non-blank text of at most ``max_length`` characters, no NUL."""

    def parse(value: str) -> str:
        if not value.strip():
            raise argparse.ArgumentTypeError("must not be empty")
        if len(value) > max_length:
            raise argparse.ArgumentTypeError(f"is {len(value)} characters; at most {max_length}")
        if "\x00" in value:
            raise argparse.ArgumentTypeError("must not contain NUL characters")
        return value

    parse.__name__ = "text"
    return parse


positive_int = int_in(1)
non_negative_int = int_in(0)


def uuid_arg(text: str) -> uuid.UUID:
    """An argparse type: a UUID."""
    try:
        return uuid.UUID(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a UUID: {text!r}") from None


def writable_file(path: Path) -> Path:
    """Refuse an output file whose folder does not exist, before any work is done."""
    folder = path.parent
    if not folder.is_dir():
        raise UsageError(f"cannot write {path}: the folder {folder} does not exist")
    if path.is_dir():
        raise UsageError(f"cannot write {path}: it is a folder")
    return path


def write_json_lines(lines: Sequence[dict[str, Any]], output: Path | None, what: str) -> None:
    """Write one JSON object a line to ``output`` (saying so on stderr), or to stdout."""

    def write(out: TextIO) -> None:
        out.writelines(json.dumps(line, ensure_ascii=False) + "\n" for line in lines)

    if output is None:
        write(sys.stdout)
        return
    with output.open("w", encoding="utf-8") as handle:
        write(handle)
    print(f"wrote {what} to {output}", file=sys.stderr)
