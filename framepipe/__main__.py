"""``python -m framepipe``: the same as the ``framepipe`` command."""

import sys

from framepipe.cli import main

sys.exit(main())
