"""Checking answers against the server's OpenAPI document with ``jsonschema``
(Draft 2020-12, formats checked): the schema a route documents for a status."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker

FORMATS = FormatChecker()


@FORMATS.checks("date-time", raises=ValueError)
def _date_time(value: object) -> bool:
    # jsonschema checks date-time only with an optional package; RFC 3339 needs a zone
    if not isinstance(value, str):
        return True
    return dt.datetime.fromisoformat(value).tzinfo is not None


def response_schema(
    doc: dict[str, Any], path: str, method: str, status: int, media: str = "application/json"
) -> dict[str, Any] | None:
    """The schema ``doc`` gives the body of ``status`` (None: no body documented); fails
    when the status itself is not documented for the route."""
    responses = doc["paths"][path][method.lower()]["responses"]
    assert str(status) in responses, f"{method} {path}: {status} not documented"
    content = responses[str(status)].get("content")
    if content is None:
        return None
    assert media in content, f"{method} {path} {status}: {media} not documented"
    if media == "text/event-stream":
        return dict(content[media]["x-itemSchema"])
    return dict(content[media]["schema"])


def violations(doc: dict[str, Any], schema: dict[str, Any], value: Any) -> list[str]:
    """How ``value`` breaks ``schema`` (whose ``$ref``s point into ``doc``), if at all."""
    rooted = {**schema, "components": doc["components"]}
    validator = Draft202012Validator(rooted, format_checker=FORMATS)
    return [
        f"{'/'.join(str(p) for p in e.absolute_path) or '$'}: {e.message}"
        for e in sorted(validator.iter_errors(value), key=lambda e: list(e.absolute_path))
    ]


def check_answer(
    doc: dict[str, Any], path: str, method: str, status: int, body: Any, media: str
) -> list[str]:
    """How an answer breaks what ``doc`` documents for it: its status, then its body (a
    JSON value, or the raw bytes of a server-sent event stream)."""
    schema = response_schema(doc, path, method, status, media)
    if schema is None:
        return [] if not body else [f"{status}: a body where none is documented"]
    if media != "text/event-stream":
        return violations(doc, schema, body)
    events = [line.removeprefix("data: ") for line in body.decode().split("\n\n") if line]
    problems = [] if events and events[-1] == "[DONE]" else ["the stream does not end [DONE]"]
    for i, event in enumerate(e for e in events if e != "[DONE]"):
        problems += [f"event {i}: {p}" for p in violations(doc, schema, json.loads(event))]
    return problems
