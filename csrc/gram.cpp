#include "gram.hpp"

#include <limits>
#include <stdexcept>
#include <string>

#include "validate.hpp"

namespace tfbreak {

GramSpectrum gram_spectrum(const Eigen::MatrixXd& gram, bool center, double rtol,
                           double symmetry_rtol) {
  const Eigen::Index L = gram.rows();
  if (L == 0 || gram.cols() == 0) throw std::invalid_argument("gram: must not be empty");
  if (gram.cols() != L) {
    throw std::invalid_argument("gram: must be square, got shape (" + std::to_string(L) + ", " +
                                std::to_string(gram.cols()) + ")");
  }
  require_finite(gram, "gram");
  const double gmax = gram.cwiseAbs().maxCoeff();
  const double asym = (gram - gram.transpose()).cwiseAbs().maxCoeff();
  if (asym > symmetry_rtol * gmax) {
    throw std::invalid_argument("gram: must be symmetric; max |G - G^T| = " + std::to_string(asym) +
                                " exceeds symmetry_rtol * max |G| = " +
                                std::to_string(symmetry_rtol * gmax));
  }
  Eigen::MatrixXd c = 0.5 * (gram + gram.transpose());
  if (center) {
    // J G J without forming J: subtract row means, column means, add the grand mean.
    const Eigen::VectorXd row_mean = c.rowwise().mean();
    const double grand = row_mean.mean();
    c.colwise() -= row_mean;
    c.rowwise() -= row_mean.transpose();
    c.array() += grand;
  }
  c /= static_cast<double>(L);

  GramSpectrum out;
  if (gmax == 0.0) {
    out.values = Eigen::VectorXd::Zero(L);
    out.vectors = Eigen::MatrixXd::Identity(L, L);
    out.rank = 0;
    return out;
  }
  Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> solver(c, Eigen::ComputeEigenvectors);
  if (solver.info() != Eigen::Success) {
    throw std::runtime_error("gram_spectrum: symmetric eigensolver did not converge");
  }
  out.values = solver.eigenvalues().reverse();
  out.vectors = solver.eigenvectors().rowwise().reverse();
  const double tol_rel = rtol < 0 ? static_cast<double>(L) * std::numeric_limits<double>::epsilon()
                                  : rtol;
  const double tol = tol_rel * std::max(out.values(0), 0.0);
  out.rank = (out.values.array() > tol).count();
  return out;
}

}  // namespace tfbreak
