#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "palette/dispatch.hpp"

namespace py = pybind11;

void register_dispatch(py::module_& m) {
    m.def("compiled_isas", &palette::compiled_isas, "Instruction-set paths built into this binary.");
    m.def("supported_isas", &palette::supported_isas, "Instruction-set paths this CPU can run.");
    m.def("active_isa", &palette::active_isa, "The instruction-set path kernels use now.");
    m.def("set_isa", &palette::set_isa, py::arg("name"),
          "Force a kernel path: 'best', 'scalar' or 'avx2'. Raises ValueError if unavailable.");
}
