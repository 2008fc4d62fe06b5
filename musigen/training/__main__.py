"""`python -m musigen.training fit --config ...`: the contributor and launcher form of
`musigen train fit|validate` (the same LightningCLI, see `cli.py`); users run the latter."""

from musigen.training.cli import main

if __name__ == "__main__":
    main()
