#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include "palette/histogram.hpp"
#include "views.hpp"

namespace py = pybind11;
using palette::bindings::U8Array;

void register_histogram(py::module_& m) {
    py::class_<palette::Histogram>(m, "Histogram",
                                   "Streaming 32x32x32 RGB histogram with exact per-cell moments.")
        .def(py::init<bool>(), py::arg("track_members") = false)
        .def(
            "add",
            [](palette::Histogram& h, const U8Array& pixels, std::uint8_t alpha_threshold,
               bool weight_by_alpha) {
                const palette::PixelView view = palette::bindings::view_of(pixels);
                const auto mode = weight_by_alpha ? palette::AlphaMode::weight : palette::AlphaMode::threshold;
                py::gil_scoped_release release;  // safe: only the buffer and the C++ histogram are touched
                h.add(view, alpha_threshold, mode);
            },
            py::arg("pixels").noconvert(), py::arg("alpha_threshold") = 128,
            py::arg("weight_by_alpha") = false,
            "Add a HxW or HxWxC (C in 1..4) uint8 array, read through its strides. Pixels with "
            "alpha below alpha_threshold are counted as transparent; with weight_by_alpha each "
            "pixel weighs its alpha (else the rest weigh in full).")
        .def(
            "merge",
            [](palette::Histogram& h, const palette::Histogram& other) {
                py::gil_scoped_release release;  // safe: C++ objects only
                h.merge(other);
            },
            py::arg("other"), "Add another histogram's counts into this one.")
        .def(
            "clear",
            [](palette::Histogram& h) {
                py::gil_scoped_release release;  // safe: C++ object only
                h.clear();
            },
            "Forget every pixel.")
        .def_property_readonly("pixels", &palette::Histogram::pixels, "Every pixel added.")
        .def_property_readonly("weight", &palette::Histogram::weight,
                               "Total weight of the color cells, in 1/255 pixel.")
        .def_property_readonly("transparent_pixels", &palette::Histogram::transparent_pixels,
                               "Pixels below the alpha threshold.")
        .def_property_readonly("tracks_members", &palette::Histogram::tracks_members)
        .def_property_readonly(
            "distinct_cells",
            [](const palette::Histogram& h) {
                std::size_t n = 0;
                h.for_each_cell([&](int, const palette::CellMoments&) { ++n; });
                return n;
            },
            "Number of non-empty color cells.");
}
