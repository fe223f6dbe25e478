"""Shared test helpers (fakes, tiny GGUF writers, bundle builders)."""
