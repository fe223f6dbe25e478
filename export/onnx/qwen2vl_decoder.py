"""Qwen2-VL's and Qwen2.5-VL's language model (with its output head) to ONNX by torch.onnx.

optimum-onnx has no Qwen2-VL or Qwen2.5-VL decoder export, so the graph is traced here from a
wrapper with optimum's decoder interface, which `edge_et.backends.onnx.session.DecoderSession` runs:

    inputs_embeds (batch, seq, hidden), attention_mask (batch, past + seq),
    position_ids (3, batch, seq), past_key_values.N.key/value (batch, kv_heads, past, head_dim)
    → logits (batch, seq, vocab), present.N.key/value (batch, kv_heads, past + seq, head_dim)

position_ids has M-RoPE's three rows (temporal, height, width: `mrope_section` splits the rotary
dimensions between them); text tokens carry the same position in all three. The token lookup
is `embed.onnx`, built by onnx_text from the embedding matrix.
"""

from __future__ import annotations

from pathlib import Path

from export.onnx.stage import OPSET
from export.onnx.text import embed_graph, save

# Shapes traced with: past and new lengths > 1 so that no axis is specialised to 0 or 1.
_TRACE_PAST, _TRACE_NEW = 3, 4


def _cache_from_flat(flat, n_layers: int):
    """A DynamicCache holding the past keys/values given as (k0, v0, k1, v1, ...)."""
    from transformers import DynamicCache

    cache = DynamicCache()
    for layer in range(n_layers):
        cache.update(flat[2 * layer], flat[2 * layer + 1], layer)
    return cache


def _additive_mask(attention_mask, new: int):
    """(batch, 1, new, past + new) float mask: causal over cache indices, padding masked."""
    import torch

    total = attention_mask.shape[1]
    keys = torch.arange(total)
    queries = torch.arange(new) + (total - new)  # the new tokens' cache indices
    allowed = (keys[None, :] <= queries[:, None])[None, None] & attention_mask[
        :, None, None, :
    ].bool()
    return torch.where(allowed, torch.tensor(0.0), torch.tensor(torch.finfo(torch.float32).min))


def decoder_module(model):
    """The language model + lm_head of a Qwen2(.5)-VL ForConditionalGeneration, flat KV in/out."""
    import torch

    lm, head = model.model.language_model, model.lm_head
    n_layers = len(lm.layers)

    class Decoder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lm, self.head = lm, head

        def forward(self, inputs_embeds, attention_mask, position_ids, *past):
            cache = _cache_from_flat(past, n_layers)
            new = inputs_embeds.shape[1]
            total = attention_mask.shape[1]
            mask = _additive_mask(attention_mask, new)
            cache_position = torch.arange(new) + (total - new)
            rotary = self.lm.rotary_emb(inputs_embeds, position_ids)
            hidden = inputs_embeds
            for layer in self.lm.layers:
                hidden = layer(
                    hidden,
                    attention_mask=mask,
                    past_key_values=cache,
                    use_cache=True,
                    cache_position=cache_position,
                    position_embeddings=rotary,
                )[0]
            logits = self.head(self.lm.norm(hidden))
            presents = []
            for layer in cache.layers:
                presents += [layer.keys, layer.values]
            return (logits, *presents)

    return Decoder().eval()


def io_names(n_layers: int) -> tuple[list[str], list[str], dict]:
    """Input names, output names and dynamic axes, as optimum names them."""
    past = [f"past_key_values.{i}.{kv}" for i in range(n_layers) for kv in ("key", "value")]
    present = [name.replace("past_key_values.", "present.") for name in past]
    axes = {
        "inputs_embeds": {0: "batch_size", 1: "sequence_length"},
        "attention_mask": {0: "batch_size", 1: "past_sequence_length + sequence_length"},
        "position_ids": {1: "batch_size", 2: "sequence_length"},
        "logits": {0: "batch_size", 1: "sequence_length"},
    }
    axes.update({name: {0: "batch_size", 2: "past_sequence_length"} for name in past})
    axes.update(
        {name: {0: "batch_size", 2: "past_sequence_length + sequence_length"} for name in present}
    )
    return ["inputs_embeds", "attention_mask", "position_ids", *past], ["logits", *present], axes


def export_decoder(hf_dir: Path, out_decoder: Path, out_embed: Path) -> None:
    """Write `decoder.onnx` (inputs_embeds in) and `embed.onnx` (the token lookup)."""
    import onnx
    import torch
    from transformers import AutoModelForImageTextToText

    model = AutoModelForImageTextToText.from_pretrained(
        hf_dir, dtype=torch.float32, attn_implementation="eager"
    ).eval()
    text = model.config.text_config
    n_layers, kv_heads = text.num_hidden_layers, text.num_key_value_heads
    head_dim = text.hidden_size // text.num_attention_heads
    inputs, outputs, axes = io_names(n_layers)
    past = [torch.zeros(1, kv_heads, _TRACE_PAST, head_dim) for _ in range(2 * n_layers)]
    dummy = (
        torch.zeros(1, _TRACE_NEW, text.hidden_size),
        torch.ones(1, _TRACE_PAST + _TRACE_NEW, dtype=torch.int64),
        torch.arange(_TRACE_NEW).expand(3, 1, _TRACE_NEW).contiguous(),
        *past,
    )
    with torch.no_grad():
        torch.onnx.export(
            decoder_module(model),
            dummy,
            str(out_decoder),
            input_names=inputs,
            output_names=outputs,
            dynamic_axes=axes,
            opset_version=OPSET,
            dynamo=False,
        )
    weight = onnx.numpy_helper.from_array(
        model.model.language_model.embed_tokens.weight.detach().numpy(), "embed_tokens.weight"
    )
    save(embed_graph(weight, [onnx.helper.make_opsetid("", OPSET)]), out_embed)
