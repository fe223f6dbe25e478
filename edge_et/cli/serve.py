"""`edge-et serve`: the OpenAI-compatible server (edge_et.serve) on one bundle or many."""

from __future__ import annotations

import re
from pathlib import Path

import typer

from edge_et.cli.shared import BUNDLE_HELP
from edge_et.core.devices import DEVICE_HELP
from edge_et.errors import InputError, MissingExtra
from edge_et.memory.probes import parse_size

_DURATION = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNIT_S = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, None: 1}


def serve(
    bundle: list[Path] | None = typer.Option(
        None,
        "--bundle",
        "-b",
        help=BUNDLE_HELP + " Repeatable; none: every bundle of the bundles home.",
    ),
    host: str = typer.Option(
        "127.0.0.1",
        help="Address to listen on; another than loopback needs --api-key (or --insecure).",
    ),
    port: int = typer.Option(8080, min=0, max=65535, help="Port (0: any free one)."),
    api_key: str | None = typer.Option(
        None, "--api-key", help="Require 'Authorization: Bearer KEY' on /v1 and /metrics."
    ),
    api_key_file: Path | None = typer.Option(
        None, "--api-key-file", help="Read the API key from this file (first line)."
    ),
    insecure: bool = typer.Option(
        False, "--insecure", help="Allow a non-loopback --host without an API key."
    ),
    parallel: int = typer.Option(
        1,
        "--parallel",
        min=1,
        help="Requests run at once (one pipeline each; each gets 1/N of the memory budget).",
    ),
    max_queue: int = typer.Option(
        16,
        "--max-queue",
        min=0,
        help="Requests that may wait for a slot; beyond it: 503 + Retry-After.",
    ),
    keep_alive: str = typer.Option(
        "5m", "--keep-alive", help="Free a model after this long idle (30s, 5m, 1h; -1: never)."
    ),
    mem_budget: str | None = typer.Option(
        None,
        "--mem-budget",
        help="Memory budget for all bundles and slots (6GB, 512MiB); default: 80% of available memory.",
    ),
    max_body: str = typer.Option("20MB", "--max-body", help="Largest request body; larger: 413."),
    max_pixels: float = typer.Option(
        16.0, "--max-megapixels", min=0.01, help="Largest picture, in megapixels; larger: 400."
    ),
    allow_media_dir: Path | None = typer.Option(
        None, "--allow-media-dir", help="Allow file:// image URLs under this folder."
    ),
    cors_origin: list[str] | None = typer.Option(
        None, "--cors-origin", help="Allow browser pages from this origin (repeatable)."
    ),
    allowed_hosts: list[str] | None = typer.Option(
        None,
        "--allowed-hosts",
        help="Answer requests for this Host name too (repeatable; *: any); default: loopback names and IP addresses only, any with an API key.",
    ),
    device: str = typer.Option("cpu", help=DEVICE_HELP),
    threads: int | None = typer.Option(
        None, min=1, help="CPU threads per slot (default: all cores)."
    ),
    residency: str = typer.Option(
        "auto", help="auto (the memory plan decides) | co-resident | swap."
    ),
    image_cache: str | None = typer.Option(
        None,
        "--image-cache",
        help="Image-embedding cache per slot (64MB; 0: none); default: the backend's (llama.cpp: 256MiB).",
    ),
    extraction_cache: int = typer.Option(
        4096, "--extraction-cache", min=0, help="Extractions kept by picture + hint (0: none)."
    ),
    warm_up: bool = typer.Option(
        True, "--warm-up/--no-warm-up", help="Run one short perception at start-up."
    ),
    log_level: str = typer.Option("info", "--log-level", help="debug | info | warning | error."),
) -> None:
    """Serve bundles over HTTP (a request's model picks one): OpenAI's /v1/chat/completions, /v1/models, /health, /metrics, and a page at /."""
    try:
        from edge_et.serve.opening import ServeSettings
        from edge_et.serve.runner import serve as run_server
    except ImportError as missing:
        raise MissingExtra(
            f"edge-et serve needs {missing.name}: pip install 'edge-et[serve]'", extra="serve"
        ) from None

    settings = ServeSettings(
        bundles=list(bundle or []),
        host=host,
        port=port,
        api_key=_api_key(api_key, api_key_file),
        insecure=insecure,
        parallel=parallel,
        max_queue=max_queue,
        keep_alive_s=parse_duration(keep_alive),
        mem_budget=mem_budget,
        max_body=parse_size(max_body),
        max_pixels=int(max_pixels * 1_000_000),
        media_dir=allow_media_dir,
        cors_origins=list(cors_origin or []),
        threads=threads,
        allowed_hosts=list(allowed_hosts or []),
        device=device,
        residency=None if residency == "auto" else residency,
        warm_up=warm_up,
        image_cache_bytes=_cache_bytes(image_cache),
        extraction_cache_entries=extraction_cache,
    )
    run_server(settings, log_level=log_level.lower())


def parse_duration(text: str) -> float | None:
    """Seconds in "30s", "5m", "1h", "250ms" or a bare number; a negative one means never."""
    match = _DURATION.match(text)
    if not match:
        raise InputError(
            f"--keep-alive {text!r}: give a duration such as 30s, 5m or 1h (-1: never)"
        )
    seconds = float(match.group(1)) * _UNIT_S[match.group(2)]
    return None if seconds < 0 else seconds


def _cache_bytes(text: str | None) -> int | None:
    if text is None:
        return None
    return 0 if text.strip() == "0" else parse_size(text)


def _api_key(key: str | None, key_file: Path | None) -> str | None:
    if key and key_file:
        raise InputError("give --api-key or --api-key-file, not both")
    if key_file is None:
        return key or None
    try:
        lines = key_file.read_text().splitlines()
    except OSError as error:
        raise InputError(f"cannot read --api-key-file {key_file}: {error.strerror}") from None
    if not lines or not lines[0].strip():
        raise InputError(f"--api-key-file {key_file} is empty")
    return lines[0].strip()
