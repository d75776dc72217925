// Per-pixel arithmetic shared by every kernel, so all ISA paths compute the same values.
#pragma once

#include <cstdint>

#include "palette/histogram.hpp"

namespace palette::kernels::detail {

inline std::uint64_t packed_lo(std::uint32_t r, std::uint32_t g, std::uint32_t b) {
    return std::uint64_t{r & 7u} | (std::uint64_t{g & 7u} << 21) | (std::uint64_t{b & 7u} << 42);
}

inline std::uint64_t packed_hi(std::uint32_t r, std::uint32_t g, std::uint32_t b) {
    const std::uint32_t dr = r & 7u, dg = g & 7u, db = b & 7u;
    return 1u | (std::uint64_t{dr * dr + dg * dg + db * db} << 19);
}

// Adds one pixel. Transparent pixels land in kTransparentCell.
inline void add_pixel(std::uint32_t r, std::uint32_t g, std::uint32_t b, bool opaque,
                      PackedCell* cells, std::uint32_t* members) {
    const int index = opaque ? cell_index(r, g, b) : kTransparentCell;
    PackedCell& cell = cells[index];
    cell.lo += packed_lo(r, g, b);
    cell.hi += packed_hi(r, g, b);
    if (members != nullptr) members[index] = r | (g << 8) | (b << 16);
}

// Adds one pixel with alpha `a` under `mode`: the packed path for pixels that count in full or
// not at all, and in AlphaMode::weight the direct weighted path for partly transparent ones
// (counted as transparent too when below the threshold).
inline void add_alpha_pixel(std::uint32_t r, std::uint32_t g, std::uint32_t b, std::uint32_t a,
                            std::uint8_t threshold, AlphaMode mode, PackedCell* cells,
                            CellMoments* direct, std::uint32_t* members) {
    if (mode == AlphaMode::threshold || a == 255 || a == 0) {
        add_pixel(r, g, b, a >= threshold, cells, members);
        return;
    }
    if (a < threshold) add_pixel(r, g, b, false, cells, members);
    const int index = cell_index(r, g, b);
    CellMoments& cell = direct[index];
    cell.weight += a;
    cell.sum_r += a * r;
    cell.sum_g += a * g;
    cell.sum_b += a * b;
    cell.sum_sq += std::uint64_t{a} * (r * r + g * g + b * b);
    if (members != nullptr) members[index] = r | (g << 8) | (b << 16);
}

}  // namespace palette::kernels::detail
