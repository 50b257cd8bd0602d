#include "gram.hpp"

#include <algorithm>
#include <cmath>
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
  if (std::isnan(rtol) || std::isinf(rtol)) throw std::invalid_argument("rtol: must be finite");
  if (!(symmetry_rtol >= 0.0)) throw std::invalid_argument("symmetry_rtol: must be >= 0");
  const double gmax = gram.cwiseAbs().maxCoeff();
  GramSpectrum out;
  if (gmax == 0.0) {
    out.values = Eigen::VectorXd::Zero(L);
    out.vectors = Eigen::MatrixXd::Identity(L, L);
    out.rank = 0;
    return out;
  }
  // Work on G / max|G_ij| so that no sum below can overflow; the eigenvalues are scaled back.
  const Eigen::MatrixXd g = gram / gmax;
  const double asym = (g - g.transpose()).cwiseAbs().maxCoeff();
  if (asym > symmetry_rtol) {
    throw std::invalid_argument("gram: must be symmetric; max |G - G^T| / max |G| = " +
                                std::to_string(asym) + " exceeds symmetry_rtol = " +
                                std::to_string(symmetry_rtol));
  }
  Eigen::MatrixXd c = 0.5 * (g + g.transpose());
  if (center) {
    // J G J without forming J: subtract row means, column means, add the grand mean.
    const Eigen::VectorXd row_mean = c.rowwise().mean();
    const double grand = row_mean.mean();
    c.colwise() -= row_mean;
    c.rowwise() -= row_mean.transpose();
    c.array() += grand;
  }
  c /= static_cast<double>(L);

  Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> solver(c, Eigen::ComputeEigenvectors);
  if (solver.info() != Eigen::Success) {
    throw std::runtime_error("gram_spectrum: symmetric eigensolver did not converge");
  }
  out.values = solver.eigenvalues().reverse() * gmax;
  out.vectors = solver.eigenvectors().rowwise().reverse();
  // Centring cancels: eigenvalues below L * eps * max|G_ij| are round-off of the input scale even
  // when they are large relative to values(0) (e.g. all gradients equal up to rounding -> rank 0).
  const double floor = static_cast<double>(L) * std::numeric_limits<double>::epsilon() * gmax;
  const double tol_rel = rtol < 0 ? static_cast<double>(L) * std::numeric_limits<double>::epsilon()
                                  : rtol;
  const double tol = std::max(tol_rel * std::max(out.values(0), 0.0), floor);
  out.rank = (out.values.array() > tol).count();
  return out;
}

}  // namespace tfbreak
