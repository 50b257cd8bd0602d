#include "density.hpp"

#include <cmath>
#include <iomanip>
#include <limits>
#include <sstream>
#include <stdexcept>
#include <string>

#include "validate.hpp"

namespace tfbreak {

Eigen::VectorXd gaussian_density(const std::vector<Eigen::VectorXd>& nodes,
                                 const std::vector<Eigen::VectorXd>& weights,
                                 const Eigen::VectorXd& grid, double sigma) {
  if (nodes.empty()) throw std::invalid_argument("nodes: need at least one (nodes, weights) set");
  if (nodes.size() != weights.size()) {
    throw std::invalid_argument("weights: got " + std::to_string(weights.size()) +
                                " sets for " + std::to_string(nodes.size()) + " sets of nodes");
  }
  // A subnormal sigma would overflow 1 / (sigma sqrt(2 pi)) and the result would be NaN.
  if (!(sigma > 0.0) || !std::isnormal(sigma)) {
    std::ostringstream message;
    message << std::setprecision(17) << "sigma: must be a normal positive float (finite and >= "
            << std::numeric_limits<double>::min() << "), got " << sigma;
    throw std::invalid_argument(message.str());
  }
  if (grid.size() == 0) throw std::invalid_argument("grid: must not be empty");
  require_finite(grid, "grid");
  const double norm = 1.0 / (sigma * std::sqrt(2.0 * M_PI) * static_cast<double>(nodes.size()));
  Eigen::VectorXd density = Eigen::VectorXd::Zero(grid.size());
  for (std::size_t l = 0; l < nodes.size(); ++l) {
    const std::string idx = "[" + std::to_string(l) + "]";
    if (nodes[l].size() == 0) throw std::invalid_argument("nodes" + idx + ": must not be empty");
    if (nodes[l].size() != weights[l].size()) {
      throw std::invalid_argument("weights" + idx + ": length " + std::to_string(weights[l].size()) +
                                  " differs from len(nodes" + idx + ") = " +
                                  std::to_string(nodes[l].size()));
    }
    require_finite(nodes[l], "nodes" + idx);
    require_finite(weights[l], "weights" + idx);
    for (Eigen::Index j = 0; j < nodes[l].size(); ++j) {
      const Eigen::ArrayXd z = (grid.array() - nodes[l](j)) / sigma;
      density.array() += weights[l](j) * norm * (-0.5 * z.square()).exp();
    }
  }
  return density;
}

}  // namespace tfbreak
