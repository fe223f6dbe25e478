"""The FastAPI app: routes, the gate, CORS and the page.

FastAPI because its pydantic models are the request validation and the OpenAPI schema at once
(schemathesis tests the server against that schema), on uvicorn, the ASGI server it is made
for. The interactive docs pages are off: they load scripts from a CDN, and this server works
offline; `/openapi.json` stays.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import Depends, FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse, Response

import edge_et
from edge_et.serve import failures
from edge_et.serve.chat import chat_completions
from edge_et.serve.gate import Gate, key_checker
from edge_et.serve.hosts import HostCheck
from edge_et.serve.schema import ChatCompletion, ErrorResponse, Health, ModelList
from edge_et.serve.state import ServedBundle, ServerState

PAGE = Path(__file__).resolve().parent / "page"
PAGE_FILES = {"app.js": "text/javascript", "style.css": "text/css"}
ERRORS = {status: {"model": ErrorResponse} for status in (400, 401, 403, 404, 413, 500, 503)}


def create_app(state: ServerState) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_: FastAPI):
        state.start_loading()  # the port is bound meanwhile; /health says 503 until it ends
        yield
        state.close()

    app = FastAPI(
        title="edge-et",
        version=edge_et.__version__,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        description="OpenAI-compatible Extract+Think server (docs/serve.md)",
    )
    app.state.edge = state
    failures.install(app)
    if state.settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=state.settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["authorization", "content-type"],
        )
    app.add_middleware(Gate, max_body=state.settings.max_body, metrics=state.metrics)
    # Added last, so it runs first: a rebound name is refused before anything else is read.
    app.add_middleware(
        HostCheck,
        allowed_hosts=state.settings.allowed_hosts,
        cors_origins=state.settings.cors_origins,
        keyed=bool(state.settings.api_key),
    )
    keyed = [Depends(key_checker(state.settings.api_key, state.metrics))]

    app.post(
        "/v1/chat/completions",
        response_model=ChatCompletion,
        dependencies=keyed,
        responses=ERRORS | {200: {"content": {"text/event-stream": {}}}},
        summary="Answer a question about an image (Extract+Think)",
    )(chat_completions)
    app.get(
        "/v1/models",
        response_model=ModelList,
        dependencies=keyed,
        responses=ERRORS,
        summary="The served bundles, each as a model, with what is loaded",
    )(_models)
    app.get(
        "/health",
        response_model=Health,
        responses={503: {"model": ErrorResponse}},
        summary="200 once the server is ready (503 while one bundle loads); per bundle: loaded, bytes, queue",
    )(_health)
    app.get(
        "/metrics",
        dependencies=keyed,
        responses=ERRORS | {200: {"content": {"text/plain": {}}}},
        response_class=Response,
        summary="Prometheus metrics",
    )(_metrics)
    app.get("/", include_in_schema=False)(_page)
    app.get("/page/{name}", include_in_schema=False)(_page_file)
    return app


async def _models(request: Request) -> JSONResponse:
    """Every served bundle as a model, with what is loaded now; `edge_et` beside `data`: the
    pool's models and the memory figures (what `edge-et ps` shows)."""
    state: ServerState = request.app.state.edge
    cards = [_card(state, served) for served in state.bundles.values()]
    return JSONResponse(
        {
            "object": "list",
            "data": cards,
            "edge_et": {"memory": state.memory(), "models": state.pool.snapshot()},
        }
    )


def _card(state: ServerState, served: ServedBundle) -> dict:
    bundle, plan = served.bundle, served.plan
    stages = {}
    for spec in bundle.stages() if bundle else ():
        entry = state.pool.entry(served.keys[0][spec.role])
        stages[spec.role] = {
            "arch": spec.arch,
            "backend": spec.backend,
            "model": spec.model,
            "thinking": spec.thinking,
            "random_weights": spec.random_weights,
            "pool_model": entry.label,
            "bytes": entry.bytes,
            "loaded": entry.model is not None,
        }
    decided = served.residency
    return {
        "id": served.model_name,
        "object": "model",
        "created": int(state.started),
        "owned_by": "edge-et",
        "edge_et": {
            "stages": stages,
            "slots": len(served.pipelines),
            "path": str(served.path),
            "residency": ("swap" if served.swaps else "co-resident") if decided else None,
            "residency_reason": decided.reason if decided else None,
            "loaded": served.status()["loaded"],
            "refused": served.refusal,
            "plan": plan.decision if plan else None,
            "slot_plan": _slot_plan(plan),
        },
    }


def _slot_plan(plan) -> dict | None:
    """What each slot was admitted with: its share of the budget, each stage's context and KV
    type (a request whose budgets need more is refused), and any degradation the plan made."""
    if plan is None:
        return None
    return {
        "budget_bytes": plan.budget.bytes,
        "peak_bytes": plan.peak_bytes,
        "stages": {
            role: {"n_ctx": fp.n_ctx, "kv_type": fp.kv_type} for role, fp in plan.stages.items()
        },
        "degradations": plan.degradations,
    }


async def _health(request: Request) -> JSONResponse:
    """503 while a one-bundle server loads; then per bundle: loaded, bytes, queue."""
    state: ServerState = request.app.state.edge
    state.check_ready()
    statuses = {name: served.status() for name, served in state.bundles.items()}
    first = next(iter(state.bundles.values()))
    return JSONResponse(
        {
            "status": "ok",
            "model": first.model_name,
            "slots": sum(len(s.pipelines) for s in state.bundles.values()),
            "slots_busy": sum(s["busy"] for s in statuses.values()),
            "queue_depth": sum(s["queue_depth"] for s in statuses.values()),
            "models": statuses,
            "memory": state.memory(),
        }
    )


async def _metrics(request: Request) -> Response:
    state: ServerState = request.app.state.edge
    return Response(state.metrics.text(), media_type="text/plain; version=0.0.4")


async def _page() -> FileResponse:
    return FileResponse(PAGE / "index.html", media_type="text/html")


async def _page_file(name: str) -> FileResponse:
    if name not in PAGE_FILES:
        raise failures.ApiError(404, f"no page file {name!r}")
    return FileResponse(PAGE / name, media_type=PAGE_FILES[name])
