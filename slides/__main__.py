"""`python -m slides`: see `slides.cli`."""

import sys

from slides.cli import main

sys.exit(main())
