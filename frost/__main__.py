"""``python -m frost``: the same as the ``frost`` command."""

import sys

from frost.cli import main

sys.exit(main())
