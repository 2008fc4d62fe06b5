"""Launch the musigen demo page: ``python demos/app.py [--port 7860] [--model-gen DIR] ...``.

The same as ``musigen demo`` (same flags); the page itself lives in the installed package,
:mod:`musigen.demo_app`, so that the console script works from any install.
"""

from __future__ import annotations

import sys

from musigen.cli import main

if __name__ == "__main__":
    sys.exit(main(["demo", *sys.argv[1:]]))
