#include "tridiagonal.hpp"

#include <stdexcept>
#include <string>

#include "validate.hpp"

namespace tfbreak {

TridiagonalEigen tridiagonal_eigh(const Eigen::VectorXd& alpha, const Eigen::VectorXd& beta,
                                  bool compute_vectors) {
  const Eigen::Index k = alpha.size();
  if (k == 0) throw std::invalid_argument("alpha: must hold at least one value, got an empty array");
  if (beta.size() != k - 1) {
    throw std::invalid_argument("beta: length must be len(alpha) - 1 = " + std::to_string(k - 1) +
                                ", got " + std::to_string(beta.size()));
  }
  require_finite(alpha, "alpha");
  require_finite(beta, "beta");

  TridiagonalEigen out;
  if (k == 1) {
    out.values = alpha;
    if (compute_vectors) out.vectors = Eigen::MatrixXd::Ones(1, 1);
    return out;
  }
  // Scale to unit max-norm so that neither overflow nor underflow can occur in the QR sweeps.
  const double scale = std::max(alpha.cwiseAbs().maxCoeff(), beta.cwiseAbs().maxCoeff());
  if (scale == 0.0) {
    out.values = Eigen::VectorXd::Zero(k);
    if (compute_vectors) out.vectors = Eigen::MatrixXd::Identity(k, k);
    return out;
  }
  Eigen::VectorXd diag = alpha / scale;
  Eigen::VectorXd sub = beta / scale;
  Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> solver;
  solver.computeFromTridiagonal(diag, sub, compute_vectors ? Eigen::ComputeEigenvectors
                                                           : Eigen::EigenvaluesOnly);
  if (solver.info() != Eigen::Success) {
    throw std::runtime_error("tridiagonal_eigh: implicit QR did not converge");
  }
  // Eigen returns ascending order; the Lanczos convention is descending (Ritz value 1 = largest).
  out.values = solver.eigenvalues().reverse() * scale;
  if (compute_vectors) out.vectors = solver.eigenvectors().rowwise().reverse();
  return out;
}

GaussQuadrature gauss_quadrature(const Eigen::VectorXd& alpha, const Eigen::VectorXd& beta) {
  const TridiagonalEigen eig = tridiagonal_eigh(alpha, beta, /*compute_vectors=*/true);
  GaussQuadrature rule;
  rule.nodes = eig.values.reverse();
  rule.weights = eig.vectors.row(0).reverse().transpose().array().square();
  return rule;
}

}  // namespace tfbreak
