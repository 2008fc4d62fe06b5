"""`musigen analyze song.wav [--plot timeline.png] [--json out.json] [--model DIR]`.

Prints a per-segment timeline of top tags (instruments, genre, mood, section) and chords:
the analysis MusiCoT reads off its plans, applied to any recording; then the song sections
found by self-similarity (`musigen.structure.sections`, what `musigen edit --section` uses).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from musigen.output_paths import add_overwrite_flag


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `analyze` command."""
    p = sub.add_parser(
        "analyze", help="per-segment timeline of tags and chords of a recording",
        description="Analyse audio as MusiCoT reads its plans: CLAP windows ranked against tag "
                    "texts, plus recognised chords.",
    )
    p.add_argument("audio", type=Path, help="an audio file (any rate and channel count)")
    p.add_argument("--model", type=Path, default=None,
                   help="a MusiCoT pipeline folder (its segments and thought tokens are used) or a "
                        "plain embedder folder; default: the shipped demo generator, so the "
                        "segments are the ones `musigen generate` plans in")
    p.add_argument("--window", type=float, default=10.0,
                   help="window seconds when --model is a plain embedder (default 10)")
    p.add_argument("--top-k", type=int, default=3, help="instruments per segment (default 3)")
    p.add_argument("--no-chords", action="store_true", help="skip chord recognition")
    p.add_argument("--no-sections", action="store_true",
                   help="skip the song-section analysis (intro / verse / chorus / bridge / "
                        "outro from self-similarity; what `musigen edit --section` uses)")
    p.add_argument("--plot", type=Path, default=None, help="write the timeline as a PNG")
    p.add_argument("--json", type=Path, default=None, help="write the analysis as JSON")
    add_overwrite_flag(p)
    p.set_defaults(func=_analyze)


def _analyze(args: argparse.Namespace) -> int:
    from musigen.atomic import write_json
    from musigen.audio import audio_info, load_audio, require_duration
    from musigen.limits import check_input_duration
    from musigen.output_paths import check_distinct, check_output
    from musigen.errors import ConfigError
    from musigen.musicot.analysis import analyze, plot_timeline
    from musigen.musicot.pipeline import load_analyzer
    from musigen.structure.sections import find_sections

    if args.top_k < 1:
        raise ConfigError(f"--top-k must be at least 1, got {args.top_k}")
    if not args.window > 0:
        raise ConfigError(f"--window must be > 0 seconds, got {args.window}")
    outputs = [path for path in (args.json, args.plot) if path is not None]
    for path in outputs:
        check_output(path, inputs=[args.audio], overwrite=args.overwrite)
    check_distinct(outputs)
    check_input_duration(audio_info(args.audio), what="the audio")  # header only
    wav, sr = load_audio(args.audio)
    require_duration(wav, sr, str(args.audio))  # before the models load
    embedder, tokenizer = load_analyzer(args.model)
    segments = analyze(wav, sr, embedder, tokenizer, window_s=args.window, top_k=args.top_k,
                       chords=not args.no_chords)
    print(f"{args.audio}  {wav.shape[-1] / sr:.1f} s  {len(segments)} segment(s)")
    for seg in segments:
        print(seg.line())
    sections = [] if args.no_sections else find_sections(wav, sr)
    if sections:
        print("sections: " + ", ".join(f"{_clock(s.start)}-{_clock(s.end)} {s.label}"
                                       for s in sections))
    if args.json is not None:
        write_json(args.json, {"audio": str(args.audio),
                               "segments": [s.to_dict() for s in segments],
                               "sections": [[s.start, s.end, s.label] for s in sections]})
        print(f"wrote {args.json}")
    if args.plot is not None:
        plot_timeline(segments, args.plot, title=str(args.audio.name))
        print(f"wrote {args.plot}")
    return 0


def _clock(seconds: float) -> str:
    """m:ss.s"""
    m, s = divmod(seconds, 60.0)
    return f"{int(m)}:{s:04.1f}"
