"""A vision graph with a fixed batch of views (a mobile package's): the encoder feeds exactly that
many per call, pads the last call, and drops the padding's outputs."""

from types import SimpleNamespace

import numpy as np

from edge_et.backends.onnx.vision import VisionEncoder


class _Session:
    def __init__(self, batch):
        self.batch, self.calls = batch, []

    def get_inputs(self):
        return [SimpleNamespace(name="pixel_values", shape=[self.batch, 3, 4, 4])]

    def run(self, _outputs, feeds):
        views = feeds["pixel_values"]
        if isinstance(self.batch, int):
            assert len(views) == self.batch  # a fixed-shape graph refuses anything else
        self.calls.append(len(views))
        return [
            np.repeat(views.mean(axis=(1, 2, 3))[:, None, None], 2, axis=1) * np.ones((1, 1, 8))
        ]


class _Encoder(VisionEncoder):
    def pixel_values(self, rgb):
        return np.stack([np.full((3, 4, 4), float(i + 1), np.float32) for i in range(5)])

    def pack(self, per_view, image):
        return per_view.reshape(-1, per_view.shape[-1])


def _embed(batch):
    session = _Session(batch)
    image = SimpleNamespace(sha256="x", rgb=None, height=4, width=4)
    embeddings, _ = _Encoder({"image_token_id": 7}, session).embed(image)
    return embeddings, session.calls


def test_fixed_batch_is_fed_exactly_and_padding_is_dropped():
    fixed, calls = _embed(2)
    assert calls == [2, 2, 2]  # 5 views: 2 + 2 + (1 + 1 padding)
    dynamic, dynamic_calls = _embed("views")
    assert dynamic_calls == [4, 1]  # VIEW_BATCH at a time
    np.testing.assert_array_equal(fixed, dynamic)
    assert fixed.shape == (10, 8) and fixed[-1, 0] == 5.0
