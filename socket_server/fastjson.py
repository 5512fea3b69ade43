"""The JSON module Socket.IO packets are encoded and decoded with: orjson where it can,
the standard library where orjson refuses, so that what is accepted and what is sent
stay exactly what python-engineio's own module would accept and send (lone surrogates,
integers past 64 bits, ``NaN`` literals), only faster for everything else."""

from __future__ import annotations

import json as _std
import re
from typing import Any

import orjson
from engineio import json as _engineio_json


def dumps(obj: Any, **kwargs: Any) -> str:
    """Compact JSON text; ``kwargs`` (python-socketio passes ``separators``) apply only
    when the standard library has to encode."""
    try:
        return orjson.dumps(obj).decode()
    except (TypeError, orjson.JSONEncodeError):
        kwargs.setdefault("separators", (",", ":"))
        return _std.dumps(obj, **kwargs)


# orjson reads an integer past 64 bits as a float, silently; such text goes to the
# standard module (which refuses integers of more than 100 digits)
_LONG_NUMBER = re.compile(r"\d{19}")


def loads(text: str | bytes, **kwargs: Any) -> Any:
    raw = text.decode("utf-8", "surrogatepass") if isinstance(text, bytes) else text
    if _LONG_NUMBER.search(raw) is None:
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass  # orjson refuses some inputs the standard module takes; let it decide
    return _engineio_json.loads(raw, **kwargs)
