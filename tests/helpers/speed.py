"""A synthetic speed profile, cached where `run --deadline` looks for it."""

import json


def synthetic_profile(decode_tok_s: float = 100.0) -> dict:
    stage = {
        "load_s": 0.5,
        "image_encode_s": 0.2,
        "prompt_tokens": 100,
        "prefill_tok_s": 1000.0,
        "decode_tok_s": decode_tok_s,
        "position": 116,
        "base_prompt_tokens": 80,
    }
    return {"perception": dict(stage), "reasoning": dict(stage), "read_bytes_per_s": 10e9}


def cache_profile(bundle, root) -> None:
    from edge_et.runtime.deadline import SPEED_FORMAT, speed_file

    path = speed_file(bundle, root=root)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"format": SPEED_FORMAT, "profile": synthetic_profile()}))
