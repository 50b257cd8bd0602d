"""Analysis of run directories: smoothing, thresholds, break-even (Eq. 1), conjecture verdicts,
figures and the UMAP trajectory view. Modules are imported on demand (matplotlib/umap are heavy):

  smoothing        moving averages, maxima raw and smoothed
  thresholds       first epoch with training accuracy > threshold (Fig. 4 vertical lines)
  breakeven        eq1_lhs (Eq. 1) and the break-even detector
  series           derived series (λ*_K/λ1_K) and paper notation
  sweep            what a set of runs varies, labels
  summary          per-run maxima and windowed noisy statistics of the conjecture metrics
  noise            error bars, bootstrap maxima and medians, windows, ordering confidence
  verdicts         Conjecture 1 / 2 verdict rules (data; sentences and tables: tfbreak.report)
  caveats          what changes a verdict's reading: truncated, excluded, single-seed runs
  kbatch           λ1_K for two mini-batch sizes M (Fig. 9)
  figures          Figs. 2, 3, 4, 5, 7, 9, accuracy, Tr(K), Eq. 1
  umap_trajectory  Figs. 1 and 8
"""
