"""Views of errors: Personae's ``{"error": {code, message}}`` (REST and, inside acks,
Socket.IO) and OpenAI's ``{"error": {message, type, param, code}}`` (``/v1``)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field

from runtime.views.base import View


class ErrorDetail(View):
    model_config = ConfigDict(json_schema_serialization_defaults_required=False)

    code: str = Field(description="see docs/protocol.md for the codes")
    message: str
    retry_after: float | None = Field(
        default=None,
        exclude_if=lambda v: v is None,
        description="rate_limited: seconds until a retry may pass",
    )


class ErrorBody(View):
    """A failed REST call; its HTTP status goes with the code."""

    error: ErrorDetail

    @classmethod
    def of(cls, payload: dict[str, Any]) -> ErrorBody:
        """From ``socket_server``'s ``{code, message[, retry_after]}`` payload."""
        return cls(error=ErrorDetail.model_validate(payload))


OpenAIErrorType = Literal[
    "invalid_request_error",
    "authentication_error",
    "permission_error",
    "rate_limit_error",
    "api_error",
]


class OpenAIErrorDetail(View):
    message: str
    type: OpenAIErrorType
    param: str | None = Field(description="the request parameter at fault, when one is")
    code: str


class OpenAIErrorBody(View):
    """A failed ``/v1`` call, in OpenAI's shape."""

    error: OpenAIErrorDetail
