"""Loads the fuzz profiles (see settings.py) before any fuzz test runs."""

from tests.fuzz import settings  # noqa: F401  (registers and loads the hypothesis profile)
