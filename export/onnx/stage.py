"""`onnx_config.json`: what the ONNX runtime needs beside the graphs, read from the HF folder.

The tokenizer facts the runtime cannot get from `tokenizer.json` alone (chat template, BOS/EOS
texts, whether BOS is prepended, which ids end generation) and the language model's sizes
(layers, KV heads, head width: the memory planner sizes the KV cache from them).
"""

from __future__ import annotations

import json
from pathlib import Path

from edge_et.formats.onnx_stage import CONFIG_FORMAT

# The ONNX opset every graph of a stage is exported at (decoders, embeddings, vision towers).
OPSET = 17

# Tokens that end a turn in common chat vocabularies; llama.cpp marks the same texts as
# end-of-generation, so both backends stop on the same ids.
END_OF_TURN_TEXTS = (
    "<|im_end|>",
    "<|endoftext|>",
    "<|eot_id|>",
    "<|eom_id|>",
    "<|end|>",
    "<end_of_turn>",
    "<|end_of_text|>",
    "<end_of_utterance>",
    "<EOT>",
)


def chat_template(source: Path) -> str | None:
    """The chat template as the GGUF converter takes it: tokenizer_config.json first."""
    config = source / "tokenizer_config.json"
    if config.is_file():
        template = json.loads(config.read_text(encoding="utf-8")).get("chat_template")
        if isinstance(template, str):
            return template
    jinja = source / "chat_template.jinja"
    return jinja.read_text(encoding="utf-8") if jinja.is_file() else None


def _ids(value) -> list[int]:
    if value is None:
        return []
    return [int(v) for v in value] if isinstance(value, (list, tuple)) else [int(value)]


def end_token_ids(hf_dir: Path, tokenizer, text_config: dict) -> list[int]:
    """EOS ids of the config, the generation config and the tokenizer, plus end-of-turn tokens."""
    ids = _ids(text_config.get("eos_token_id")) + _ids(tokenizer.eos_token_id)
    generation = hf_dir / "generation_config.json"
    if generation.is_file():
        ids += _ids(json.loads(generation.read_text()).get("eos_token_id"))
    vocab = tokenizer.get_vocab()
    ids += [vocab[t] for t in END_OF_TURN_TEXTS if t in vocab]
    return sorted(set(ids))


def text_config_of(hf_dir: Path) -> dict:
    """The language model's config.json section (the whole file for a text-only model)."""
    config = json.loads((Path(hf_dir) / "config.json").read_text())
    return config.get("text_config") or config


def _adds_bos(tokenizer) -> bool:
    ids = tokenizer("a", add_special_tokens=True)["input_ids"]
    return tokenizer.bos_token_id is not None and bool(ids) and ids[0] == tokenizer.bos_token_id


def stage_config(
    hf_dir: Path,
    template_source: Path,
    *,
    arch: str,
    quant: str,
    vision: dict | None = None,
    embed: str | None = None,
) -> dict:
    """The onnx_config.json dict of one stage exported from `hf_dir`.

    `template_source`: the folder whose chat template the GGUF export would use (the arch's
    prepared copy), so that both backends render identical prompts.
    """
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(hf_dir)
    text = text_config_of(hf_dir)
    heads = int(text["num_attention_heads"])
    config = {
        "format": CONFIG_FORMAT,
        "arch": arch,
        "quant": quant,
        "tokenizer": "tokenizer.json",
        "chat_template": chat_template(Path(template_source)) or tokenizer.chat_template,
        "bos_text": tokenizer.bos_token or "",
        "eos_text": tokenizer.eos_token or "",
        "add_bos": _adds_bos(tokenizer),
        "end_token_ids": end_token_ids(Path(hf_dir), tokenizer, text),
        "max_positions": int(text.get("max_position_embeddings") or 4096),
        "n_layer": int(text["num_hidden_layers"]),
        "n_head_kv": int(text.get("num_key_value_heads") or heads),
        "head_dim": int(text.get("head_dim") or int(text["hidden_size"]) // heads),
        "hidden_size": int(text["hidden_size"]),
        "vocab_size": int(text["vocab_size"]),
    }
    if embed:
        config["embed"] = embed
    if vision:
        config["vision"] = vision
    return config


def write_stage_config(stage_dir: Path, config: dict) -> Path:
    from edge_et.formats.onnx_stage import STAGE_CONFIG

    path = Path(stage_dir) / STAGE_CONFIG
    path.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    return path
