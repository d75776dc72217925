#pragma once
// The 1/8-scale image of a progressive JPEG, from its DC scans alone.
//
// A progressive JPEG sends every block's DC coefficient (the block's mean) in its first scans
// and the detail (AC coefficients) after. A decoder at 1/8 scale needs only the means, yet
// libjpeg still decodes, stores and walks every AC scan of the file (several times the work of
// a baseline file of the same size). This reads the DC scans and skips the rest: one 8-bit
// sample per 8x8 block per component, the same value libjpeg's 1/8-scale output starts from,
// converted to RGB as libjpeg converts it. Baseline, lossless, arithmetic-coded, 12-bit and
// four-component (CMYK) files are not handled: the caller decodes those another way.

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace palette {

struct JpegDc {
    std::uint32_t width = 0;   // of the source image
    std::uint32_t height = 0;
    std::uint32_t out_width = 0;   // ceil(width / 8)
    std::uint32_t out_height = 0;  // ceil(height / 8)
    std::uint32_t channels = 0;    // 1 (gray) or 3 (RGB)
    std::vector<std::uint8_t> pixels;  // out_height x out_width x channels, row-major
};

// Decodes ``data`` into ``out``. Returns an empty string on success; otherwise why the file is
// not one this decoder handles (not progressive, CMYK, corrupt...), and ``out`` is unspecified.
std::string decode_jpeg_dc(const std::uint8_t* data, std::size_t size, JpegDc& out);

}  // namespace palette
