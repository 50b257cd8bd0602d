"""``python -m tfbreak.report``: see `tfbreak.report.cli`."""

import sys

from tfbreak.report.cli import main

sys.exit(main())
