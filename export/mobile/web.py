"""What a web page needs beyond a phone package (`edge-et export mobile --web`).

ONNX Runtime Web runs the package's `.ort` graphs with its WebAssembly CPU kernels (the `wasm`
execution provider; the contrib operators MatMulNBits and GatherBlockQuantized are in them).
Measured with onnxruntime-web 1.31.1 on the tiny package (web/, docs/mobile.md):

- The ORT-format files written by onnxruntime 1.32 load as they are: the graph format stays `.ort`.
- MatMulNBits in WebAssembly computes in fp32 whatever its accuracy level asks (level 4 and level
  0 give the same logits in the page), while the native CPU kernel at level 4 quantizes the
  activations to int8: the page's and the Python runtime's logits then differ by up to 7e-3 on
  the tiny int4 reasoner, enough to flip a near-tie (the 24th token of the thought). At level 0
  both compute in fp32 and differ by under 1e-6, and the tokens are equal. So a web package asks
  for level 0: the page computes as it would anyway, and the Python runtime computes what the
  page computes (natively slower at prefill: docs/mobile.md).
- One WebAssembly instance holds every session of the page in one 32-bit heap of at most 4 GiB:
  both stages' graphs, the weights ONNX Runtime prepacks, the KV caches and the activations.
"""

from __future__ import annotations

from pathlib import Path

WEB_ACCURACY_LEVEL = 0  # fp32 compute: what ONNX Runtime Web's WebAssembly kernel does
WASM_MEMORY_LIMIT = 4 * 2**30  # a wasm32 heap (memory64 is not in ONNX Runtime Web's CPU build)
TESTED_WITH = "onnxruntime-web 1.31.1 (web/package-lock.json)"


def web_section(package: Path, entries: dict[str, dict]) -> dict:
    """The `web` section of mobile.json for the package in `package`."""
    graph_bytes = {
        role: sum(p.stat().st_size for p in (package / role).glob("*.ort")) for role in entries
    }
    return {
        "runtime": "onnxruntime-web, execution provider 'wasm' (WebAssembly CPU kernels)",
        "tested_with": TESTED_WITH,
        "graph_format": "ort",
        "matmul_accuracy_level": WEB_ACCURACY_LEVEL,
        "graph_optimization": "all",
        "threads": "ort.env.wasm.numThreads > 1 needs a cross-origin isolated page (headers "
        "Cross-Origin-Opener-Policy: same-origin, Cross-Origin-Embedder-Policy: "
        "require-corp); otherwise one thread",
        "wasm_memory_limit_bytes": WASM_MEMORY_LIMIT,
        "graph_bytes": graph_bytes,
        "memory": "every session of a page shares one WebAssembly heap of at most 4 GiB: both "
        "stages' graphs, the weights ONNX Runtime prepacks, KV caches and activations "
        "must fit in it together (measured for the demo package: docs/mobile.md)",
    }
