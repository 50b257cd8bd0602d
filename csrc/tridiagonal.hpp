// Symmetric tridiagonal eigensolver for the Lanczos matrix T_k (paper App. C; Golub & Welsch 1969).
#pragma once

#include <Eigen/Dense>

namespace tfbreak {

struct TridiagonalEigen {
  Eigen::VectorXd values;   // descending
  Eigen::MatrixXd vectors;  // column j belongs to values[j]; empty when not requested
};

// Eigen-decomposition of the symmetric tridiagonal matrix with diagonal `alpha` (length k >= 1)
// and off-diagonal `beta` (length k - 1). Ritz values/vectors of a Lanczos run.
// Throws std::invalid_argument naming the argument on bad input.
TridiagonalEigen tridiagonal_eigh(const Eigen::VectorXd& alpha, const Eigen::VectorXd& beta,
                                  bool compute_vectors);

struct GaussQuadrature {
  Eigen::VectorXd nodes;    // ascending Ritz values
  Eigen::VectorXd weights;  // squared first components of the Ritz vectors; they sum to 1
};

// Gauss quadrature rule of the spectral measure of a unit start vector: for the k-step Lanczos
// matrix, sum_j w_j p(x_j) = v0^T p(A) v0 exactly for every polynomial p of degree <= 2k - 1.
GaussQuadrature gauss_quadrature(const Eigen::VectorXd& alpha, const Eigen::VectorXd& beta);

}  // namespace tfbreak
