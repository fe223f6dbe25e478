"""`edge-et ps`: what a running `edge-et serve` has loaded, with its memory (as `ollama ps`).

It reads the server's `GET /v1/models` (the pool's models and the memory figures ride beside
the OpenAI list) over plain HTTP from the standard library: no server extra needed.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import typer

from edge_et.cli.shared import out
from edge_et.errors import InputError
from edge_et.memory.probes import format_size

WIDTH = 80  # the table fits a terminal of 80 columns; --json has every name whole


def ps(
    url: str = typer.Option("http://127.0.0.1:8080", "--url", help="The server's address."),
    api_key: str | None = typer.Option(
        None, "--api-key", envvar="EDGE_ET_API_KEY", help="The server's API key, if it has one."
    ),
    show_all: bool = typer.Option(
        False, "--all", "-a", help="Also the models that are not loaded now."
    ),
    as_json: bool = typer.Option(
        False, "--json", help="Print one JSON object: memory, models, bundles."
    ),
) -> None:
    """Show the models a running server holds: size, state, idle time, loads, evictions, bundles."""
    listing = fetch_models(url, api_key)
    extra = listing.get("edge_et") or {}
    bundles = {card["id"]: card.get("edge_et", {}) for card in listing.get("data", [])}
    if as_json:
        print(
            json.dumps(
                {
                    "memory": extra.get("memory"),
                    "models": extra.get("models", []),
                    "bundles": bundles,
                },
                ensure_ascii=False,
            )
        )
        return
    for line in format_ps(extra.get("models", []), extra.get("memory") or {}, show_all):
        out.print(line, highlight=False, soft_wrap=True, markup=False)


def fetch_models(url: str, api_key: str | None) -> dict:
    """GET `url`/v1/models as JSON; InputError (one line) when no edge-et server answers."""
    request = urllib.request.Request(
        url.rstrip("/") + "/v1/models",
        headers={"Authorization": f"Bearer {api_key}"} if api_key else {},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as error:
        hint = ": give --api-key (or $EDGE_ET_API_KEY)" if error.code == 401 else ""
        raise InputError(f"{url} answered {error.code} {error.reason}{hint}") from None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise InputError(
            f"no edge-et server answers at {url} ({reason}); start one with "
            "`edge-et serve` or give --url"
        ) from None
    except json.JSONDecodeError:
        raise InputError(f"{url}/v1/models did not answer JSON: is it an edge-et server?") from None


def format_ps(models: list[dict], memory: dict, show_all: bool = False) -> list[str]:
    """A table that fits 80 columns, then one line of memory figures."""
    shown = [m for m in models if show_all or m.get("loaded") or m.get("loading")]
    lines = [
        f"{'MODEL':<28} {'SIZE':>10} {'STATE':<7} {'IDLE':>5} {'LOADS':>5} {'EVICT':>5}  BUNDLES"
    ]
    for model in shown:
        state = (
            "loading"
            if model.get("loading")
            else "in use"
            if model.get("in_use")
            else "loaded"
            if model.get("loaded")
            else "-"
        )
        idle = f"{model['idle_s']:.0f}s" if model.get("idle_s") is not None else "-"
        row = (
            f"{_cut(model['model'], 28):<28} {format_size(model['bytes']):>10} {state:<7} "
            f"{idle:>5} {model['loads']:>5} {model['evictions']:>5}  "
        )
        lines.append(row + _cut(", ".join(model.get("bundles", [])), WIDTH - len(row)))
    if not shown:
        lines.append("(nothing loaded)")
    if memory:
        lines.append(
            f"memory: {format_size(memory.get('used_bytes', 0))} loaded of "
            f"{format_size(memory.get('room_bytes', 0))} (budget "
            f"{format_size(memory.get('budget_bytes', 0))} - runtime "
            f"{format_size(memory.get('baseline_bytes', 0))})"
        )
        lines.append(
            f"process: RSS {format_size(memory.get('rss_bytes') or 0)}, peak "
            f"{format_size(memory.get('peak_rss_bytes') or 0)}"
        )
    return lines


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
