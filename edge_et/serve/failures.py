"""Every error the server sends is OpenAI's error JSON: `{"error": {message, type, param, code}}`.

The `openai` client turns the status into its exception kinds (401 AuthenticationError, 400
BadRequestError ...) and shows `message`. Nothing reaches a client as a traceback: an
unexpected exception is logged here and answered with a one-line 500 `server_error`.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

import edge_et

log = logging.getLogger("edge_et.serve")

# status -> OpenAI's error type for it
TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    500: "server_error",
    503: "unavailable_error",
}
# status -> the `code` of an error raised without one: every error has a code a client can test
CODES = {
    400: "invalid_request",
    401: "invalid_api_key",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "request_too_large",
    500: "server_error",
    503: "unavailable",
}


class ApiError(HTTPException):
    """An error answered as OpenAI error JSON with `status` (and headers, e.g. Retry-After).
    An HTTPException, so that FastAPI passes it through where it wraps other errors (raised
    while the body is read, it would otherwise become a generic 400)."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(status_code=status, detail=message, headers=headers)
        self.status, self.message, self.param, self.code = status, message, param, code
        self.headers = headers or {}

    def body(self) -> dict:
        return error_body(self.status, self.message, param=self.param, code=self.code)


def error_body(
    status: int, message: str, *, param: str | None = None, code: str | None = None
) -> dict:
    return {
        "error": {
            "message": message,
            "type": TYPES.get(status, "invalid_request_error"),
            "param": param,
            "code": code or CODES.get(status, "error"),
        }
    }


def from_edge_et(error: edge_et.EdgeEtError) -> ApiError:
    """The HTTP side of edge-et's error kinds: the caller's input is a 400, the rest is ours."""
    if isinstance(error, edge_et.InputError):
        return ApiError(400, str(error), param="messages", code="invalid_input")
    if isinstance(error, edge_et.PlanRefused):
        return ApiError(503, str(error), code="memory_refused", headers={"Retry-After": "5"})
    return ApiError(500, str(error), code=type(error).__name__.lower())


def respond(error: ApiError) -> JSONResponse:
    return JSONResponse(error.body(), status_code=error.status, headers=error.headers)


def install(app: FastAPI) -> None:
    """Route every failure through OpenAI error JSON."""

    @app.exception_handler(ApiError)
    async def api_error(_: Request, error: ApiError) -> JSONResponse:
        return respond(error)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, error: RequestValidationError) -> JSONResponse:
        if _bad_json(error):
            return respond(ApiError(400, _json_message(error), code="invalid_json"))
        return respond(
            ApiError(
                400,
                _validation_message(error),
                param=_validation_param(error),
                code="invalid_request",
            )
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, error: StarletteHTTPException) -> JSONResponse:
        return respond(ApiError(error.status_code, str(error.detail), headers=error.headers))

    @app.exception_handler(edge_et.EdgeEtError)
    async def edge_error(_: Request, error: edge_et.EdgeEtError) -> JSONResponse:
        return respond(from_edge_et(error))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return respond(ApiError(500, f"internal error: {type(error).__name__}"))


def _bad_json(error: RequestValidationError) -> bool:
    problems = error.errors()
    return bool(problems) and problems[0].get("type") == "json_invalid"


def _json_message(error: RequestValidationError) -> str:
    """The body is not JSON: the decoder's reason and where (the location is a character
    offset, not a field, so it is no `param`)."""
    first = error.errors()[0]
    where = [part for part in first.get("loc", ()) if part != "body"]
    reason = (first.get("ctx") or {}).get("error") or first.get("msg", "invalid JSON")
    at = f" at character {where[0]}" if where and isinstance(where[0], int) else ""
    return f"the body is not valid JSON: {reason}{at}"


def _validation_message(error: RequestValidationError) -> str:
    problems = error.errors()
    if not problems:
        return "invalid request body"
    first = problems[0]
    where = ".".join(str(part) for part in first.get("loc", ()) if part != "body")
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return f"{where or 'body'}: {first.get('msg', 'invalid')}{more}"


def _validation_param(error: RequestValidationError) -> str | None:
    problems = error.errors()
    if not problems:
        return None
    parts = [str(part) for part in problems[0].get("loc", ()) if part != "body"]
    return parts[0] if parts else None
