"""What every view shares: the :class:`View` base and the wire types of times and
numbers.

A view is a response body: a frozen pydantic model that serialises itself to JSON-ready
data (:meth:`View.wire`) and describes itself as a JSON Schema, so the OpenAPI document
is generated from the same classes that write the bodies."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, PlainSerializer, WithJsonSchema


def _isoformat(value: dt.datetime) -> str:
    return value.isoformat()


Timestamp = Annotated[
    dt.datetime,
    # isoformat, not pydantic's own format (which writes UTC as "Z"): clients parse the
    # "+00:00" the API has always sent
    PlainSerializer(_isoformat, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]
"""A point in time, written as ``datetime.isoformat()``."""

Number = Annotated[int | float, WithJsonSchema({"type": "number"})]
"""A number sent as it was computed: an int stays an int (a ``float`` field would send
``3`` as ``3.0``)."""


class View(BaseModel):
    """A response body or a part of one. Every field is always sent (a field that is
    sometimes absent belongs to a second view), so the schema marks them all required."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        json_schema_serialization_defaults_required=True,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
    )

    def wire(self) -> dict[str, Any]:
        """The view as JSON-ready data: what goes into an HTTP body, a Socket.IO ack or
        event, or the CLI's ``--json`` output."""
        return self.model_dump(mode="json")
