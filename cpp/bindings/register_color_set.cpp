#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <vector>

#include "palette/color_set.hpp"
#include "views.hpp"

namespace py = pybind11;
using palette::bindings::U8Array;

void register_color_set(py::module_& m) {
    py::class_<palette::ColorSet>(m, "ColorSet",
                                  "The exact colors of some pixels with their weights, up to a limit.")
        .def(py::init<std::size_t>(), py::arg("limit"))
        .def(
            "add",
            [](palette::ColorSet& set, const U8Array& pixels, std::uint8_t alpha_threshold,
               bool weight_by_alpha) {
                const palette::PixelView view = palette::bindings::view_of(pixels);
                const auto mode = weight_by_alpha ? palette::AlphaMode::weight : palette::AlphaMode::threshold;
                py::gil_scoped_release release;  // safe: only the buffer and the C++ set are touched
                return set.add(view, alpha_threshold, mode);
            },
            py::arg("pixels").noconvert(), py::arg("alpha_threshold") = 128,
            py::arg("weight_by_alpha") = false,
            "Add pixels weighted as Histogram.add weighs them; False once over the limit.")
        .def("clear", &palette::ColorSet::clear, "Forget every color.")
        .def_property_readonly("overflowed", &palette::ColorSet::overflowed)
        .def_property_readonly("pixels", &palette::ColorSet::pixels, "Every pixel added.")
        .def_property_readonly("transparent_pixels", &palette::ColorSet::transparent_pixels,
                               "Pixels below the alpha threshold.")
        .def("__len__", &palette::ColorSet::size)
        .def(
            "colors",
            [](const palette::ColorSet& set) {
                std::vector<std::uint8_t> rgb;
                std::vector<std::uint64_t> weights;
                set.colors(rgb, weights);
                const auto n = static_cast<py::ssize_t>(weights.size());
                py::array_t<std::uint8_t> colors({n, py::ssize_t{3}});
                py::array_t<std::uint64_t> w(n);
                std::copy(rgb.begin(), rgb.end(), colors.mutable_data());
                std::copy(weights.begin(), weights.end(), w.mutable_data());
                return py::make_tuple(colors, w);
            },
            "(colors, weights): an Nx3 uint8 array by ascending color value, and N uint64 weights "
            "in 1/255 pixel.");
}
