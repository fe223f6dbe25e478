"""Admission through the memory planner: `--parallel N` is planned as N slots, each with both
models and its own KV caches under 1/N of the budget, and refused at start (naming what fits)
when it does not; a request whose budgets need a longer reasoning context than a slot was
planned with is a 400 naming the limit, before it takes a slot."""

from __future__ import annotations

import re
import subprocess
import sys

import httpx

from tests.serve.conftest import KEY, ROOT, chat_body, data_uri


def serve_refused(bundle, *options: str) -> str:
    command = [
        sys.executable,
        "-m",
        "edge_et.cli.main",
        "serve",
        "--bundle",
        str(bundle),
        "--port",
        "0",
        "--api-key",
        KEY,
        *options,
    ]
    done = subprocess.run(
        command,
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 2, done.stderr[-2000:]
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1, (
        done.stderr
    )
    return done.stderr.strip()


def test_a_parallel_count_that_does_not_fit_is_refused_naming_the_count_that_does(served_bundle):
    # a slot of the tiny bundle needs about 150 MiB at its smallest: 1 GiB holds a few, not 64
    line = serve_refused(served_bundle, "--parallel", "64", "--mem-budget", "1GiB")
    match = re.fullmatch(
        r"error: --parallel 64 does not fit the 1,024 MiB memory budget \(--mem-budget\): "
        r"each slot would get 16 MiB and one slot needs at least ([\d,]+) MiB; "
        r"--parallel (\d+) fits, or give --mem-budget ([\d,]+) MiB or more for 64",
        line,
    )
    assert match, line
    need, fits, budget = (int(group.replace(",", "")) for group in match.groups())
    assert 1 <= fits < 64 and abs(fits - 1024 // need) <= 1  # the MiB shown are rounded
    assert abs(budget - 64 * need) <= 64  # rounding of the MiB shown
    # one more slot than it says fits is refused too, and names the same count
    again = serve_refused(served_bundle, "--parallel", str(fits + 1), "--mem-budget", "1GiB")
    assert f"--parallel {fits} fits" in again


def test_a_request_whose_budgets_overflow_the_planned_context_is_a_400_naming_the_limit(
    served, sample_image
):
    with served.client() as client:
        card = client.get("/v1/models").json()["data"][0]["edge_et"]["slot_plan"]
        n_ctx = card["stages"]["reasoning"]["n_ctx"]
        image = data_uri(sample_image)
        over_budget = client.post(
            "/v1/chat/completions",
            json=chat_body(image, edge_et={"think_budget": 32000, "answer_budget": 32000}),
        )
        over_max_tokens = client.post(
            "/v1/chat/completions",
            json=chat_body(image, max_tokens=32768, edge_et={"think_budget": n_ctx - 32768}),
        )
        default = client.post("/v1/chat/completions", json=chat_body(image))
    for response, param in ((over_budget, "edge_et"), (over_max_tokens, "max_tokens")):
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert error["code"] == "context_length_exceeded" and error["param"] == param
        assert f"reasoning context of {n_ctx} tokens" in error["message"]
        assert re.search(r"may be at most \d+$", error["message"]), error["message"]
    assert default.status_code == 200
    assert card["budget_bytes"] > 0 and card["degradations"] == []


def test_the_slot_plan_is_in_the_models_card(served):
    card = httpx.get(served.url + "/v1/models", headers=served.headers).json()["data"][0]["edge_et"]
    assert card["slots"] == 1 and card["plan"] == "co-resident"  # the tiny models fit together
    assert set(card["slot_plan"]["stages"]) == {"perception", "reasoning"}
