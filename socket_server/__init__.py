"""Personae socket_server."""
