"""Check a Hugging Face checkpoint folder before any conversion starts: cheap, in-process, one line.

The converters (llama.cpp's convert_hf_to_gguf.py in a subprocess, transformers + optimum for ONNX)
meet a malformed file deep inside, with a traceback that names their code rather than the file:
"Failed to detect model architecture" for a `hidden_size` that is a string, "EOF while parsing a
value" for a cut tokenizer.json. Reading the same files here first costs milliseconds (JSON, the
tokenizer through the `tokenizers` library, the safetensors headers through `safetensors`, never
the weights themselves) and turns each problem into an InputError naming the file and the field.

    check_checkpoint(Path("ckpt"), "--reasoning")   # raises InputError, or returns the config
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from edge_et.core.paths import shown
from edge_et.errors import InputError

# Integer fields of a config (top level or a text/vision sub-config) a converter sizes tensors by.
POSITIVE_INTS = (
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "vocab_size",
    "head_dim",
    "max_position_embeddings",
    "embed_dim",
    "depth",
    "num_heads",
    "patch_size",
    "image_size",
    "spatial_merge_size",
    "temporal_patch_size",
    "in_chans",
    "in_channels",
    "num_channels",
    "out_hidden_size",
    "hidden_dim",
    "scale_factor",
    "sliding_window",
    "max_window_layers",
)
TOKEN_IDS = (
    "bos_token_id",
    "eos_token_id",
    "pad_token_id",
    "image_token_id",
    "image_token_index",
    "video_token_id",
    "vision_start_token_id",
    "vision_end_token_id",
)
NUMBERS = ("rms_norm_eps", "layer_norm_eps", "rope_theta", "initializer_range")
BOOLS = ("tie_word_embeddings", "use_cache", "attention_bias", "use_sliding_window")
REQUIRED = ("hidden_size", "num_hidden_layers", "num_attention_heads", "vocab_size")
SUBCONFIGS = ("text_config", "vision_config")
LIMIT = 2**31 - 1  # GGUF stores these as 32-bit; anything larger is a typo, not a model
JSON_FILES = (
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "generation_config.json",
    "preprocessor_config.json",
    "processor_config.json",
    "chat_template.json",
    "vocab.json",
)
HEADER_LIMIT = 100 << 20  # safetensors' own limit on a header


def _fail(path: Path, message: str) -> InputError:
    return InputError(f"{shown(path)}: {message}")


def read_json(path: Path) -> object:
    """The parsed JSON of `path`; an InputError naming the file and the place where it breaks."""
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise _fail(path, f"cannot be read ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise _fail(path, "is not UTF-8 text") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise _fail(
            path, f"is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
        ) from None
    except RecursionError:
        raise _fail(path, "is not valid JSON (nested too deeply)") from None


def _check_fields(config: dict, where: str, path: Path) -> None:
    for key in POSITIVE_INTS:
        value = config.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= LIMIT:
            raise _fail(
                path, f"{where}{key} is {json.dumps(value)[:40]}; expected a positive integer"
            )
    for key in TOKEN_IDS:
        value = config.get(key)
        values = value if isinstance(value, list) else [value]
        if value is not None and not all(
            isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= LIMIT for v in values
        ):
            raise _fail(
                path,
                f"{where}{key} is {json.dumps(value)[:40]}; expected a token id (or a list of them)",
            )
    for key in NUMBERS:
        value = config.get(key)
        if value is not None and (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)
            or value < 0
        ):
            raise _fail(
                path, f"{where}{key} is {json.dumps(value)[:40]}; expected a non-negative number"
            )
    for key in BOOLS:
        value = config.get(key)
        if value is not None and not isinstance(value, bool):
            raise _fail(path, f"{where}{key} is {json.dumps(value)[:40]}; expected true or false")


def check_config(hf_dir: Path) -> dict:
    """config.json parsed, with the fields converters size tensors by typed and consistent."""
    path = hf_dir / "config.json"
    config = check_folder(hf_dir, "")
    _check_fields(config, "", path)
    for name in SUBCONFIGS:
        if config.get(name):
            _check_fields(config[name], f"{name}.", path)
    text = config.get("text_config") if isinstance(config.get("text_config"), dict) else {}
    for key in REQUIRED:
        if text.get(key) is None and config.get(key) is None:
            raise _fail(path, f"has no {key} (neither at the top nor in text_config)")
    _check_heads({**config, **{k: v for k, v in text.items() if v is not None}}, path)
    return config


def _check_heads(config: dict, path: Path) -> None:
    heads, kv = config["num_attention_heads"], config.get("num_key_value_heads")
    if kv is not None and heads % kv:
        raise _fail(
            path, f"num_attention_heads ({heads}) is not a multiple of num_key_value_heads ({kv})"
        )
    if config.get("head_dim") is None and config["hidden_size"] % heads:
        raise _fail(
            path,
            f"hidden_size ({config['hidden_size']}) is not a multiple of num_attention_heads "
            f"({heads}) and no head_dim is given",
        )


def check_tokenizer(hf_dir: Path) -> None:
    """The tokenizer files parse: tokenizer.json through `tokenizers` itself, the JSON ones as JSON."""
    for name in JSON_FILES:
        path = hf_dir / name
        if path.exists() and not isinstance(read_json(path), dict):
            raise _fail(path, "is not a JSON object")
    config = hf_dir / "tokenizer_config.json"
    if config.exists():
        template = read_json(config).get("chat_template")
        if template is not None and not isinstance(template, (str, list)):
            raise _fail(config, "chat_template is neither a string nor a list of named templates")
    tokenizer = hf_dir / "tokenizer.json"
    if tokenizer.exists():
        _check_tokenizer_json(tokenizer)
    for name in ("merges.txt", "chat_template.jinja"):
        path = hf_dir / name
        if path.exists():
            try:
                path.read_bytes().decode("utf-8")
            except OSError as exc:
                raise _fail(path, f"cannot be read ({exc.strerror or exc})") from None
            except UnicodeDecodeError:
                raise _fail(path, "is not UTF-8 text") from None
    if not (
        tokenizer.exists()
        or (hf_dir / "tokenizer.model").exists()
        or ((hf_dir / "vocab.json").exists() and (hf_dir / "merges.txt").exists())
    ):
        raise _fail(
            hf_dir,
            "has no tokenizer (tokenizer.json, tokenizer.model, or vocab.json with merges.txt)",
        )


def _check_tokenizer_json(path: Path) -> None:
    read_json(path)  # the JSON error names line and column, clearer than the tokenizers library's
    try:
        from tokenizers import Tokenizer
    except ImportError:
        return  # the export extra brings it; without it only the JSON is checked
    try:
        Tokenizer.from_file(str(path))
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # noqa: BLE001 - plain Exception, or a Rust panic (a BaseException)
        raise _fail(
            path,
            f"is not a tokenizer the tokenizers library can load ({' '.join(str(exc).split())[:160]})",
        ) from None


def check_weights(hf_dir: Path) -> None:
    """Weights are present and every safetensors header parses with its tensors inside the file."""
    index = hf_dir / "model.safetensors.index.json"
    files = sorted(hf_dir.glob("*.safetensors"))
    if index.exists():
        data = read_json(index)
        weight_map = data.get("weight_map") if isinstance(data, dict) else None
        if not isinstance(weight_map, dict) or not all(
            isinstance(v, str) for v in weight_map.values()
        ):
            raise _fail(index, "has no weight_map of tensor names to files")
        for name in sorted(set(weight_map.values())):
            if not (hf_dir / name).is_file() or "/" in name or name.startswith("."):
                raise _fail(index, f"names {name}, which is not in the folder")
    if not files:
        if any(hf_dir.glob("pytorch_model*.bin")):
            return  # pickled weights: only torch can read them, and the converter does
        raise _fail(hf_dir, "has no weights (*.safetensors)")
    for path in files:
        _check_safetensors(path)


def _check_safetensors(path: Path) -> None:
    try:
        size = path.stat().st_size
        with open(path, "rb") as handle:
            head = handle.read(8)
            length = int.from_bytes(head, "little") if len(head) == 8 else -1
            if length < 2 or length > min(HEADER_LIMIT, size - 8):
                raise _fail(
                    path,
                    f"is not a safetensors file (header length {length} of a {size}-byte file)",
                )
            header = handle.read(length)
    except OSError as exc:
        raise _fail(path, f"cannot be read ({exc.strerror or exc})") from None
    try:
        from safetensors import safe_open
    except ImportError:
        safe_open = None
    if safe_open is not None:
        try:  # the library's own header validation: dtypes, shapes, offsets that tile the data
            with safe_open(str(path), framework="numpy") as opened:
                opened.keys()
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:  # noqa: BLE001 - SafetensorError, or a Rust panic (a BaseException)
            raise _fail(
                path, f"is not a valid safetensors file ({' '.join(str(exc).split())[:160]})"
            ) from None
        return
    try:
        json.loads(header)
    except ValueError:
        raise _fail(path, "is not a safetensors file (its header is not JSON)") from None


def check_folder(hf_dir: Path, flag: str) -> dict:
    """The folder holds a config.json that parses as an object with a model_type; returns it.
    Enough to ask which architecture it is (before the fields that architecture needs)."""
    hf_dir = Path(hf_dir)
    if not hf_dir.is_dir():
        raise InputError(f"{flag} {shown(hf_dir)}: no such folder")
    path = hf_dir / "config.json"
    if not path.is_file():
        raise InputError(
            f"{flag} {shown(hf_dir)}: not a Hugging Face checkpoint folder (no config.json)"
        )
    config = read_json(path)
    if not isinstance(config, dict):
        raise _fail(path, "is not a JSON object")
    if not isinstance(config.get("model_type"), str) or not config["model_type"]:
        raise _fail(path, 'has no model_type (a string such as "qwen3")')
    for name in SUBCONFIGS:  # the architecture is looked up by text_config.model_type too
        sub = config.get(name)
        if sub is not None and not isinstance(sub, dict):
            raise _fail(path, f"{name} is {json.dumps(sub)[:40]}; expected an object")
        if sub and sub.get("model_type") is not None and not isinstance(sub["model_type"], str):
            raise _fail(
                path,
                f"{name}.model_type is {json.dumps(sub['model_type'])[:40]}; expected a string",
            )
    return config


def check_checkpoint(hf_dir: Path, flag: str) -> dict:
    """Everything a converter reads from `hf_dir`, checked cheaply; returns the parsed config.json.

    Args:
        hf_dir: the checkpoint folder; flag: how the user named it (`--reasoning`), for the message.
    Raises: InputError (one line: the file and what is wrong) for a missing folder, an unparsable
        or mistyped config.json, a broken tokenizer file, missing or damaged weights.
    """
    hf_dir = Path(hf_dir)
    check_folder(hf_dir, flag)
    config = check_config(hf_dir)
    check_tokenizer(hf_dir)
    check_weights(hf_dir)
    return config
