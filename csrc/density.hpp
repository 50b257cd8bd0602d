// Gaussian-broadened spectral density from stochastic Lanczos quadrature (Ghorbani et al. 2019,
// Eq. 8): phi(t) = (1/n_v) sum_l sum_j w_{l,j} N(t; x_{l,j}, sigma^2).
#pragma once

#include <Eigen/Dense>
#include <vector>

namespace tfbreak {

Eigen::VectorXd gaussian_density(const std::vector<Eigen::VectorXd>& nodes,
                                 const std::vector<Eigen::VectorXd>& weights,
                                 const Eigen::VectorXd& grid, double sigma);

}  // namespace tfbreak
