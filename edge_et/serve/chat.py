"""`POST /v1/chat/completions`: parse, queue, then answer as JSON or as server-sent events.

Every field is honoured or refused (serve/strict.py); the pictures are decoded and the options
checked before the request is queued (a bad one is a 400 that never takes a slot). A
conversation's earlier turns reach the reasoner (runtime/chat.py); a turn before any picture is
answered by the reasoner alone (mode `chat`). A stream sends the role first, then extraction deltas (`delta.extraction`), the thought
(`delta.reasoning_content`) and the answer (`delta.content`), a chunk per finished stage
(`edge_et.stage`), the final chunk with `finish_reason`, the usage chunk when asked, `[DONE]`.
Leaving early, in either form, stops the run at its next token.
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path

from fastapi import Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, StreamingResponse

import edge_et
from edge_et.core.decoding import stage_decoding
from edge_et.runtime.chat import UserTurn, split_messages
from edge_et.runtime.constraints import check_constraint, json_constraint
from edge_et.serve import completion as shape
from edge_et.serve.failures import ApiError
from edge_et.serve.jobs import Job
from edge_et.serve.media import conversation_of
from edge_et.serve.scheduler import QueueFull
from edge_et.serve.schema import ChatRequest, EdgeEtOptions
from edge_et.serve.state import ServedBundle as ServerState  # one served bundle
from edge_et.serve.strict import refuse_unhonoured


async def chat_completions(body: ChatRequest, request: Request):
    state: ServerState = request.app.state.edge.pick(body.model)  # the bundle `model` names
    scheduler = state.ready()
    settings = state.settings
    parsed = await run_in_threadpool(
        parse_request,
        body,
        thinking=state.thinking,
        media_dir=settings.media_dir,
        max_pixels=settings.max_pixels,
    )
    admit(state, body, parsed.options)
    events: asyncio.Queue = asyncio.Queue()
    job = Job(
        picture=parsed.current.picture,
        question=parsed.current.question,
        options=parsed.options,
        system=parsed.system,
        earlier=parsed.earlier,
        deliver=_Mailbox(asyncio.get_running_loop(), events).deliver,
    )
    try:
        scheduler.submit(job)
    except QueueFull:
        state.metrics.rejections.labels("queue_full").inc()
        waiting = (
            f"{scheduler.max_queue} waiting, --max-queue"
            if scheduler.max_queue
            else "--max-queue 0: no request waits"
        )
        raise ApiError(
            503,
            f"every slot is busy and the queue is full ({waiting}); retry shortly",
            code="queue_full",
            headers={"Retry-After": "1"},
        ) from None
    if body.stream:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        return StreamingResponse(
            _stream(state, job, events, include_usage),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
    return await _whole(state, job, events, request)


@dataclass
class Parsed:
    """A request as a conversation turn: system text, earlier turns, the current turn, options."""

    system: str | None
    earlier: list[UserTurn]
    current: UserTurn
    options: edge_et.RunOptions


def parse_request(
    body: ChatRequest, *, thinking: bool, media_dir: Path | None, max_pixels: int
) -> Parsed:
    """The validated body as a conversation turn, its pictures decoded; a 400 ApiError for a
    field this server does not honour, a bad turn or a bad picture."""
    refuse_unhonoured(body)
    messages, detail = conversation_of(body, media_dir, max_pixels)
    try:
        system, earlier, current = split_messages(messages)
    except edge_et.InputError as error:
        raise ApiError(400, str(error), param="messages", code="invalid_messages") from None
    options = run_options(body, thinking, detail, text_only=current.picture is None)
    return Parsed(system=system, earlier=earlier, current=current, options=options)


def admit(state: ServerState, body: ChatRequest, options: edge_et.RunOptions) -> None:
    """A 400 naming the limit when the request cannot run as asked: a response_format the
    reply's backend cannot apply (or a schema it cannot compile), or budgets that need a longer
    reasoning context than the slots were planned with (refused now, not cut mid-run)."""
    pipeline = state.pipelines[0]  # every slot has the same plan
    try:
        check_constraint(state.bundle, options.mode, options.constraint)
    except edge_et.InputError as error:
        raise ApiError(
            400, str(error), param="response_format", code="unsupported_response_format"
        ) from None
    try:
        pipeline.check_fits(options)
    except edge_et.InputError as error:
        raise _too_long(state, body, options, error) from None


def _too_long(
    state: ServerState, body: ChatRequest, options: edge_et.RunOptions, error: edge_et.InputError
) -> ApiError:
    """`max_tokens` with the largest value that fits, when the request fits without it; else
    `edge_et` (its budgets, as the pipeline's message names them)."""
    pipeline = state.pipelines[0]
    limit = body.max_completion_tokens or body.max_tokens
    without = _with_limit(state, body, options, None)
    if limit is None or not _fits(pipeline, without):
        return ApiError(400, str(error), param="edge_et", code="context_length_exceeded")
    low, high = 0, limit  # the largest limit that fits: a binary search on check_fits
    while low < high:
        middle = (low + high + 1) // 2
        if _fits(pipeline, _with_limit(state, body, options, middle)):
            low = middle
        else:
            high = middle - 1
    name = "max_completion_tokens" if body.max_completion_tokens else "max_tokens"
    plan = pipeline.plan.stages.get("reasoning") if pipeline.plan else None
    context = f"the reasoning context of {plan.n_ctx} tokens" if plan else "the reasoning context"
    return ApiError(
        400,
        f"{name} {limit} does not fit {context} this server's slots are planned "
        f"with (with the thought, the extraction and the question); {name} may be "
        f"at most {low}",
        param=name,
        code="context_length_exceeded",
    )


def _fits(pipeline: edge_et.Pipeline, options: edge_et.RunOptions) -> bool:
    try:
        pipeline.check_fits(options)
    except edge_et.InputError:
        return False
    return True


def _with_limit(
    state: ServerState, body: ChatRequest, options: edge_et.RunOptions, limit: int | None
) -> edge_et.RunOptions:
    """`options` as `run_options` makes them with `limit` as the request's max_tokens."""
    ext = body.edge_et or EdgeEtOptions()
    if state.thinking:
        return replace(options, answer_budget=ext.answer_budget or limit)
    return replace(options, max_tokens=limit)


def run_options(
    body: ChatRequest, thinking: bool, detail: str = "auto", *, text_only: bool = False
) -> edge_et.RunOptions:
    """OpenAI's fields as edge-et's options; `edge_et.seed` wins over `seed`.

    `max_tokens` limits the reply once: a thinking reasoner's answer after its thought (its
    answer budget), an instruct reasoner's whole text (its max_tokens; the answer cue keeps its
    own small budget)."""
    ext = body.edge_et or EdgeEtOptions()
    seed = ext.seed if ext.seed is not None else body.seed
    limit = body.max_completion_tokens or body.max_tokens
    return edge_et.RunOptions(
        mode="chat" if text_only else ext.mode,
        hint=ext.hint if ext.hint and ext.hint.strip() else None,
        seed=seed if seed is not None else random.randrange(2**31),
        think_budget=ext.think_budget,
        answer_budget=ext.answer_budget or (limit if thinking else None),
        max_tokens=None if thinking else limit,
        temperature=body.temperature,
        stop=body.stop,
        constraint=_constraint(body),
        image_detail=detail,
        return_prompt=ext.return_prompt,
    )


def _constraint(body: ChatRequest):
    fmt = body.response_format
    if fmt is None or fmt.type == "text":
        return None
    if fmt.type == "json_object":
        return json_constraint(None)
    if fmt.json_schema is None or fmt.json_schema.schema_ is None:
        raise ApiError(
            400,
            "response_format json_schema needs json_schema.schema",
            param="response_format",
            code="invalid_response_format",
        )
    return json_constraint(fmt.json_schema.schema_)


class _Mailbox:
    """Events from a slot's thread to the request's coroutine. Text pieces that arrive before
    the loop took the previous ones are joined: a burst of tokens costs one wake-up and one SSE
    chunk, not one per token, so a fast generation does not starve the event loop that serves
    every other client (a tiny model makes thousands of tokens a second)."""

    TEXT = ("extraction", "reasoning")

    def __init__(self, loop: asyncio.AbstractEventLoop, events: asyncio.Queue):
        self._loop, self._events = loop, events
        self._pending: list[tuple] = []
        self._scheduled = False
        self._lock = threading.Lock()

    def deliver(self, event: tuple) -> None:
        with self._lock:
            last = self._pending[-1] if self._pending else None
            if last is not None and event[0] in self.TEXT and last[0] == event[0]:
                self._pending[-1] = (event[0], last[1] + event[1])
            else:
                self._pending.append(event)
            if self._scheduled:
                return
            self._scheduled = True
        try:
            self._loop.call_soon_threadsafe(self._flush)
        except RuntimeError:  # the loop is closed: the server is stopping
            pass

    def _flush(self) -> None:
        with self._lock:
            taken, self._pending, self._scheduled = self._pending, [], False
        for event in taken:
            self._events.put_nowait(event)


async def _whole(state: ServerState, job: Job, events: asyncio.Queue, request: Request):
    watcher = asyncio.create_task(_watch_disconnect(request, job, events))
    try:
        while True:
            event = await events.get()
            if event[0] == "gone":
                return JSONResponse({}, status_code=499)  # nobody reads it
            if event[0] == "error":
                raise event[1]
            if event[0] == "done":
                return JSONResponse(_completion(state, job, event[1], shape.new_id()))
    except asyncio.CancelledError:
        job.cancelled.set()
        raise
    finally:
        watcher.cancel()


async def _watch_disconnect(request: Request, job: Job, events: asyncio.Queue) -> None:
    """Stop `job` the moment its client's connection closes. The body has been read, so the
    server's next message is the disconnect (as Starlette's own streaming responses listen):
    the run stops at its next token, not at the next poll."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            job.cancelled.set()
            events.put_nowait(("gone",))
            return


def _completion(state: ServerState, job: Job, result: edge_et.Result, id: str) -> dict:
    return shape.completion(
        id=id,
        model=state.model_name,
        result=result,
        thinking=writes_thought(state, job.options),
        picture=job.picture,
        queue_s=(job.started_at or job.queued_at) - job.queued_at,
        extraction_cached=job.extraction_cached,
        cached_stop=job.cached_stop,
    )


async def _stream(
    state: ServerState, job: Job, events: asyncio.Queue, include_usage: bool
) -> AsyncIterator[str]:
    id, created = shape.new_id(), int(time.time())
    splitter = shape.ThoughtSplitter(writes_thought(state, job.options))
    perception_is_reply = job.options.mode in ("extract", "direct")

    def chunk(delta: dict | None, **extra) -> str:
        body = shape.chunk(id=id, model=state.model_name, created=created, delta=delta, **extra)
        return f"data: {json.dumps(body)}\n\n"

    try:
        yield chunk({"role": "assistant", "content": ""})
        while True:
            event = await events.get()
            kind = event[0]
            if kind == "extraction":
                yield chunk(
                    {"extraction": event[1]}
                    | ({"content": event[1]} if perception_is_reply else {})
                )
            elif kind == "reasoning":
                thought, answer = splitter.feed(event[1])
                if thought:
                    yield chunk({"reasoning_content": thought, "reasoning": thought})
                if answer:
                    yield chunk({"content": answer})
            elif kind == "stage":
                yield chunk({}, edge_et={"stage": event[1], "stats": event[2].to_dict()})
            elif kind == "error":
                yield f"data: {json.dumps(_error_body(event[1]))}\n\n"
                break
            elif kind == "done":
                whole = _completion(state, job, event[1], id)
                yield chunk(
                    {},
                    finish_reason=whole["choices"][0]["finish_reason"],
                    edge_et=whole["edge_et"],
                    timings=whole["timings"],
                )
                if include_usage:
                    yield chunk(None, usage=whole["usage"])
                break
        yield "data: [DONE]\n\n"
    finally:
        job.cancelled.set()  # the client left (or the run ended): stop at the next token


def writes_thought(state: ServerState, options: edge_et.RunOptions) -> bool:
    """Whether the reasoner's text begins with a thought closed by `</think>`: a thinking model
    with a think budget above 0 (at 0 the template writes an empty thought into the prompt, and
    the generated text is the answer alone)."""
    if not state.thinking:
        return False
    if options.think_budget is not None:
        return options.think_budget > 0
    return stage_decoding("think", state.bundle.decoding).budget > 0


def _error_body(error: BaseException) -> dict:
    if isinstance(error, ApiError):
        return error.body()
    return ApiError(500, f"internal error: {type(error).__name__}").body()
