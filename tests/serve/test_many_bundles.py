"""One server, three bundles: `edge-et serve` without `--bundle` serves the bundles home, a
request's `model` picks the bundle, models load on demand within one budget.

The home holds alpha, beta and gamma (tests/helpers/many_bundles.py): alpha and beta share
one reasoning GGUF. The budget holds exactly one pair (two models) and not three, so every
switch of bundle unloads something: which one shows whether the pool unloads least recently
used first and shares the common reasoner. Real server, real openai client, real llama.cpp.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading

import httpx
import openai
import pytest

from tests.helpers.many_bundles import NAMES, many_bundles
from tests.serve.conftest import KEY, QUESTION, ROOT, data_uri, start_server
from tests.serve.test_page_browser import browser  # noqa: F401 - the real Chromium fixture

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def home(tiny_bundle, tmp_path_factory):
    return many_bundles(tiny_bundle, tmp_path_factory.mktemp("home"))


def listing(server) -> dict:
    return httpx.get(server.url + "/v1/models", headers=server.headers, timeout=10).json()


def loaded(server) -> set[str]:
    """The bundle roles whose model is loaded, as 'alpha.perception', ..."""
    return {
        f"{card['id']}.{role}"
        for card in listing(server)["data"]
        for role, stage in card["edge_et"]["stages"].items()
        if stage["loaded"]
    }


def pair_budget(home, folder) -> tuple[int, dict]:
    """A budget for one pair and half of the smaller model more (not three models), read from a
    first server's own figures: its runtime baseline and the planned bytes of each model."""
    with start_server(None, folder, env={"EDGE_ET_BUNDLES": str(home)}) as server:
        figures = listing(server)
    stages = figures["data"][0]["edge_et"]["stages"]
    sizes = {role: stage["bytes"] for role, stage in stages.items()}
    budget = (
        figures["edge_et"]["memory"]["baseline_bytes"]
        + sum(sizes.values())
        + min(sizes.values()) // 2
    )
    return budget, sizes


def ps(server, *options: str):
    """`edge-et ps` against `server`: the parsed JSON with --json, else the text."""
    done = subprocess.run(
        check=False,
        args=[
            sys.executable,
            "-m",
            "edge_et.cli.main",
            "ps",
            "--url",
            server.url,
            "--api-key",
            KEY,
            *options,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "80"},
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout) if "--json" in options else done.stdout


def ask(client: openai.OpenAI, model: str, image: str, seed: int, **extra):
    return client.chat.completions.create(
        model=model,
        seed=seed,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": image}},
                    {"type": "text", "text": QUESTION},
                ],
            }
        ],
        **extra,
    )


def test_three_bundles_share_one_budget_lru_and_one_copy_of_the_shared_reasoner(
    home, sample_image, tmp_path
):
    budget, sizes = pair_budget(home, tmp_path)
    image = data_uri(sample_image)
    with start_server(
        None, tmp_path, "--mem-budget", str(budget), env={"EDGE_ET_BUNDLES": str(home)}
    ) as server:
        assert [card["id"] for card in listing(server)["data"]] == list(NAMES)
        assert loaded(server) == set()  # several bundles: nothing loads before it is asked for
        shared = {m["model"]: m for m in listing(server)["edge_et"]["models"]}
        assert (
            len(shared) == 5
        )  # 3 perception models, 2 reasoning files: alpha's and beta's are one
        assert [m["bundles"] for m in shared.values() if len(m["bundles"]) > 1] == [
            ["alpha", "beta"]
        ]
        client = openai.OpenAI(base_url=server.url + "/v1", api_key=KEY, max_retries=0)
        first = {name: ask(client, name, image, seed=7) for name in ("alpha",)}

        assert loaded(server) == {"alpha.perception", "alpha.reasoning", "beta.reasoning"}
        first["beta"] = ask(client, "beta", image, seed=7)
        # alpha's perception went (least recently used); the shared reasoner stayed, not reloaded
        assert loaded(server) == {"beta.perception", "alpha.reasoning", "beta.reasoning"}
        reasoner = next(m for m in listing(server)["edge_et"]["models"] if len(m["bundles"]) == 2)
        assert reasoner["loads"] == 1 and reasoner["evictions"] == 0

        # a new hint: the extraction cache would otherwise answer without the perception model
        ask(
            client,
            "alpha",
            image,
            seed=1,
            extra_body={"edge_et": {"mode": "extract", "hint": "the shapes"}},
        )
        # beta's perception was used before the reasoner in beta's run: it goes, not the reasoner
        # (which was loaded first: a first-loaded-first-out policy would unload it)
        assert loaded(server) == {"alpha.perception", "alpha.reasoning", "beta.reasoning"}

        first["gamma"] = ask(client, "gamma", image, seed=7)
        # gamma's perception unloads the reasoner (used longest ago), its reasoner alpha's perception
        assert loaded(server) == {"gamma.perception", "gamma.reasoning"}

        answers: dict[str, list] = {name: [] for name in NAMES}
        failures: list[BaseException] = []

        fresh: list = []

        def client_of(name: str) -> None:
            try:
                for turn in range(3):
                    answers[name].append(ask(client, name, image, seed=7))
                    # a new hint each time: the perception model runs (and loads) too
                    fresh.append(
                        ask(
                            client,
                            name,
                            image,
                            seed=turn,
                            extra_body={"edge_et": {"hint": f"{name} {turn}"}},
                        )
                    )
            except BaseException as error:  # noqa: BLE001 - reported below
                failures.append(error)

        threads = [threading.Thread(target=client_of, args=(name,)) for name in NAMES]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(300)
        assert not failures, failures
        for name in NAMES:  # interleaved, evicted, reloaded, shared: the same answer as alone
            assert len(answers[name]) == 3
            for reply in answers[name]:
                assert reply.model == name
                assert (
                    reply.choices[0].message.model_extra["extraction"]
                    == first[name].choices[0].message.model_extra["extraction"]
                )
                assert (
                    reply.choices[0].message.model_extra["reasoning_content"]
                    == first[name].choices[0].message.model_extra["reasoning_content"]
                )
        assert len(fresh) == 9 and all(
            reply.choices[0].message.content is not None for reply in fresh
        )
        assert server.metric("edge_et_completions_total", outcome="error") == 0

        health = httpx.get(server.url + "/health", timeout=10).json()
        memory = health["memory"]
        assert memory["budget_bytes"] == budget
        assert memory["used_bytes"] <= memory["room_bytes"]
        assert memory["peak_rss_bytes"] <= budget, (memory, sizes)  # the process's own VmHWM
        assert set(health["models"]) == set(NAMES)
        assert all(
            health["models"][name]["loads"] >= 2 for name in NAMES
        )  # both its models, once at least
        assert health["models"]["alpha"]["evictions"] >= 1
        for name in NAMES:
            assert server.metric("edge_et_bundle_queue_depth", bundle=name) == 0
        assert server.metric("edge_et_pool_model_evictions_total", model=reasoner["model"]) >= 1

        shown = ps(server, "--json")  # the CLI view of the same: what is loaded, with its memory
        assert shown["memory"]["budget_bytes"] == budget
        assert sorted(m["model"] for m in shown["models"]) == sorted(shared)
        table = ps(server, "--all")
        assert table.splitlines()[0].split()[:3] == ["MODEL", "SIZE", "STATE"]
        assert reasoner["model"] in table and "alpha, beta" in table and "memory:" in table
        assert max(len(line) for line in table.splitlines()) <= 80


def test_an_unknown_model_is_a_404_naming_the_served_ones(home, sample_image, tmp_path):
    with start_server(None, tmp_path, env={"EDGE_ET_BUNDLES": str(home)}) as server:
        client = openai.OpenAI(base_url=server.url + "/v1", api_key=KEY, max_retries=0)
        with pytest.raises(openai.NotFoundError) as raised:
            ask(client, "delta", data_uri(sample_image), seed=1)
        error = raised.value.body
        assert error["code"] == "model_not_found" and "alpha, beta, gamma" in error["message"]


def test_a_bundle_larger_than_the_budget_is_refused_at_once_with_the_figures(
    home, sample_image, tmp_path
):
    budget, sizes = pair_budget(home, tmp_path)
    baseline = budget - sum(sizes.values()) - min(sizes.values()) // 2
    too_small = baseline + 2**20  # 1 MiB after the runtime: no model fits, even degraded
    with start_server(
        None, tmp_path, "--mem-budget", str(too_small), env={"EDGE_ET_BUNDLES": str(home)}
    ) as server:
        client = openai.OpenAI(base_url=server.url + "/v1", api_key=KEY, max_retries=0)
        with pytest.raises(openai.BadRequestError) as raised:
            ask(client, "alpha", data_uri(sample_image), seed=1)
        error = raised.value.body
        assert error["code"] == "memory_refused" and "MiB" in error["message"]
        assert listing(server)["data"][0]["edge_et"]["refused"]


def test_the_page_picks_the_bundle(browser, home, sample_image, tmp_path):  # noqa: F811
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    with start_server(None, tmp_path, env={"EDGE_ET_BUNDLES": str(home)}) as server:
        browser.get(server.url + "/")
        browser.find_element(By.ID, "key").send_keys(server.key)
        browser.find_element(By.ID, "question").click()  # the key's change event: the list loads
        wait = WebDriverWait(browser, 60)
        wait.until(lambda page: len(page.find_elements(By.CSS_SELECTOR, "#bundle option")) == 3)
        Select(browser.find_element(By.ID, "bundle")).select_by_value("gamma")
        assert browser.find_element(By.ID, "model").text == "gamma"
        browser.find_element(By.ID, "image").send_keys(str(sample_image))
        browser.find_element(By.ID, "go").click()
        wait.until(
            lambda page: page.find_element(By.ID, "status").text.startswith(("done", "error"))
        )
        assert browser.find_element(By.ID, "status").text.startswith("done")
        assert loaded(server) == {"gamma.perception", "gamma.reasoning"}  # gamma answered


def test_an_empty_bundles_home_is_one_line_and_exit_code_2(tmp_path):
    done = subprocess.run(
        check=False,
        args=[sys.executable, "-m", "edge_et.cli.main", "serve", "--port", "0"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT), "EDGE_ET_BUNDLES": str(tmp_path)},
    )
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "no bundle to serve" in done.stderr and str(tmp_path) in done.stderr


def test_ps_without_a_server_is_one_line_and_exit_code_2():
    done = subprocess.run(
        check=False,
        args=[sys.executable, "-m", "edge_et.cli.main", "ps", "--url", "http://127.0.0.1:9"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 2 and done.stderr.startswith("error: no edge-et server answers"), (
        done.stderr
    )
