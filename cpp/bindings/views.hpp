// NumPy array -> PixelView, read through its strides (no copy). Shared by the register files.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <stdexcept>
#include <string>

#include "palette/pixels.hpp"

namespace palette::bindings {

namespace py = pybind11;
using U8Array = py::array_t<std::uint8_t>;

inline PixelView view_of(const U8Array& a) {
    if (a.ndim() != 2 && a.ndim() != 3)
        throw std::invalid_argument("pixels must be a HxW or HxWxC uint8 array, got " +
                                    std::to_string(a.ndim()) + " dimensions");
    for (py::ssize_t d = 0; d < a.ndim(); ++d)
        if (a.strides(d) < 0) throw std::invalid_argument("pixel arrays with negative strides are not supported; pass a copy");
    if (a.ndim() == 3 && a.shape(2) > 1 && a.strides(2) != 1)
        throw std::invalid_argument("the channels of a pixel must be adjacent bytes (channel stride 1)");
    PixelView v;
    v.data = a.data();
    v.height = a.shape(0);
    v.width = a.shape(1);
    v.row_stride = a.strides(0);
    v.pixel_stride = a.strides(1);
    v.channels = a.ndim() == 3 ? static_cast<int>(a.shape(2)) : 1;
    if (v.width <= 1) v.pixel_stride = std::max<std::int64_t>(v.pixel_stride, v.channels);
    if (v.height <= 1) v.row_stride = std::max<std::int64_t>(v.row_stride, v.width * v.pixel_stride);
    v.validate();
    return v;
}

}  // namespace palette::bindings
