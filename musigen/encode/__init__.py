"""Every pre-encoded / sharded training format, for both models, in one package.

Training reads these folders so that it never runs the codec, the CLAP embedder, the chord
recogniser or the text encoder.  One file per concept:

- :mod:`~musigen.encode.index`: the one `index.json` reader every format shares;
- :mod:`~musigen.encode.components`: the codec and embedder an encode run loads by name;
- :mod:`~musigen.encode.musicot_shards`: MusiCoT codes + thoughts + caption states
  (``musigen encode musicot``);
- :mod:`~musigen.encode.edit_shards` and :mod:`~musigen.encode.edit_build`: InstructME
  edit triplets, read and written (``musigen encode instructme``);
- :mod:`~musigen.encode.litdata_shards` and :mod:`~musigen.encode.litdata_items`: litdata
  shards of any manifest for streaming at scale (``musigen encode shards``).

This layer sits above the models (it runs them) and below training and eval (they read it).
"""
