"""``python -m frost``: the same as the ``frost`` command."""

import sys

from frost.app.cli import main

sys.exit(main())
