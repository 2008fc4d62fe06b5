"""`musigen demo [--host 127.0.0.1] [--port 7860] [--model-gen DIR] [--model-edit DIR]`.

Serves the interactive demo (generate, multi-round edit, analyze) in the browser.  It needs
the optional extra: ``pip install 'musigen[demo]'``.  Loopback only unless --host says
otherwise; models default to the shipped demo checkpoints, as `generate` and `edit` do.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `demo` command."""
    p = sub.add_parser(
        "demo", help="serve the interactive web demo (needs the 'demo' extra)",
        description="Serve a web page to generate music, edit it round by round and analyze "
                    "recordings. Needs: pip install 'musigen[demo]'.",
    )
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    p.add_argument("--model-gen", type=Path, default=None,
                   help="MusiCoT pipeline folder (default: checkpoints/musicot_demo)")
    p.add_argument("--model-edit", type=Path, default=None,
                   help="InstructME pipeline folder (default: checkpoints/instructme_demo)")
    p.add_argument("--work-dir", type=Path, default=None,
                   help="where generated and edited WAVs are kept (default: a new temp folder)")
    p.add_argument("--max-duration", type=float, default=60.0,
                   help="longest piece the page will generate, in seconds (default 60)")
    p.add_argument("--max-upload-mb", type=float, default=50.0,
                   help="largest uploaded file, in MB (default 50); larger ones are refused")
    p.add_argument("--max-input-duration", type=float, default=300.0,
                   help="longest uploaded piece, in seconds (default 300)")
    p.set_defaults(func=_demo)


def _demo(args: argparse.Namespace) -> int:
    from musigen.demo_app.handlers import DemoLimits
    from musigen.demo_app.models import ModelPaths
    from musigen.demo_app.ui import require_gradio, serve
    from musigen.errors import CheckpointError, ConfigError

    if not 0 < args.port < 65536:
        raise ConfigError(f"--port must be in 1..65535, got {args.port}")
    if not 0 < args.max_duration <= 600:
        raise ConfigError(f"--max-duration must be in (0, 600] seconds, got {args.max_duration:g}")
    if not 0 < args.max_upload_mb <= 2000:
        raise ConfigError(f"--max-upload-mb must be in (0, 2000], got {args.max_upload_mb:g}")
    if not 0 < args.max_input_duration <= 1200:
        raise ConfigError("--max-input-duration must be in (0, 1200] seconds, got "
                          f"{args.max_input_duration:g}")
    for flag, path in (("--model-gen", args.model_gen), ("--model-edit", args.model_edit)):
        if path is not None and not path.is_dir():
            raise CheckpointError(f"{flag} folder not found: {path}")
    require_gradio()  # a missing extra is a one-line error before any model loads
    serve(ModelPaths(args.model_gen, args.model_edit), host=args.host, port=args.port,
          work_dir=args.work_dir,
          limits=DemoLimits(max_duration_s=args.max_duration, max_upload_mb=args.max_upload_mb,
                            max_input_s=args.max_input_duration))
    return 0
