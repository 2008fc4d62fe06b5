"""`python -m musigen.training fit --config recipes/<model>/<size>.yaml` (see `cli.py`)."""

from musigen.training.cli import main

if __name__ == "__main__":
    main()
