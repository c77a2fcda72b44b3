"""`python -m l4tui`: the same as the `l4tui` command."""

import sys

from l4tui.cli import main

sys.exit(main())
