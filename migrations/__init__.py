"""Personae migrations."""
