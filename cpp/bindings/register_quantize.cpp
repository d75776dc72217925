#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <stdexcept>
#include <string>

#include "palette/quantize.hpp"
#include "views.hpp"

namespace py = pybind11;
using palette::bindings::U8Array;

namespace {

palette::PaletteParams make_params(int colors, bool snap, double max_color_fraction, int max_iterations,
                                   int swap_rounds) {
    if (swap_rounds < 0) throw std::invalid_argument("swap_rounds must not be negative");
    palette::PaletteParams p;
    p.colors = colors;
    p.snap_to_members = snap;
    p.max_color_fraction = max_color_fraction;
    p.max_iterations = max_iterations;
    p.swap_rounds = swap_rounds;
    return p;
}

std::vector<palette::Rgb8> palette_of(const U8Array& colors) {
    if (colors.ndim() != 2 || colors.shape(1) != 3)
        throw std::invalid_argument("palette must be a Kx3 uint8 array");
    std::vector<palette::Rgb8> out(static_cast<std::size_t>(colors.shape(0)));
    auto c = colors.unchecked<2>();
    for (py::ssize_t i = 0; i < colors.shape(0); ++i)
        out[static_cast<std::size_t>(i)] = {c(i, 0), c(i, 1), c(i, 2)};
    return out;
}

}  // namespace

void register_quantize(py::module_& m) {
    py::class_<palette::PaletteResult>(m, "PaletteResult", "Raw result of the native palette builder.")
        .def_property_readonly("colors", [](const palette::PaletteResult& r) {
            py::list out;
            for (const auto& c : r.colors) out.append(py::make_tuple(c[0], c[1], c[2]));
            return out;
        })
        .def_readonly("population", &palette::PaletteResult::population)
        .def_readonly("total_weight", &palette::PaletteResult::total_weight)
        .def_readonly("distinct_cells", &palette::PaletteResult::distinct_cells)
        .def_readonly("iterations", &palette::PaletteResult::iterations)
        .def_readonly("reason", &palette::PaletteResult::reason)
        .def_property_readonly("mse", [](const palette::PaletteResult& r) { return r.metrics.mse; })
        .def_property_readonly("psnr", [](const palette::PaletteResult& r) { return r.metrics.psnr; })
        .def_property_readonly("delta_e_mean", [](const palette::PaletteResult& r) { return r.metrics.delta_e_mean; })
        .def_property_readonly("delta_e_p95", [](const palette::PaletteResult& r) { return r.metrics.delta_e_p95; });

    m.def(
        "build_palette",
        [](const palette::Histogram& h, int colors, bool snap, double max_color_fraction, int max_iterations,
           int swap_rounds) {
            const auto params = make_params(colors, snap, max_color_fraction, max_iterations, swap_rounds);
            py::gil_scoped_release release;  // safe: C++ objects only
            return palette::build_palette(h, params);
        },
        py::arg("histogram"), py::arg("colors") = 8, py::arg("snap") = false,
        py::arg("max_color_fraction") = 0.0, py::arg("max_iterations") = 64, py::arg("swap_rounds") = 0,
        "Exactly `colors` distinct colors from a histogram (fewer only if it has fewer cells).");

    m.def(
        "build_palette_from_colors",
        [](const py::array_t<std::uint8_t, py::array::c_style>& colors,
           const py::array_t<std::uint64_t, py::array::c_style>& weights, int n_colors, bool snap,
           double max_color_fraction, int max_iterations, int swap_rounds) {
            if (colors.ndim() != 2 || colors.shape(1) != 3)
                throw std::invalid_argument("colors must be an Nx3 uint8 array");
            if (weights.ndim() != 1 || weights.shape(0) != colors.shape(0))
                throw std::invalid_argument("weights must be a 1-D uint64 array with one entry per color");
            const auto params = make_params(n_colors, snap, max_color_fraction, max_iterations, swap_rounds);
            const auto count = static_cast<std::size_t>(colors.shape(0));
            const std::uint8_t* c = colors.data();
            const std::uint64_t* w = weights.data();
            py::gil_scoped_release release;  // safe: raw buffers only
            return palette::build_palette_from_colors(c, w, count, params);
        },
        py::arg("colors").noconvert(), py::arg("weights").noconvert(), py::arg("n_colors") = 8,
        py::arg("snap") = false, py::arg("max_color_fraction") = 0.0, py::arg("max_iterations") = 64,
        py::arg("swap_rounds") = 0,
        "The palette algorithm on explicit unique colors with weights (1/255 pixel units).");

    m.def(
        "remap",
        [](const U8Array& pixels, const U8Array& palette_rgb, bool dither, std::uint8_t alpha_threshold,
           std::uint8_t transparent_index) {
            const palette::PixelView view = palette::bindings::view_of(pixels);
            const auto pal = palette_of(palette_rgb);
            py::array_t<std::uint8_t> out({view.height, view.width});
            std::uint8_t* dst = out.mutable_data();
            {
                py::gil_scoped_release release;  // safe: raw buffers only
                palette::remap(view, pal, dither, alpha_threshold, transparent_index, dst);
            }
            return out;
        },
        py::arg("pixels").noconvert(), py::arg("palette").noconvert(), py::arg("dither") = false,
        py::arg("alpha_threshold") = 128, py::arg("transparent_index") = 255,
        "Index of the nearest palette color (Oklab) for each pixel, as a HxW uint8 array.");
}
