"""README's Serve examples (curl and the openai client) run as written against the real
server; only the address, the key and the sample picture's path are pointed at the test ones."""

from __future__ import annotations

import json
import re
import subprocess

from tests.serve.conftest import ROOT

SECTION = (
    (ROOT / "README.md").read_text(encoding="utf-8").split("## Serve\n", 1)[1].split("\n## ", 1)[0]
)


def _pointed(code: str, served, sample_image) -> str:
    # the README names the demo bundle (its folder, "default"); this server serves the tiny one
    return (
        code.replace("http://127.0.0.1:8080", served.url)
        .replace("models/samples/sample.png", str(sample_image))
        .replace('model="default"', 'model="tiny-test"')
    )


def test_the_python_example_answers_with_extraction_reasoning_and_answer(
    served, sample_image, capsys
):
    code = re.search(r"```python\n(.*?)```", SECTION, re.S).group(1)
    code = _pointed(code, served, sample_image).replace('api_key="none"', f"api_key={served.key!r}")
    exec(compile(code, "README.md", "exec"), {"__name__": "readme_serve"})
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) >= 2  # extraction, answer text (noise on the tiny bundle), parsed answer


def test_the_curl_example_answers(served, sample_image):
    block = re.search(r"```sh\n(.*?)```", SECTION, re.S).group(1)
    curl = block[block.index("curl ") :]
    curl = _pointed(curl, served, sample_image).replace(
        "curl -s", f"curl -s -H 'Authorization: Bearer {served.key}'", 1
    )
    done = subprocess.run(
        ["bash", "-c", curl], capture_output=True, text=True, timeout=120, check=True
    )
    reply = json.loads(done.stdout)
    assert reply["object"] == "chat.completion" and "extraction" in reply["choices"][0]["message"]
    assert reply["edge_et"]["mode"] == "extract-think"
