// Stand-alone check of the plain C++ numerics (no Python): built with -DTFBREAK_CPP_TESTS=ON.
#include <cmath>
#include <cstdio>
#include <stdexcept>

#include "../gram.hpp"
#include "../tridiagonal.hpp"

namespace {
int failures = 0;
void check(bool ok, const char* what) {
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

  bool threw = false;
  try {
    tfbreak::tridiagonal_eigh(alpha, Eigen::VectorXd::Zero(3), false);
  } catch (const std::invalid_argument&) {
    threw = true;
  }
  check(threw, "wrong beta length throws invalid_argument");
  std::printf("%d passed, %d failed\n", 5 - failures, failures);
  return failures == 0 ? 0 : 1;
}
