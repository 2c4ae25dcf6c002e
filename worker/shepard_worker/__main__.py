"""``python -m shepard_worker``."""

import sys

from .run import main

sys.exit(main())
