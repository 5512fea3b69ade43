"""The typed keys of shared request state. The root application holds the services;
the ``/api`` and ``/v1`` sub-applications reach them with ``request.config_dict[KEY]``,
which looks through the nested applications up to the root."""

from __future__ import annotations

import socketio
from aiohttp import web

from runtime.infra.auth import Principal
from runtime.infra.metrics import Metrics
from runtime.services import Services
from runtime.usecases.chat import ChatService

SERVICES = web.AppKey("services", Services)
"""Set once the lifespan has opened them (absent while the server starts)."""
CHAT = web.AppKey("chat", ChatService)
METRICS = web.AppKey("metrics", Metrics)
SIO = web.AppKey("sio", socketio.AsyncServer)
PRINCIPAL = web.RequestKey("principal", Principal)
"""Who calls: set by :func:`socket_server.auth.auth_middleware` before any route runs."""
