"""Export an InstructME training run to a pipeline folder that `musigen edit --model` loads.

    musigen export instructme runs/instructme_demo/checkpoints/last.ckpt \
        checkpoints/instructme_demo

The pipeline gets the EMA U-Net (``--raw`` for the trained weights), the latent statistics
of the training data, and the codec and text encoder that pre-encoded that data (recorded
in the checkpoint; ``--codec`` overrides the codec, e.g. after moving it), and the chord
recogniser whose chords condition the U-Net, copied into the pipeline's ``chords/`` folder
(``--chords DIR``; default the shipped ``checkpoints/chords``, which is also what the
training data's chords were read with by default).  The checkpoint is read with
``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from musigen.errors import CheckpointError
from musigen.instructme.diffusion import DiffusionConfig
from musigen.instructme.latent_stats import LatentStats
from musigen.instructme.unet import InstructMEUNet, InstructMEUNetConfig


def load_chords(folder: str | os.PathLike[str] | None = None) -> Any:
    """The chord recogniser a pipeline carries: `folder`, else the shipped default."""
    from musigen.chords import ChordRecognizer, default_checkpoint, missing_default_message

    if folder is None:
        folder = default_checkpoint()
        if not (folder / "model.safetensors").is_file():
            raise CheckpointError(missing_default_message(folder) + " (or pass --chords DIR)")
    return ChordRecognizer.from_pretrained(folder)


def build_pipeline(unet: InstructMEUNet, stats: LatentStats, info: dict[str, Any],
                   diffusion: DiffusionConfig, codec: str | None = None,
                   chords: str | os.PathLike[str] | None = None) -> Any:
    """Assemble the pipeline around a trained U-Net from the data description `info`."""
    from musigen.codec import Codec
    from musigen.embedders.text import load_text_encoder
    from musigen.instructme.pipeline import InstructMEPipeline, InstructMEPipelineConfig

    missing = [k for k in ("codec", "text_encoder", "chord_vocab_name") if k not in info]
    if missing:
        raise CheckpointError(f"the run does not record its data ({', '.join(missing)}); "
                              "was it trained with InstructMEDataModule?")
    source = codec or info["codec"]
    text = load_text_encoder(info["text_encoder"]["kind"], info["text_encoder"]["path"])
    config = InstructMEPipelineConfig(diffusion=diffusion, chord_vocab=info["chord_vocab_name"])
    local = Path(source).exists()
    return InstructMEPipeline(Codec.from_pretrained(source), text, unet.eval(), stats, config,
                              codec_source=None if local else source,
                              chord_model=load_chords(chords))


def export_module(module: Any, out_dir: str | os.PathLike[str]) -> Path:
    """Export a live `InstructMEModule` (called at the end of `fit`)."""
    import copy

    unet = copy.deepcopy(module.export_unet()).cpu().float()
    pipe = build_pipeline(unet, module.latent_stats, module.data_info, module.diffusion_config)
    return pipe.save_pretrained(out_dir)


def export_checkpoint(ckpt_path: str | os.PathLike[str], out_dir: str | os.PathLike[str],
                      codec: str | None = None, raw: bool = False,
                      chords: str | os.PathLike[str] | None = None) -> Path:
    """Export a Lightning checkpoint of `InstructMEModule` to a pipeline folder."""
    from musigen.hub import read_training_checkpoint

    path = Path(ckpt_path)
    ckpt = read_training_checkpoint(path)
    hp = ckpt.get("hyper_parameters") or {}
    if not isinstance(hp.get("unet"), dict) or "state_dict" not in ckpt:
        raise CheckpointError(f"{path} is not an InstructMEModule checkpoint")
    state = ckpt["state_dict"]
    prefix = "unet." if raw or not any(k.startswith("ema.") for k in state) else "ema."
    unet = InstructMEUNet(InstructMEUNetConfig(**hp["unet"]))
    from musigen.hub import load_state_into

    load_state_into(unet, {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)},
                    str(path))
    stats = LatentStats(state["latent_mean"], state["latent_std"])
    pipe = build_pipeline(unet, stats, ckpt.get("instructme_data") or {},
                          DiffusionConfig(**hp["diffusion"]), codec, chords)
    return pipe.save_pretrained(out_dir)
