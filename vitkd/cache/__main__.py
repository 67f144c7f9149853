"""`python -m vitkd.cache`: cache teacher targets of tiles once (see `vitkd.cache.cli`)."""

import sys

from vitkd.cache.cli import main

if __name__ == "__main__":
    sys.exit(main())
