"""Personae memory."""
