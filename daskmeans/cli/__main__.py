"""``python -m daskmeans.cli``: the ``daskmeans`` command."""

import sys

from . import main

if __name__ == "__main__":  # not when imported (walking the package imports every module)
    sys.exit(main())
