"""``python -m streams.cli``: the ``spendsentry`` command."""

import sys

from streams.cli.main import main

sys.exit(main())
