"""`POST /v1/chat/completions`: parse, queue, then answer as JSON or as server-sent events.

The picture is decoded before the request is queued (a bad one is a 400 that never takes a
slot). A stream sends the role first, then extraction deltas (`delta.extraction`), the thought
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
from dataclasses import replace

from fastapi import Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, StreamingResponse

import edge_et
from edge_et.serve import completion as shape
from edge_et.serve.failures import ApiError
from edge_et.serve.jobs import Job
from edge_et.serve.media import image_url_of, load_picture, question_of
from edge_et.serve.scheduler import QueueFull
from edge_et.serve.schema import ChatRequest, EdgeEtOptions
from edge_et.serve.state import ServedBundle as ServerState  # one served bundle


async def chat_completions(body: ChatRequest, request: Request):
    state: ServerState = request.app.state.edge.pick(body.model)  # the bundle `model` names
    scheduler = state.ready()
    question, url, options = parse_request(body)
    admit(state, body, options)
    settings = state.settings
    picture = await run_in_threadpool(load_picture, url, settings.media_dir, settings.max_pixels)
    events: asyncio.Queue = asyncio.Queue()
    job = Job(picture=picture, question=question, options=options,
              deliver=_Mailbox(asyncio.get_running_loop(), events).deliver)
    try:
        scheduler.submit(job)
    except QueueFull:
        state.metrics.rejections.labels("queue_full").inc()
        raise ApiError(503, f"the queue is full ({scheduler.max_queue} waiting); retry shortly",
                       code="queue_full", headers={"Retry-After": "1"}) from None
    if body.stream:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        return StreamingResponse(_stream(state, job, events, include_usage),
                                 media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
    return await _whole(state, job, events, request)


def parse_request(body: ChatRequest) -> tuple[str, str, edge_et.RunOptions]:
    """The question, the image URL and the run options of a validated body, or a 400 ApiError."""
    return question_of(body), image_url_of(body), run_options(body)


def admit(state: ServerState, body: ChatRequest, options: edge_et.RunOptions) -> None:
    """A 400 naming the limit when the request's budgets need a longer reasoning context than
    the slots were planned with: refused now, not cut when the context fills mid-run."""
    pipeline = state.pipelines[0]  # every slot has the same plan
    try:
        pipeline.check_fits(options)
    except edge_et.InputError as error:
        raise ApiError(400, str(error), param=_overflowing_param(pipeline, body, options),
                       code="context_length_exceeded") from None


def _overflowing_param(pipeline: edge_et.Pipeline, body: ChatRequest, options: edge_et.RunOptions) -> str:
    """`max_tokens` when the request fits without it, else `edge_et` (its budgets)."""
    if body.max_tokens is None and body.max_completion_tokens is None:
        return "edge_et"
    ext = body.edge_et or EdgeEtOptions()
    try:
        pipeline.check_fits(replace(options, max_tokens=None, answer_budget=ext.answer_budget))
    except edge_et.InputError:
        return "edge_et"
    return "max_tokens"


def run_options(body: ChatRequest) -> edge_et.RunOptions:
    """OpenAI's fields as edge-et's options; `edge_et.seed` wins over `seed`."""
    ext = body.edge_et or EdgeEtOptions()
    seed = ext.seed if ext.seed is not None else body.seed
    limit = body.max_completion_tokens or body.max_tokens
    return edge_et.RunOptions(
        mode=ext.mode, hint=ext.hint if ext.hint and ext.hint.strip() else None,
        seed=seed if seed is not None else random.randrange(2**31),
        think_budget=ext.think_budget, answer_budget=ext.answer_budget or limit,
        max_tokens=limit, temperature=body.temperature, stop=body.stop)


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
    return shape.completion(id=id, model=state.model_name, result=result, thinking=state.thinking,
                            picture=job.picture, queue_s=(job.started_at or job.queued_at) - job.queued_at,
                            extraction_cached=job.extraction_cached, cached_stop=job.cached_stop)


async def _stream(state: ServerState, job: Job, events: asyncio.Queue,
                  include_usage: bool) -> AsyncIterator[str]:
    id, created = shape.new_id(), int(time.time())
    splitter = shape.ThoughtSplitter(state.thinking)
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
                yield chunk({"extraction": event[1]} | ({"content": event[1]} if perception_is_reply else {}))
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
                yield chunk({}, finish_reason=whole["choices"][0]["finish_reason"],
                            edge_et=whole["edge_et"], timings=whole["timings"])
                if include_usage:
                    yield chunk(None, usage=whole["usage"])
                break
        yield "data: [DONE]\n\n"
    finally:
        job.cancelled.set()  # the client left (or the run ended): stop at the next token


def _error_body(error: BaseException) -> dict:
    if isinstance(error, ApiError):
        return error.body()
    return ApiError(500, f"internal error: {type(error).__name__}").body()
