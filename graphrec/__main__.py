"""``python -m graphrec`` (also how ``torchrun -m graphrec`` starts it)."""

import sys

from graphrec.cli import main

sys.exit(main())
