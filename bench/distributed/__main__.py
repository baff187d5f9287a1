"""``python -m bench.distributed``: see ``bench.distributed.cli``."""

import sys

from bench.distributed.cli import main

sys.exit(main())
