// Input checks shared by the native numerics; every message starts with the argument's name.
#pragma once

#include <Eigen/Dense>
#include <stdexcept>
#include <string>

namespace tfbreak {

template <typename Derived>
void require_finite(const Eigen::DenseBase<Derived>& x, const std::string& name) {
  if (!x.allFinite()) throw std::invalid_argument(name + ": contains NaN or infinity");
}

}  // namespace tfbreak
