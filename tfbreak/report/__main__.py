"""``python -m tfbreak.report``: see `tfbreak.report.cli`."""

from tfbreak.report.cli import run

run()
