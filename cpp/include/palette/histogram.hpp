// A streaming weighted color histogram: 32x32x32 RGB cells, each with exact moments
// (weight, per-channel weighted sums, weighted sum of squares) so cell means and errors are
// exact. Weights are integers in 1/255 of a pixel: an opaque pixel weighs kOpaqueWeight, and in
// AlphaMode::weight a pixel of alpha a weighs a (what it shows of its color).
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "palette/pixels.hpp"

namespace palette {

inline constexpr int kCellBits = 5;
inline constexpr int kCellsPerAxis = 1 << kCellBits;
inline constexpr int kCellCount = kCellsPerAxis * kCellsPerAxis * kCellsPerAxis;
// Counts the pixels below the alpha threshold (a pixel count, not a weight), so kernels never
// branch on alpha for them.
inline constexpr int kTransparentCell = kCellCount;
// The weight of one fully opaque pixel.
inline constexpr std::uint64_t kOpaqueWeight = 255;

// How alpha counts.
enum class AlphaMode {
    // Pixels below the threshold are left out; every other pixel counts in full.
    threshold,
    // Each pixel counts in proportion to its alpha (alpha 0 not at all); the threshold only
    // decides which pixels are reported as transparent.
    weight,
};

// Exact totals of one cell.
struct CellMoments {
    std::uint64_t weight = 0;  // in 1/255 pixel (kOpaqueWeight per opaque pixel)
    std::uint64_t sum_r = 0, sum_g = 0, sum_b = 0;  // weight x channel
    std::uint64_t sum_sq = 0;  // weight x (r^2 + g^2 + b^2)
};

// Packed accumulators that the kernels update with two adds per opaque pixel. Offsets inside a
// cell (value & 7) are summed instead of values, so every field stays small: flushed to
// CellMoments (times kOpaqueWeight) before kPackedCapacity pixels can overflow them. Partly
// transparent pixels in AlphaMode::weight are added to CellMoments directly.
//   lo: sum dr (bits 0-20) | sum dg (21-41) | sum db (42-62)
//   hi: count (bits 0-18)  | sum (dr^2 + dg^2 + db^2) (bits 19-63)
struct PackedCell {
    std::uint64_t lo = 0;
    std::uint64_t hi = 0;
};
inline constexpr std::int64_t kPackedCapacity = std::int64_t{1} << 18;
// Kernels may spread neighbouring pixels over this many copies of the packed cells: runs of
// pixels in one cell (common in photos) then do not wait on each other's stores.
inline constexpr int kPackedCopies = 2;
inline constexpr std::size_t kPackedStride = kCellCount + 1;  // cells per copy

inline constexpr int cell_index(std::uint32_t r, std::uint32_t g, std::uint32_t b) {
    return static_cast<int>(((r >> 3) << 10) | ((g >> 3) << 5) | (b >> 3));
}

class Histogram {
public:
    // track_members: also remember one real pixel color per cell (for medoid snapping).
    explicit Histogram(bool track_members = false);

    // Adds every pixel of the view. Pixels with alpha < alpha_threshold are counted as
    // transparent; how alpha weighs the rest is `mode` (AlphaMode::weight needs a threshold of
    // at least 1, so fully transparent pixels are always counted as transparent).
    void add(const PixelView& view, std::uint8_t alpha_threshold = 128,
             AlphaMode mode = AlphaMode::threshold);
    void merge(const Histogram& other);
    void clear();

    std::uint64_t pixels() const { return pixels_; }   // every pixel added
    std::uint64_t weight() const;                      // total weight of the cells
    std::uint64_t transparent_pixels() const;          // pixels below the alpha threshold
    bool tracks_members() const { return track_members_; }

    // Exact moments of all cells (index = cell_index(r, g, b)).
    const std::vector<CellMoments>& cells() const;
    // Calls f(index, moments) for every non-empty cell (below kTransparentCell), in index
    // order, visiting only the blocks of cells that were ever written.
    template <class F>
    void for_each_cell(F&& f) const {
        flush();
        for (std::size_t block = 0; block < kBlocks; ++block) {
            if (!all_dirty_ && !(dirty_[block >> 6] >> (block & 63) & 1)) continue;
            const std::size_t end = std::min<std::size_t>((block + 1) * kBlockCells, kCellCount);
            for (std::size_t i = block * kBlockCells; i < end; ++i)
                if (cells_[i].weight != 0) f(static_cast<int>(i), cells_[i]);
        }
    }
    // One real color (0xBBGGRR) per non-empty cell; empty unless track_members.
    const std::vector<std::uint32_t>& members() const { return members_; }

private:
    void flush() const;
    void mark(std::size_t cell) const { dirty_[cell >> 12] |= std::uint64_t{1} << ((cell >> 6) & 63); }

    // Which blocks of 64 cells hold data, so clearing and reading skip untouched memory. Partly
    // transparent pixels are added to cells by the kernels directly, which then marks them all.
    static constexpr std::size_t kBlockCells = 64;
    static constexpr std::size_t kBlocks = (kCellCount + 1 + kBlockCells - 1) / kBlockCells;
    mutable std::array<std::uint64_t, (kBlocks + 63) / 64> dirty_{};
    bool all_dirty_ = false;

    bool track_members_;
    mutable std::vector<PackedCell> packed_;   // kPackedCopies x kPackedStride entries
    mutable std::vector<CellMoments> cells_;   // kCellCount + 1 entries
    mutable std::int64_t pending_ = 0;         // pixels in packed_ not yet flushed
    std::uint64_t pixels_ = 0;
    std::vector<std::uint32_t> members_;       // kCellCount + 1 entries, or empty
};

}  // namespace palette
