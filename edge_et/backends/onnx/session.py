"""ONNX Runtime sessions: devices → execution providers, and one KV-cached decoder step.

A device name picks an execution provider; when this onnxruntime build lacks it, the session
runs on the CPU and one warning line says so (once per device per process). The decoder is an
optimum-onnx style graph: `input_ids` or `inputs_embeds`, `attention_mask`, optionally
`position_ids`, and `past_key_values.N.key/value` in, `logits` and `present.N.key/value` out.
A rank-3 `position_ids` (3, batch, seq) is M-RoPE's (Qwen2-VL, edge_et/backends/onnx/mrope.py):
text continues at the cache index plus the rope delta that the last given positions left.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort  # noqa: E402  (the heavy import last)

from edge_et.errors import BundleError, EdgeEtError, InputError, ModelError

# --device name → ONNX Runtime execution provider.
PROVIDERS = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "coreml": "CoreMLExecutionProvider",
    "qnn": "QNNExecutionProvider",
    "nnapi": "NnapiExecutionProvider",
    "dml": "DmlExecutionProvider",
    "xnnpack": "XnnpackExecutionProvider",  # ARM/x86 CPU kernels of mobile builds (export mobile)
}
_warned: set[str] = set()


def available_providers() -> list[str]:
    """The execution providers this onnxruntime build has."""
    return list(ort.get_available_providers())


def providers_for(device: str) -> list[str]:
    """Providers for `device`, CPU last as the fallback; warns once if `device` is missing."""
    if device not in PROVIDERS:
        raise InputError(f"unknown device {device!r}; choose one of: {', '.join(PROVIDERS)}")
    wanted = PROVIDERS[device]
    if wanted == PROVIDERS["cpu"]:
        return [wanted]
    if wanted not in available_providers():
        if device not in _warned:
            _warned.add(device)
            print(
                f"edge-et: warning: this onnxruntime has no {wanted}; running on the CPU",
                file=sys.stderr,
            )
        return [PROVIDERS["cpu"]]
    return [wanted, PROVIDERS["cpu"]]


def open_session(path: Path, *, device: str = "cpu", n_threads: int | None = None):
    """An InferenceSession for `path` on `device` (CPU fallback); one-line error if it fails."""
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: ORT's warnings are not the user's business
    if n_threads:
        options.intra_op_num_threads = n_threads
    try:
        return ort.InferenceSession(
            str(path), sess_options=options, providers=providers_for(device)
        )
    except EdgeEtError:
        raise
    except Exception as exc:  # noqa: BLE001 - ORT raises its own exception types
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"onnxruntime cannot load '{Path(path).name}': {first}") from None


_NP_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16}


class DecoderSession:
    """A decoder graph with its KV cache; `forward` feeds new positions, returns their logits."""

    def __init__(self, session):
        self.session = session
        inputs = {i.name: i for i in session.get_inputs()}
        self.takes_embeds = "inputs_embeds" in inputs
        self._names = set(inputs)
        self._past = sorted(
            (n for n in inputs if n.startswith("past_key_values.")), key=_layer_order
        )
        self._present = [n.replace("past_key_values.", "present.") for n in self._past]
        if not self._past:
            raise BundleError(
                "the ONNX decoder has no past_key_values inputs "
                "(export it with task text-generation-with-past)"
            )
        first = inputs[self._past[0]]
        self.kv_heads, self.head_dim = int(first.shape[1]), int(first.shape[3])
        self.kv_dtype = _NP_TYPES.get(first.type, np.float32)
        positions = inputs.get("position_ids")
        self.mrope = positions is not None and len(positions.shape) == 3
        self.n_past = 0
        self.rope_delta = 0
        self._cache: dict[str, np.ndarray] = {}

    def reset(self) -> None:
        self.n_past = self.rope_delta = 0
        self._cache = {
            name: np.zeros((1, self.kv_heads, 0, self.head_dim), self.kv_dtype)
            for name in self._past
        }

    def forward(
        self,
        *,
        ids: np.ndarray | None = None,
        embeds: np.ndarray | None = None,
        positions: np.ndarray | None = None,
    ) -> np.ndarray:
        """Run the next positions (token ids, or embeddings (T, hidden)); their logits
        (T, vocab). `positions`: M-RoPE's (3, T) for these tokens; unset, they follow on."""
        n_new = len(ids) if ids is not None else len(embeds)
        feeds = dict(self._cache)
        if embeds is not None:
            feeds["inputs_embeds"] = np.ascontiguousarray(embeds[None], dtype=np.float32)
            if "input_ids" in self._names:  # a grafted graph may keep it for shapes only
                feeds["input_ids"] = np.zeros((1, n_new), dtype=np.int64)
        else:
            feeds["input_ids"] = np.asarray(ids, dtype=np.int64)[None]
        if "attention_mask" in self._names:
            feeds["attention_mask"] = np.ones((1, self.n_past + n_new), dtype=np.int64)
        if "position_ids" in self._names:
            feeds["position_ids"] = self._positions(n_new, positions)
        outputs = self.session.run(["logits"] + self._present, feeds)
        for name, value in zip(self._past, outputs[1:]):
            self._cache[name] = value
        self.n_past += n_new
        return np.asarray(outputs[0][0], dtype=np.float32)

    def _positions(self, n_new: int, given: np.ndarray | None) -> np.ndarray:
        if given is not None:
            if not self.mrope:
                raise ValueError("explicit positions are M-RoPE's; this decoder is 1-D")
            self.rope_delta = int(given.max()) + 1 - (self.n_past + n_new)
            return np.ascontiguousarray(given, dtype=np.int64)[:, None, :]
        flat = np.arange(self.n_past, self.n_past + n_new, dtype=np.int64) + self.rope_delta
        return np.broadcast_to(flat, (3, 1, n_new)).copy() if self.mrope else flat[None]


def _layer_order(name: str) -> tuple[int, str]:
    # past_key_values.10.key sorts after .2.: compare the layer number as a number.
    parts = name.split(".")
    return int(parts[1]), parts[2]
