"""``python -m graphc``: the ``graphc`` command (see :mod:`graphc.cli`)."""

import sys

from graphc.cli import main

sys.exit(main())
