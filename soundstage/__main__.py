"""``python -m soundstage``: the same command as ``soundstage``."""

import sys

from soundstage.cli import main

sys.exit(main())
