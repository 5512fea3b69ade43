"""Personae agents."""
