// Runtime choice of SIMD kernels. Each kernel has a scalar reference; faster paths must give
// bit-identical results. The best supported path is chosen once; tests can force any path.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "palette/histogram.hpp"

namespace palette {

// Accumulates `count` pixels starting at `row` (pixel_stride bytes apart): opaque pixels into
// packed cells (kPackedCopies copies of kPackedStride cells; a kernel may use any of them),
// partly transparent ones in AlphaMode::weight straight into `direct` (kCellCount + 1 cells).
// members may be null (no member tracking).
using AccumulateRowFn = void (*)(const std::uint8_t* row, std::int64_t count,
                                 std::int64_t pixel_stride, int channels,
                                 std::uint8_t alpha_threshold, AlphaMode mode, PackedCell* cells,
                                 CellMoments* direct, std::uint32_t* members);

struct Kernels {
    const char* name;
    AccumulateRowFn accumulate_row;
};

namespace kernels {
const Kernels& scalar();
// Null when the build has no such path (e.g. non-x86 targets).
const Kernels* avx2();
}  // namespace kernels

std::vector<std::string> compiled_isas();   // paths built into this binary
std::vector<std::string> supported_isas();  // paths this CPU can run
std::string active_isa();
// "best", "scalar" or "avx2". Throws std::invalid_argument if unknown or unsupported here.
void set_isa(const std::string& name);
const Kernels& active_kernels();

}  // namespace palette
