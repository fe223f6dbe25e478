"""The request and response bodies of the server, as pydantic models.

They follow OpenAI's chat completions schema (the shapes the `openai` client reads), with
edge-et's own fields beside the standard ones: `edge_et` in the request (the client's
`extra_body`), `message.extraction`, `edge_et` and `timings` in the response. FastAPI builds the
OpenAPI schema from them, so schemathesis can check every response against it.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from edge_et.runtime.stop_strings import MAX_STOP_CHARS, MAX_STOPS

MAX_TOKENS = 32768  # above every context a bundle plans; larger asks are refused, not truncated
SEED_MAX = 2**31 - 1  # llama.cpp's sampler seed is 32-bit; the stages add small offsets


class ImageURL(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str = Field(description="data: URI, raw base64, or file:// under --allow-media-dir")
    detail: Literal["low", "high", "auto"] | None = Field(
        None,
        description="low: one cheap look (one view, or a small pixel cap); high: the model's own "
        "tiling; auto: the bundle's default (high)",
    )


class TextPart(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["text"]
    text: str


class ImagePart(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["image_url"]
    image_url: ImageURL


ContentPart = Annotated[TextPart | ImagePart, Field(discriminator="type")]


class Message(BaseModel):
    """A turn. An assistant turn may carry back the `extraction` this server sent with it (the
    next turn then need not make it again); the other fields of a reply that a client echoes
    (`reasoning_content`, `refusal` ...) are accepted and not used, and a turn with tool calls
    is refused (serve/strict.py)."""

    model_config = ConfigDict(extra="allow")
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None
    extraction: str | None = None


class EdgeEtOptions(BaseModel):
    """edge-et's own parameters; unknown names are refused so that a typo is not ignored."""

    model_config = ConfigDict(extra="forbid")
    mode: Literal["extract-think", "caption-think", "direct", "extract"] = "extract-think"
    hint: str | None = Field(
        None, max_length=2000, description="extraction hint; 'auto' asks the reasoning model"
    )
    think_budget: int | None = Field(None, ge=0, le=MAX_TOKENS)
    answer_budget: int | None = Field(None, ge=1, le=MAX_TOKENS)
    seed: int | None = Field(None, ge=0, le=SEED_MAX)
    return_prompt: bool = Field(
        False,
        description="return the reasoner's rendered prompt of a "
        "conversation turn in edge_et.conversation.prompt",
    )


class JsonSchemaFormat(BaseModel):
    name: str = Field(max_length=64)
    schema_: dict[str, Any] | None = Field(None, alias="schema")
    description: str | None = None
    strict: bool | None = None


class ResponseFormat(BaseModel):
    """OpenAI's response_format: the reply (the answer after a thought; the perception text in
    extract and direct) is constrained to JSON, or JSON under the schema, by a grammar."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = None


StopString = Annotated[str, Field(min_length=1, max_length=MAX_STOP_CHARS)]


class StreamOptions(BaseModel):
    include_usage: bool = False


class ChatRequest(BaseModel):
    """OpenAI's chat completion request. Fields not listed here are refused with a 400 naming
    them unless they are at their no-op value (serve/strict.py): nothing is silently ignored."""

    model_config = ConfigDict(extra="allow")
    model: str | None = None
    messages: list[Message] = Field(min_length=1)
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    max_tokens: int | None = Field(None, ge=1, le=MAX_TOKENS)
    max_completion_tokens: int | None = Field(None, ge=1, le=MAX_TOKENS)
    seed: int | None = Field(None, ge=0, le=SEED_MAX)
    stop: StopString | Annotated[list[StopString], Field(max_length=MAX_STOPS)] | None = Field(
        None,
        description="the reply (content) ends before the first of these; the thought is never cut",
    )
    n: int | None = Field(None, ge=1, le=1, description="one choice per request")
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    response_format: ResponseFormat | None = None
    edge_et: EdgeEtOptions | None = None


class ErrorBody(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorBody


class ResponseMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str | None
    reasoning_content: str | None = None
    reasoning: str | None = None
    extraction: str | None = None


class Choice(BaseModel):
    index: int = 0
    message: ResponseMessage
    finish_reason: Literal["stop", "length"] | None = Field(
        description="length: a token limit (max_tokens, the answer budget, the context) cut the content"
    )
    logprobs: None = None


class CompletionDetails(BaseModel):
    reasoning_tokens: int = 0


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    completion_tokens_details: CompletionDetails = CompletionDetails()


class EdgeEtResult(BaseModel):
    mode: str = Field(
        description="extract-think, caption-think, direct, extract; chat: a text-only "
        "turn the reasoning model answered alone"
    )
    answer: str
    answer_matched: bool
    hint: str | None = None
    hint_source: str | None = None
    seed: int | None = None
    image_sha256: str | None = None
    extraction_cached: bool = False
    image_cached: bool = False
    image_detail: str | None = None
    conversation: dict[str, Any] | None = Field(
        None,
        description="earlier turns the reasoner saw (turns), the oldest left out to fit its "
        "context (dropped), its prompt when asked (prompt)",
    )


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: Usage
    timings: dict[str, Any] = Field(description="per stage: load, image encode, prefill, decode")
    edge_et: EdgeEtResult


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "edge-et"
    edge_et: dict[str, Any] = Field(description="the bundle's stages and memory plan")


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class Health(BaseModel):
    status: Literal["ok"]
    model: str = Field(description="the first served bundle")
    slots: int
    slots_busy: int
    queue_depth: int
    models: dict[str, Any] = Field(
        default_factory=dict,
        description="per bundle: loaded, bytes, loads, evictions, residency, queue_depth, busy, refused",
    )
    memory: dict[str, Any] = Field(
        default_factory=dict, description="budget, room, bytes loaded, RSS now and peak"
    )
