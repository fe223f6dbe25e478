"""The loopback hub (a real HTTP server in the Hugging Face URL layout) for every bundle test."""

from tests.bundle.test_pull import hub  # noqa: F401 - a fixture, found by name
