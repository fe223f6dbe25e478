"""`edge-et serve`: an OpenAI-compatible HTTP server for Extract+Think (docs/serve.md).

It runs requests through the public API of `edge_et` (`open_pipeline`, `Pipeline`, the error
kinds); beside it, it uses the runtime's stop-string helpers (edge_et.runtime.stop_strings) and
think markers (edge_et.runtime.generation), which the OpenAI protocol's `stop` and streamed
`reasoning_content` need. FastAPI, uvicorn and prometheus-client come with the `serve` extra.
"""
