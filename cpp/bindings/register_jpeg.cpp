#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <stdexcept>
#include <string>

#include "palette/jpeg_dc.hpp"

namespace py = pybind11;

void register_jpeg(py::module_& m) {
    m.def(
        "jpeg_dc",
        [](const py::bytes& data) {
            char* buffer = nullptr;
            py::ssize_t size = 0;
            if (PyBytes_AsStringAndSize(data.ptr(), &buffer, &size) != 0) throw py::error_already_set();
            palette::JpegDc image;
            std::string why;
            {
                py::gil_scoped_release release;  // safe: reads the immutable bytes, writes only ``image``
                why = palette::decode_jpeg_dc(reinterpret_cast<const std::uint8_t*>(buffer),
                                              static_cast<std::size_t>(size), image);
            }
            if (!why.empty()) throw std::invalid_argument(why);
            py::array_t<std::uint8_t> out({static_cast<py::ssize_t>(image.out_height),
                                           static_cast<py::ssize_t>(image.out_width),
                                           static_cast<py::ssize_t>(image.channels)});
            std::copy(image.pixels.begin(), image.pixels.end(), out.mutable_data());
            return out;
        },
        py::arg("data"),
        "The 1/8-scale image (HxWxC uint8, C 1 or 3) of a progressive JPEG from its DC scans alone; "
        "ValueError saying why for any other file.");
}
