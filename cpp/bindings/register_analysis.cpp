#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <stdexcept>

#include "palette/analysis_quality.hpp"
#include "palette/analysis_saliency.hpp"
#include "views.hpp"

namespace py = pybind11;
using palette::bindings::U8Array;

namespace {

template <class T>
py::array_t<T> to_array(const std::vector<T>& values) {
    py::array_t<T> out(static_cast<py::ssize_t>(values.size()));
    std::copy(values.begin(), values.end(), out.mutable_data());
    return out;
}

}  // namespace

void register_analysis(py::module_& m) {
    m.def(
        "sample_statistics",
        [](const U8Array& pixels) {
            const palette::PixelView view = palette::bindings::view_of(pixels);
            palette::SampleStatistics s;
            {
                py::gil_scoped_release release;  // safe: reads the buffer, writes only ``s``
                s = palette::sample_statistics(view);
            }
            py::array_t<std::uint64_t> histograms({py::ssize_t{4}, py::ssize_t{256}});
            for (std::size_t k = 0; k < 4; ++k)
                std::copy(s.histograms[k].begin(), s.histograms[k].end(),
                          histograms.mutable_data(static_cast<py::ssize_t>(k)));
            return py::make_tuple(histograms, py::make_tuple(s.luma_mean, s.luma_std, s.rg_mean,
                                                             s.rg_std, s.yb_mean, s.yb_std));
        },
        py::arg("pixels").noconvert(),
        "(histograms, (luma_mean, luma_std, rg_mean, rg_std, yb_mean, yb_std)) of HxWxC uint8 "
        "pixels (C 3 or 4, alpha ignored): histograms is 4x256 uint64, the largest channel then "
        "R, G, B; luma is 0.299 R + 0.587 G + 0.114 B, rg = R - G, yb = (R + G) / 2 - B.");
    m.def(
        "fine_sums",
        [](const U8Array& pixels, int usable_above, int usable_below, int band_rows, int band_step) {
            const palette::PixelView view = palette::bindings::view_of(pixels);
            palette::FineSums sums;
            {
                py::gil_scoped_release release;  // safe: reads the buffer, writes only ``sums``
                sums = palette::fine_sums(view, usable_above, usable_below, band_rows, band_step);
            }
            py::array_t<double> edges({py::ssize_t{2}, py::ssize_t{3}});
            for (std::size_t axis = 0; axis < 2; ++axis)
                std::copy(sums.edges[axis].begin(), sums.edges[axis].end(),
                          edges.mutable_data(static_cast<py::ssize_t>(axis)));
            return py::make_tuple(to_array(sums.tile_responses), edges, to_array(sums.steps[0]),
                                  to_array(sums.steps[1]), sums.bands);
        },
        py::arg("pixels").noconvert(), py::arg("usable_above"), py::arg("usable_below"),
        py::arg("band_rows") = 32, py::arg("band_step") = 128,
        "(tile_responses, edges, row_steps, column_steps, bands) over bands of HxWxC uint8 pixels "
        "(C 3 or 4): the mean |Laplacian| of each 16x16 tile whose largest channels all lie "
        "strictly between usable_above and usable_below (float32); per axis (0 down, 1 across) "
        "the count, squared centre step and squared 5-tap step of the 20 % strongest edges "
        "(2x3 float64); the mean squared step at each offset down and across, summed over bands.");
    m.def(
        "saliency_grid",
        [](const U8Array& pixels, int target_cells) {
            const palette::PixelView view = palette::bindings::view_of(pixels);
            palette::SaliencyGrid grid;
            {
                py::gil_scoped_release release;  // safe: reads the buffer, writes only ``grid``
                grid = palette::saliency_grid(view, target_cells);
            }
            py::array_t<float> out({static_cast<py::ssize_t>(grid.rows), static_cast<py::ssize_t>(grid.cols)});
            std::copy(grid.values.begin(), grid.values.end(), out.mutable_data());
            return py::make_tuple(out, grid.cell);
        },
        py::arg("pixels").noconvert(), py::arg("target_cells") = 2400,
        "(saliency, cell): the saliency (rows x cols float32) of a grid of about target_cells "
        "cells over HxWxC uint8 pixels (C 3 or 4), and the cell side in pixels.");
    m.def(
        "saliency_weighted",
        [](const U8Array& pixels, const py::array_t<float, py::array::c_style>& saliency, std::int64_t step) {
            const palette::PixelView view = palette::bindings::view_of(pixels);
            if (saliency.ndim() != 2) throw std::invalid_argument("saliency must be a 2-D float32 array");
            if (step < 1) throw std::invalid_argument("step must be at least 1");
            palette::SaliencyGrid grid;
            grid.rows = saliency.shape(0);
            grid.cols = saliency.shape(1);
            grid.values.assign(saliency.data(), saliency.data() + saliency.size());
            const auto out_h = static_cast<py::ssize_t>((view.height + step - 1) / step);
            const auto out_w = static_cast<py::ssize_t>((view.width + step - 1) / step);
            py::array_t<std::uint8_t> subject({out_h, out_w, py::ssize_t{4}});
            py::array_t<std::uint8_t> background({out_h, out_w, py::ssize_t{4}});
            std::uint8_t* front = subject.mutable_data();
            std::uint8_t* back = background.mutable_data();
            {
                py::gil_scoped_release release;  // safe: reads the inputs, writes the new arrays only
                palette::saliency_weighted(view, grid, step, front, back);
            }
            return py::make_tuple(subject, background);
        },
        py::arg("pixels").noconvert(), py::arg("saliency").noconvert(), py::arg("step") = 1,
        "(subject, background): every step-th pixel of HxWxC uint8 pixels (C 3 or 4) as RGBA "
        "whose alpha weighs it for the subject palette (its cell's saliency over the peak) and "
        "for the background palette (one minus that), times its own alpha if it has one.");
    m.def(
        "best_rectangle",
        [](const py::array_t<float, py::array::c_style>& gain) {
            if (gain.ndim() != 2) throw std::invalid_argument("gain must be a 2-D float32 array");
            const float* data = gain.data();
            const std::int64_t rows = gain.shape(0), cols = gain.shape(1);
            palette::CellRect r;
            {
                py::gil_scoped_release release;  // safe: reads the buffer only
                r = palette::best_rectangle(data, rows, cols);
            }
            return py::make_tuple(r.top, r.left, r.bottom, r.right);
        },
        py::arg("gain").noconvert(),
        "(top, left, bottom, right), exclusive ends, of the rectangle of cells of a C-contiguous "
        "2-D float32 array with the largest sum.");
}
