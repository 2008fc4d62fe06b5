"""MusicGen (transformers format) -> a plan-free MusiCoT pipeline folder.

MusicGen has the ingredients MusiCoT is built from: EnCodec-32k codes written with the
delay pattern by a pre-norm decoder that cross-attends to T5. Its decoder maps onto
:class:`~musigen.musicot.lm.MusiCoTLM` with three config flags (`plan_free`: the audio
starts from an all-pad step with no BOS/plan/SEP positions; `positions="musicgen"`: the
sinusoid table in MusicGen's floating-point order; `ffn_dim`), so researchers fine-tune and
sample it with the same code as our own LMs. The logits match transformers'
`MusicgenForConditionalGeneration` to float precision (tests/test_musicgen_convert.py).

What maps where:

- decoder embeddings / layers / final norm / heads -> the LM (weights transposed to our
  [in, out] layout; Q/K/V fused);
- `enc_to_dec_proj` (T5 width -> decoder width) -> the LM's `text_proj` (identity when
  MusicGen has none because the widths agree);
- MusicGen's unconditional CFG rows see zeroed text states, so the LM's null condition is 0;
- `text_encoder` + the tokenizer in SRC -> `text_encoder/` (our T5 encoder);
- `audio_encoder` -> `codec/` (our EnCodec wrapper).

There are no thought tokens: the folder is a plan-free pipeline (`use_thoughts = false`,
no embedder, no thought tokenizer). Melody and stereo variants are refused.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

from musigen.errors import CheckpointError, ConfigError, shorten

#: Tokenizer files of which a MusicGen folder must hold at least one.
TOKENIZER_FILES = ("tokenizer.json", "spiece.model", "tokenizer_config.json")
#: MusicGen was trained on 30 s excerpts; audiocraft extends by 18 s, keeping 12 s.
WINDOW_S, CONTEXT_S = 30.0, 12.0


def _read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"cannot read {what} {shorten(path)}: {exc}") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"corrupt {what} {shorten(path)}: expected a JSON object")
    return data


def check_source(src: str | os.PathLike[str]) -> dict[str, Any]:
    """Refuse, in one line, anything but a mono text-to-music MusicGen folder with safetensors
    weights and a tokenizer; returns its config.json. Nothing is loaded yet."""
    path = Path(src).expanduser()
    if not path.is_dir():
        raise CheckpointError(f"MusicGen folder not found: {shorten(path)}")
    if not (path / "config.json").is_file():
        raise CheckpointError(f"{shorten(path)} is not a MusicGen folder: it has no config.json")
    config = _read_json(path / "config.json", "MusicGen config")
    kind = config.get("model_type")
    if kind == "musicgen_melody":
        raise CheckpointError(f"{shorten(path)} is MusicGen-Melody: its chroma conditioning has "
                              "no counterpart in the MusiCoT LM, so it is not converted")
    if kind != "musicgen":
        raise CheckpointError(f"{shorten(path)} is not a MusicGen folder (model_type {kind!r}, "
                              "expected 'musicgen')")
    decoder, text, audio = (config.get(k) for k in ("decoder", "text_encoder", "audio_encoder"))
    if not all(isinstance(part, dict) for part in (decoder, text, audio)):
        raise CheckpointError(f"{shorten(path)}/config.json lacks the decoder, text_encoder or "
                              "audio_encoder section of a MusicGen config")
    if decoder.get("audio_channels", 1) != 1:
        raise CheckpointError(f"{shorten(path)} is a stereo MusicGen (audio_channels "
                              f"{decoder.get('audio_channels')}): only mono MusicGen is converted")
    if text.get("model_type") != "t5" or audio.get("model_type") != "encodec":
        raise CheckpointError(f"{shorten(path)}: expected a T5 text encoder and an EnCodec audio "
                              f"encoder, got {text.get('model_type')!r} and "
                              f"{audio.get('model_type')!r}")
    act = decoder.get("activation_function", "gelu")
    if act != "gelu" or decoder.get("cross_attention_hidden_size") is not None:
        raise CheckpointError(f"{shorten(path)}: unsupported MusicGen decoder variant "
                              f"(activation {act!r}, cross_attention_hidden_size "
                              f"{decoder.get('cross_attention_hidden_size')})")
    vocab = decoder.get("vocab_size", 2048)
    start = config.get("decoder_start_token_id")
    if (path / "generation_config.json").is_file():
        generation = _read_json(path / "generation_config.json", "generation config")
        start = generation.get("decoder_start_token_id", start)
    if decoder.get("pad_token_id", 2048) != vocab or start not in (None, vocab):
        raise CheckpointError(f"{shorten(path)}: the decoder's pad/start token must be "
                              f"vocab_size {vocab}, got {decoder.get('pad_token_id')}/{start}")
    if not any(path.glob("*.safetensors")):
        pickles = sorted(p.name for p in path.glob("*.bin"))
        if pickles:
            raise CheckpointError(f"{shorten(path)} has only pickle weights ({pickles[0]}); "
                                  "musigen reads safetensors only (re-save the model with "
                                  "save_pretrained(..., safe_serialization=True))")
        raise CheckpointError(f"{shorten(path)} holds no model weights (*.safetensors)")
    if not any((path / name).is_file() for name in TOKENIZER_FILES):
        raise CheckpointError(f"{shorten(path)} has no tokenizer (none of "
                              f"{', '.join(TOKENIZER_FILES)}); save the MusicGen processor's "
                              "tokenizer into it")
    return config


def _t(linear_weight: torch.Tensor) -> torch.Tensor:
    """transformers' Linear weight [out, in] -> our projection layout [in, out]."""
    return linear_weight.detach().t().contiguous()


def lm_from_musicgen(model: Any) -> Any:
    """The decoder (+ text projection) of a `MusicgenForConditionalGeneration` as a MusiCoTLM."""
    from musigen.musicot.lm import LMConfig, MusiCoTLM

    dc = model.decoder.config
    text_dim = int(model.text_encoder.config.hidden_size)
    config = LMConfig(
        dim=dc.hidden_size, num_layers=dc.num_hidden_layers, num_heads=dc.num_attention_heads,
        ffn_mult=max(1, dc.ffn_dim // dc.hidden_size), ffn_dim=dc.ffn_dim,
        num_codebooks=dc.num_codebooks, codebook_size=dc.vocab_size,
        thought_levels=1, thought_codebook_size=1, text_dim=text_dim,
        max_seq_len=dc.max_position_embeddings, dropout=0.0, plan_free=True,
        positions="musicgen",
    )
    lm = MusiCoTLM(config)
    src = {k: v.detach().float() for k, v in model.state_dict().items()
           if not k.startswith(("text_encoder.", "audio_encoder."))}
    pre = "decoder.model.decoder."
    state = {k: torch.zeros_like(v) for k, v in lm.state_dict().items()}  # unused thought parts: 0
    if "enc_to_dec_proj.weight" in src:
        state["text_proj.weight"] = src.pop("enc_to_dec_proj.weight")
        state["text_proj.bias"] = src.pop("enc_to_dec_proj.bias")
    else:  # equal widths: MusicGen feeds the T5 states as they are
        state["text_proj.weight"] = torch.eye(config.dim)
    # MusicGen's unconditional rows see zeroed (projected, then masked) text: the null is 0
    state["null_text"] = torch.zeros(1, config.dim)
    state["audio_emb"] = torch.stack([src.pop(f"{pre}embed_tokens.{k}.weight")
                                      for k in range(config.num_codebooks)])
    state["audio_heads"] = torch.stack([_t(src.pop(f"decoder.lm_heads.{k}.weight"))
                                        for k in range(config.num_codebooks)], 1)
    for name in ("weight", "bias"):
        state[f"norm.{name}"] = src.pop(f"{pre}layer_norm.{name}")
    norms = {"norm1": "self_attn_layer_norm", "norm2": "encoder_attn_layer_norm",
             "norm3": "final_layer_norm"}
    for i in range(config.num_layers):
        hf, ours = f"{pre}layers.{i}.", f"blocks.{i}."

        def w(name: str) -> torch.Tensor:
            return _t(src.pop(f"{hf}{name}.weight"))  # noqa: B023 - used at once

        state[ours + "qkv"] = torch.cat([w("self_attn.q_proj"), w("self_attn.k_proj"),
                                         w("self_attn.v_proj")], 1)
        state[ours + "proj"] = w("self_attn.out_proj")
        state[ours + "cross_q"] = w("encoder_attn.q_proj")
        state[ours + "cross_kv"] = torch.cat([w("encoder_attn.k_proj"),
                                              w("encoder_attn.v_proj")], 1)
        state[ours + "cross_proj"] = w("encoder_attn.out_proj")
        state[ours + "fc1"], state[ours + "fc2"] = w("fc1"), w("fc2")
        for mine, theirs in norms.items():
            for name in ("weight", "bias"):
                state[f"{ours}{mine}.{name}"] = src.pop(f"{hf}{theirs}.{name}")
    if src:  # a bias or layer this mapping does not know would be silently dropped
        raise CheckpointError(f"MusicGen decoder weights not understood: {sorted(src)[:3]}")
    lm.load_state_dict(state, strict=True)
    return lm.eval()


def pipeline_from_musicgen(model: Any, tokenizer: Any, *, window_s: float = WINDOW_S,
                           context_s: float = CONTEXT_S, name: str = "MusicGen") -> Any:
    """A loaded `MusicgenForConditionalGeneration` and its tokenizer as a plan-free pipeline."""
    from musigen.codec import Codec
    from musigen.embedders.text import T5TextEncoder
    from musigen.musicot.pipeline import MusiCoTPipeline, MusiCoTPipelineConfig
    from musigen.musicot.sampling import SamplingParams

    codec = Codec(model.audio_encoder.float())
    text = T5TextEncoder(model.text_encoder.float(), tokenizer)
    config = MusiCoTPipelineConfig(
        text_encoder_kind="t5", embedder=None, thoughts=None, window_s=window_s,
        context_s=context_s, use_thoughts=False, converted_from=name,
        # MusicGen's own defaults: top-k 250, temperature 1, CFG 3
        sampling=SamplingParams(top_k=250, audio_cfg=3.0, audio_temperature=1.0),
    )
    return MusiCoTPipeline(codec, text, None, None, lm_from_musicgen(model), config)


def convert_musicgen(src: str | os.PathLike[str], out: str | os.PathLike[str], *,
                     window_s: float = WINDOW_S, context_s: float = CONTEXT_S,
                     overwrite: bool = False) -> Path:
    """Convert the MusicGen folder `src` into the pipeline folder `out` (written whole, or
    not at all); returns `out`."""
    from transformers import AutoTokenizer, MusicgenForConditionalGeneration

    from musigen.embedders.text import hf_from_pretrained

    source, target = Path(src).expanduser(), Path(out).expanduser()
    check_source(source)
    if not (window_s > 0 and 0 <= context_s < window_s):
        raise ConfigError(f"need window > 0 and 0 <= context < window seconds, got {window_s:g}, "
                          f"{context_s:g}")
    if target.exists() and not (target.is_dir() and not any(target.iterdir())) and not overwrite:
        raise ConfigError(f"{shorten(target)} exists; pass --overwrite to replace it")
    if target.resolve() == source.resolve():
        raise ConfigError("the output folder must differ from the MusicGen folder")
    from safetensors import SafetensorError

    tokenizer = hf_from_pretrained(AutoTokenizer, source, "MusicGen tokenizer")
    try:
        model = hf_from_pretrained(MusicgenForConditionalGeneration, source, "MusicGen")
    except SafetensorError as exc:  # a truncated or damaged weights file
        raise CheckpointError(f"corrupt MusicGen weights in {shorten(source)}: {exc}") from None
    pipe = pipeline_from_musicgen(model.eval(), tokenizer, window_s=window_s,
                                  context_s=context_s, name=f"MusicGen ({source.name})")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        pipe.save_pretrained(tmp)
        if target.exists():
            aside = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
            os.replace(target, aside / "old")
            os.replace(tmp, target)
            shutil.rmtree(aside, ignore_errors=True)
        else:
            os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target
