"""``python -m daskmeans.cli``: the ``daskmeans`` command."""

import sys

from . import main

sys.exit(main())
