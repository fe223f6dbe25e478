"""`edge-et serve`: an OpenAI-compatible HTTP server for Extract+Think (docs/serve.md).

It is built on the public API of `edge_et` only; FastAPI, uvicorn and prometheus-client come
with the `serve` extra.
"""
