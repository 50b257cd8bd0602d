// Spectrum of the gradient covariance K from the L x L Gram matrix of mini-batch gradients
// (paper App. C): K_M = (1/L) sum_i (g_i - g_bar)(g_i - g_bar)^T shares its non-zero eigenvalues
// with the L x L matrix (1/L) J G J, G_ij = <g_i, g_j>, J = I - 11^T / L.
#pragma once

#include <Eigen/Dense>

namespace tfbreak {

struct GramSpectrum {
  Eigen::VectorXd values;   // descending eigenvalues of (1/L) J G J (or (1/L) G uncentred)
  Eigen::MatrixXd vectors;  // column j: unit eigenvector in the L-dimensional sample space
  Eigen::Index rank;        // number of eigenvalues > max(rtol * values(0), L * eps * max|G_ij|)
};

// `gram` must be square, finite and symmetric to `symmetry_rtol` (>= 0) relative to max |G_ij|.
// rtol must be finite; rtol < 0 selects the default L * machine epsilon. The floor
// L * eps * max|G_ij| keeps round-off of the centring out of the rank.
GramSpectrum gram_spectrum(const Eigen::MatrixXd& gram, bool center, double rtol,
                           double symmetry_rtol);

}  // namespace tfbreak
