"""Kopf operator for the items service: migrate, then roll out, roll back on failure."""
