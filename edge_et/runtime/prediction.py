"""Speed on a profiled device, predicted from this machine's measured speed (a PREDICTION).

What a stage does on a device edge-et does not run on is estimated from what it did here:

- decode reads every weight and the KV cache once per token, so it is bound by memory
  bandwidth: its measured rate is scaled by profile bandwidth / measured bandwidth here (this
  machine's fraction of its bandwidth limit is assumed to carry over);
- prefill and the image encode are compute-bound: scaled by the profile's cores / the cores
  used here (equal speed per core assumed: the crudest part, said in every label);
- load time is kept as measured (storage speed is not in the profiles).

Where the profile lists a published decode speed (someone else's runtime, some model), it is
shown beside the prediction, never mixed into it.
"""

from __future__ import annotations

from edge_et.memory.profiles import DeviceProfile

COMPUTE_NOTE = "prefill and image encode scaled by cores (equal speed per core assumed)"


def scale_factors(profile: DeviceProfile, *, here_bandwidth: float, here_cores: int) -> dict:
    """{"bandwidth": ratio, "compute": ratio} that turn this machine's rates into the profile's."""
    if here_bandwidth <= 0 or here_cores < 1:
        raise ValueError("this machine's bandwidth and cores must be positive")
    return {
        "bandwidth": profile.bandwidth_bytes_per_s / here_bandwidth,
        "compute": profile.cores / here_cores,
    }


def predict_rates(measured: dict, factors: dict) -> dict:
    """One stage's measured rates (decode_tok_s, prefill_tok_s, image_encode_s, load_s, ...)
    as predicted there; keys it does not know pass through unchanged."""
    predicted = dict(measured)
    if measured.get("decode_tok_s"):
        predicted["decode_tok_s"] = measured["decode_tok_s"] * factors["bandwidth"]
    if measured.get("prefill_tok_s"):
        predicted["prefill_tok_s"] = measured["prefill_tok_s"] * factors["compute"]
    if measured.get("image_encode_s"):
        predicted["image_encode_s"] = measured["image_encode_s"] / factors["compute"]
    return predicted


def predict_speed_profile(
    speed: dict, profile: DeviceProfile, *, here_cores: int
) -> tuple[dict, dict]:
    """A deadline speed profile (edge_et/runtime/deadline.py) as predicted on `profile`, and
    the label that says so. The KV-growth term reads the profile's bandwidth."""
    factors = scale_factors(
        profile, here_bandwidth=speed["read_bytes_per_s"], here_cores=here_cores
    )
    predicted = {role: predict_rates(speed[role], factors) for role in ("perception", "reasoning")}
    predicted["read_bytes_per_s"] = profile.bandwidth_bytes_per_s
    label = {
        "prediction_for": profile.name,
        "factors": factors,
        "method": "PREDICTION: decode scaled by bandwidth ratio, "
        + COMPUTE_NOTE
        + "; load as measured here",
        "published_decode": [vars(d) for d in profile.published_decode],
    }
    return predicted, label
