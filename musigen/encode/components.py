"""The codec and embedder an encode run loads, named by a folder, a preset or `random:<name>`.

Random-weight components let CI and benchmarks encode offline in seconds.  There are two
random codec families because the two data paths need different things: codes need filled
codebooks (:func:`load_codec`, MusiCoT and litdata shards), while edit triplets only use
the continuous latents (:func:`random_codec`, InstructME edit shards).  A folder encoded
with a random codec saves it beside the data, so it stays decodable.
"""

from __future__ import annotations

from typing import Any

import torch

from musigen.errors import ConfigError

#: Random-weight latent codecs by name (`random:<name>`), for CI and benchmarks.
RANDOM_CODECS: tuple[str, ...] = ("tiny", "demo")


def load_codec(spec: str) -> Any:
    """A codec folder/preset, or `random:tiny`: a random 2 x 32-code codec with filled codebooks."""
    from musigen.codec import Codec, encodec_config, fill_codebooks

    if spec == "random:tiny":
        torch.manual_seed(0)
        codec = Codec.from_config(encodec_config(
            sample_rate=16000, upsampling_ratios=[8, 5, 4, 2], num_filters=4, hidden_size=16,
            codebook_size=32, num_codebooks=2, num_lstm_layers=1))
        fill_codebooks(codec.model, generator=torch.Generator().manual_seed(0))
        return codec
    return Codec.from_pretrained(spec)


def load_embedder(spec: str) -> Any:
    """An embedder folder / preset, or `random:tiny`: a random small musigen_clap (MiniLM text)."""
    from musigen.embedders.clap import load_embedder as load

    if spec == "random:tiny":
        from musigen.embedders.musigen_clap import MusigenClap, MusigenClapConfig

        torch.manual_seed(0)
        return MusigenClap(MusigenClapConfig(channels=[4, 8, 16], embed_dim=32, text_hidden=64,
                                             n_mels=24, window_s=2.5)).eval()
    return load(spec)


def random_codec(name: str, seed: int = 0) -> Any:
    """A random-init latent codec: "tiny" (16-dim latents, for CI) or the "demo" architecture."""
    from musigen.codec import Codec, encodec_config, preset_config

    if name == "tiny":
        config = encodec_config(sample_rate=16000, upsampling_ratios=[8, 5, 4, 2], num_filters=4,
                                hidden_size=16, codebook_size=16, num_codebooks=2,
                                num_lstm_layers=1)
    elif name == "demo":
        config = preset_config("demo")
    else:
        raise ConfigError(f"unknown random codec {name!r}; known: {', '.join(RANDOM_CODECS)}")
    torch.manual_seed(seed)
    return Codec.from_config(config)


def load_latent_codec(spec: str) -> Any:
    """`random:<name>` (see :func:`random_codec`), a preset (`demo`, `encodec_32khz`) or a folder."""
    from musigen.codec import Codec

    if spec.startswith("random:"):
        return random_codec(spec.split(":", 1)[1])
    return Codec.from_pretrained(spec)
