"""Personae runtime."""
