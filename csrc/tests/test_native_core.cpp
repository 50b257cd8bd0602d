// Stand-alone check of the plain C++ numerics (no Python): built with -DTFBREAK_CPP_TESTS=ON.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <stdexcept>
#include <vector>

#include "../density.hpp"
#include "../gram.hpp"
#include "../tridiagonal.hpp"

namespace {
int checks = 0;
int failures = 0;
void check(bool ok, const char* what) {
  ++checks;
  if (!ok) {
    std::printf("FAIL: %s\n", what);
    ++failures;
  }
}
}  // namespace

int main() {
  // T = tridiag(1, 2, 1) of size n has eigenvalues 2 + 2 cos(j pi / (n + 1)).
  const int n = 50;
  Eigen::VectorXd alpha = Eigen::VectorXd::Constant(n, 2.0);
  Eigen::VectorXd beta = Eigen::VectorXd::Constant(n - 1, 1.0);
  const auto eig = tfbreak::tridiagonal_eigh(alpha, beta, true);
  double err = 0;
  for (int j = 1; j <= n; ++j) {
    err = std::max(err, std::abs(eig.values(j - 1) - (2 + 2 * std::cos(j * M_PI / (n + 1)))));
  }
  check(err < 1e-12, "tridiagonal_eigh matches the closed-form spectrum");
  const auto rule = tfbreak::gauss_quadrature(alpha, beta);
  check(std::abs(rule.weights.sum() - 1.0) < 1e-12, "quadrature weights sum to 1");

  // Gram of 3 points on a line: centred rank 1.
  Eigen::MatrixXd x(3, 2);
  x << 1, 2, 2, 4, 3, 6;
  const auto s = tfbreak::gram_spectrum(x * x.transpose(), true, -1.0, 1e-8);
  check(s.rank == 1, "collinear gradients give rank 1");
  check(std::abs(s.values(0) - 10.0 / 3.0) < 1e-12, "lambda_1 of the centred covariance");

  // Huge entries must not overflow inside the solver (it works on G / max|G_ij|).
  const Eigen::MatrixXd big = Eigen::MatrixXd::Constant(3, 3, 1e308);
  const auto huge = tfbreak::gram_spectrum(big, true, -1.0, 1e-8);
  check(huge.rank == 0 && huge.values.allFinite(), "max-double Gram: finite values, rank 0");
  // All gradients equal up to rounding of G: round-off of the centring is not rank.
  Eigen::MatrixXd g = Eigen::MatrixXd::Constant(4, 4, 1e5);
  g(0, 1) = g(1, 0) = 1e5 * (1 + 4e-16);
  check(tfbreak::gram_spectrum(g, true, -1.0, 1e-8).rank == 0, "all-equal gradients give rank 0");

  bool threw = false;
  try {
    tfbreak::tridiagonal_eigh(alpha, Eigen::VectorXd::Zero(3), false);
  } catch (const std::invalid_argument&) {
    threw = true;
  }
  check(threw, "wrong beta length throws invalid_argument");
  threw = false;
  try {
    tfbreak::gram_spectrum(g, true, std::nan(""), 1e-8);
  } catch (const std::invalid_argument&) {
    threw = true;
  }
  check(threw, "NaN rtol throws invalid_argument");

  // sigma must be a normal float: a subnormal one overflows the normalisation (NaN density).
  const std::vector<Eigen::VectorXd> nodes{Eigen::VectorXd::Constant(1, 0.0)};
  const std::vector<Eigen::VectorXd> weights{Eigen::VectorXd::Constant(1, 1.0)};
  const Eigen::VectorXd grid = Eigen::VectorXd::LinSpaced(3, -1.0, 1.0);
  for (const double sigma : {std::numeric_limits<double>::denorm_min(), 1e-310}) {
    threw = false;
    try {
      tfbreak::gaussian_density(nodes, weights, grid, sigma);
    } catch (const std::invalid_argument&) {
      threw = true;
    }
    check(threw, "subnormal sigma throws invalid_argument");
  }
  const double smallest = std::numeric_limits<double>::min();
  check(tfbreak::gaussian_density(nodes, weights, grid, smallest).allFinite(),
        "the smallest normal sigma gives a finite density");
  std::printf("%d passed, %d failed\n", checks - failures, failures);
  return failures == 0 ? 0 : 1;
}
