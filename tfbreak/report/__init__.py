"""The report over a sweep of runs: figures, conjecture verdicts, break-even points (paper,
Sec. 3, Sec. 4.2 and Eq. 1). The reader and the report never import TensorFlow.

  build      the data model: sweep, break-even points, thresholds, figures, summaries, verdicts,
             caveats
  tables     tables (rows) and the CSV files (formula cells neutralised)
  prose      every sentence: headlines, checks, reasons, caveats, method, messages
  document   the report as blocks, the answer first; writes report.md, report.html and the
             companions
  render     blocks -> Markdown and blocks -> HTML, each escaped for its syntax (markupsafe),
             images inlined from the report's folder only
  formats    number and notation formats shared by tables and prose
  cli        ``python -m tfbreak.report`` (`main`)
"""

from tfbreak.report.cli import main

__all__ = ["main"]
