// The private native module palette_native._core. It only wires the register_* files.
#include <pybind11/pybind11.h>

#include "palette/histogram.hpp"

namespace py = pybind11;

void register_analysis(py::module_& m);
void register_arrow(py::module_& m);
void register_color_set(py::module_& m);
void register_dispatch(py::module_& m);
void register_histogram(py::module_& m);
void register_jpeg(py::module_& m);
void register_quantize(py::module_& m);

PYBIND11_MODULE(_core, m) {
    m.doc() = "PaletteEngine native core (private: import palette_native instead)";
    m.attr("OPAQUE_WEIGHT") = palette::kOpaqueWeight;
    register_dispatch(m);
    register_histogram(m);
    register_color_set(m);
    register_quantize(m);
    register_jpeg(m);
    register_analysis(m);
    register_arrow(m);
}
