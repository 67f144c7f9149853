"""`python -m vitkd.embed`: tile embeddings for whole-slide images (see `vitkd.embed.cli`)."""

import sys

from vitkd.embed.cli import main

if __name__ == "__main__":
    sys.exit(main())
