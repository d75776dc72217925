// A read-only view of 8-bit pixels in memory, addressed through strides (zero-copy from NumPy).
#pragma once

#include <cstddef>
#include <cstdint>

namespace palette {

// channels: 1 = gray, 2 = gray + alpha, 3 = RGB, 4 = RGBA.
// Strides are in bytes and may be larger than the packed size (a strip of a wider buffer).
struct PixelView {
    const std::uint8_t* data = nullptr;
    std::int64_t width = 0;
    std::int64_t height = 0;
    std::int64_t row_stride = 0;
    std::int64_t pixel_stride = 0;
    int channels = 0;

    // Throws std::invalid_argument with a message naming what is wrong.
    void validate() const;
    std::int64_t pixel_count() const { return width * height; }
    const std::uint8_t* row(std::int64_t y) const { return data + y * row_stride; }
};

}  // namespace palette
