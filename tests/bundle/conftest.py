"""For every bundle test: the loopback hub (a real HTTP server in the Hugging Face URL layout) and
an empty Hugging Face cache of its own (autouse), so no test reads or fills the user's cache."""

from tests.bundle.test_pull import hf_cache, hub  # noqa: F401 - fixtures, found by name
