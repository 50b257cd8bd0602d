// Thin pybind11 layer: validate and convert NumPy input to float64 Eigen objects (with the GIL),
// then run the plain C++ numerics with the GIL released.
#include <pybind11/eigen.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <new>
#include <string>
#include <vector>

#include "density.hpp"
#include "gram.hpp"
#include "tridiagonal.hpp"

namespace py = pybind11;
using RowMatrix = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

namespace {

using Float64Array = py::array_t<double, py::array::c_style | py::array::forcecast>;

// Raise MemoryError "NAME: ..." (the argument whose size asked for the memory). Needs the GIL.
[[noreturn]] void memory_error(const std::string& name, const std::string& what) {
  PyErr_SetString(PyExc_MemoryError, (name + ": " + what).c_str());
  throw py::error_already_set();
}

// f() with a failed C++ allocation (std::bad_alloc) raised as MemoryError naming `name`.
template <typename F>
auto allocating(const std::string& name, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const std::bad_alloc&) {
    memory_error(name, "not enough memory for a copy of it");
  }
}

// f() without the GIL; a failed allocation is raised (with the GIL) as MemoryError naming the
// argument `sized_by` whose size determines the work.
template <typename F>
void without_gil(const std::string& sized_by, F&& f) {
  bool out_of_memory = false;
  {
    py::gil_scoped_release release;
    try {
      f();
    } catch (const std::bad_alloc&) {
      out_of_memory = true;
    }
  }
  if (out_of_memory) memory_error(sized_by, "not enough memory for a problem of this size");
}

// f() building the Python result; NumPy's MemoryError is raised naming `sized_by`.
template <typename F>
py::object to_python(const std::string& sized_by, F&& f) {
  try {
    return allocating(sized_by, std::forward<F>(f));
  } catch (py::error_already_set& e) {
    if (!e.matches(PyExc_MemoryError)) throw;
    memory_error(sized_by, std::string("not enough memory for the result (") + e.what() + ")");
  }
}

// Any array-like with a floating dtype and the expected ndim, copied to a C-contiguous float64 array.
Float64Array as_float64(const py::handle& obj, const std::string& name, int ndim) {
  if (obj.is_none()) throw py::type_error(name + ": expected a float array, got None");
  py::array arr;
  try {
    arr = py::array::ensure(obj);
  } catch (const py::error_already_set&) {
    arr = py::array();
  }
  if (!arr) throw py::type_error(name + ": expected a float array, could not convert the input");
  const char kind = arr.dtype().kind();
  if (kind != 'f') {
    throw py::type_error(name + ": expected a floating-point array, got dtype " +
                         std::string(py::str(arr.dtype())));
  }
  if (arr.ndim() != ndim) {
    throw py::value_error(name + ": expected a " + std::to_string(ndim) + "-D array, got " +
                          std::to_string(arr.ndim()) + "-D");
  }
  try {
    return Float64Array(arr);  // copies unless it already is C-contiguous float64
  } catch (py::error_already_set& e) {
    if (!e.matches(PyExc_MemoryError)) throw;
    memory_error(name, "not enough memory for a float64 copy of " + std::to_string(arr.size()) +
                           " values (" + e.what() + ")");
  }
}

Eigen::VectorXd to_vector(const py::handle& obj, const std::string& name) {
  const auto a = as_float64(obj, name, 1);
  return allocating(name, [&]() -> Eigen::VectorXd {
    return Eigen::Map<const Eigen::VectorXd>(a.data(), a.shape(0));
  });
}

Eigen::MatrixXd to_matrix(const py::handle& obj, const std::string& name) {
  const auto a = as_float64(obj, name, 2);
  return allocating(name, [&]() -> Eigen::MatrixXd {
    return Eigen::Map<const RowMatrix>(a.data(), a.shape(0), a.shape(1));
  });
}

std::vector<Eigen::VectorXd> to_vectors(const py::handle& obj, const std::string& name) {
  if (py::isinstance<py::str>(obj) || !py::isinstance<py::sequence>(obj)) {
    // A single 2-D array is a sequence of rows; anything else must be a list of 1-D arrays.
    if (!py::isinstance<py::array>(obj)) {
      throw py::type_error(name + ": expected a sequence of 1-D float arrays");
    }
  }
  std::vector<Eigen::VectorXd> out;
  if (py::isinstance<py::array>(obj)) {
    const auto a = as_float64(obj, name, 2);
    const Eigen::Map<const RowMatrix> rows(a.data(), a.shape(0), a.shape(1));
    allocating(name, [&] {
      for (Eigen::Index i = 0; i < rows.rows(); ++i) out.emplace_back(rows.row(i).transpose());
    });
    return out;
  }
  const auto seq = py::reinterpret_borrow<py::sequence>(obj);
  for (py::ssize_t i = 0; i < static_cast<py::ssize_t>(seq.size()); ++i) {
    out.push_back(to_vector(seq[i], name + "[" + std::to_string(i) + "]"));
  }
  return out;
}

}  // namespace

PYBIND11_MODULE(_native, m) {
  m.doc() = "Host-side float64 numerics of tfbreak (Lanczos tridiagonal eigensolve, Gauss "
            "quadrature, Gram-matrix spectrum of the gradient covariance, spectral density).";

  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const std::invalid_argument& e) {
      PyErr_SetString(PyExc_ValueError, e.what());
    }
  });

  m.def(
      "tridiagonal_eigh",
      [](const py::object& alpha, const py::object& beta, bool compute_vectors) {
        const Eigen::VectorXd a = to_vector(alpha, "alpha");
        const Eigen::VectorXd b = to_vector(beta, "beta");
        tfbreak::TridiagonalEigen eig;
        without_gil("alpha", [&] { eig = tfbreak::tridiagonal_eigh(a, b, compute_vectors); });
        return to_python("alpha", [&]() -> py::object {
          py::object vectors = compute_vectors ? py::cast(eig.vectors) : py::none();
          return py::make_tuple(py::cast(eig.values), vectors);
        });
      },
      py::arg("alpha"), py::arg("beta"), py::arg("compute_vectors") = true,
      R"doc(Eigenpairs of the symmetric tridiagonal matrix T = tridiag(beta, alpha, beta).

Returns (values, vectors): values descending (Ritz values of a Lanczos run), vectors[:, j] the
unit eigenvector of values[j], or None when compute_vectors is False. float64 throughout.)doc");

  m.def(
      "gauss_quadrature",
      [](const py::object& alpha, const py::object& beta) {
        const Eigen::VectorXd a = to_vector(alpha, "alpha");
        const Eigen::VectorXd b = to_vector(beta, "beta");
        tfbreak::GaussQuadrature rule;
        without_gil("alpha", [&] { rule = tfbreak::gauss_quadrature(a, b); });
        return to_python("alpha", [&]() -> py::object {
          return py::make_tuple(py::cast(rule.nodes), py::cast(rule.weights));
        });
      },
      py::arg("alpha"), py::arg("beta"),
      R"doc(Gauss quadrature (nodes ascending, weights) of a k-step Lanczos run (Golub-Welsch).

weights[j] = (first component of the j-th Ritz vector)^2; sum_j weights[j] * p(nodes[j]) equals
v0^T p(A) v0 for a unit start vector v0 and every polynomial p of degree <= 2k - 1.)doc");

  m.def(
      "gram_spectrum",
      [](const py::object& gram, bool center, double rtol, double symmetry_rtol) {
        const Eigen::MatrixXd g = to_matrix(gram, "gram");
        tfbreak::GramSpectrum s;
        without_gil("gram", [&] { s = tfbreak::gram_spectrum(g, center, rtol, symmetry_rtol); });
        return to_python("gram", [&]() -> py::object {
          return py::make_tuple(py::cast(s.values), py::cast(s.vectors), s.rank);
        });
      },
      py::arg("gram"), py::arg("center") = true, py::arg("rtol") = -1.0,
      py::arg("symmetry_rtol") = 1e-8,
      R"doc(Spectrum of the covariance of L gradients from their raw Gram matrix G_ij = <g_i, g_j>.

Computes the eigen-decomposition of C = (1/L) J G J, J = I - 11^T/L (center=True; C = G/L
otherwise). Its eigenvalues are the non-zero eigenvalues of K_L = (1/L) sum_i (g_i - g_bar)
(g_i - g_bar)^T (paper App. C). Returns (values descending, vectors (L, L) by column, rank),
rank = #values > max(rtol * values[0], L * eps * max|G_ij|) (rtol < 0: L * eps).)doc");

  m.def(
      "gaussian_density",
      [](const py::object& nodes, const py::object& weights, const py::object& grid,
         double sigma) {
        const auto n = to_vectors(nodes, "nodes");
        const auto w = to_vectors(weights, "weights");
        const Eigen::VectorXd x = to_vector(grid, "grid");
        Eigen::VectorXd d;
        without_gil("grid", [&] { d = tfbreak::gaussian_density(n, w, x, sigma); });
        return to_python("grid", [&]() -> py::object { return py::cast(d); });
      },
      py::arg("nodes"), py::arg("weights"), py::arg("grid"), py::arg("sigma"),
      R"doc(Gaussian-broadened spectral density on `grid` from several quadrature sets.

phi(t) = (1/n_v) sum_l sum_j weights[l][j] N(t; nodes[l][j], sigma^2) (Ghorbani et al. 2019).)doc");
}
