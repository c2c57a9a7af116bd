"""Argent: Python tools for the Argent retrieval engine."""
