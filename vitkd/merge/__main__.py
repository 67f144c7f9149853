"""`python -m vitkd.merge`: see `vitkd.merge.cli`."""

import sys

from vitkd.merge.cli import main

sys.exit(main())
