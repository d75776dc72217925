#include "palette/histogram.hpp"

#include <algorithm>
#include <stdexcept>
#include <string>

#include "palette/dispatch.hpp"

namespace palette {

void PixelView::validate() const {
    if (data == nullptr && width * height > 0) throw std::invalid_argument("pixel data is null");
    if (width < 0 || height < 0)
        throw std::invalid_argument("image size must not be negative, got " +
                                    std::to_string(width) + "x" + std::to_string(height));
    if (channels < 1 || channels > 4)
        throw std::invalid_argument("pixels must have 1 (gray), 2 (gray+alpha), 3 (RGB) or 4 (RGBA) "
                                    "channels, got " + std::to_string(channels));
    if (pixel_stride < channels)
        throw std::invalid_argument("pixel stride " + std::to_string(pixel_stride) +
                                    " is smaller than the channel count " + std::to_string(channels));
    if (height > 1 && row_stride < width * pixel_stride)
        throw std::invalid_argument("row stride " + std::to_string(row_stride) +
                                    " is smaller than a row (" + std::to_string(width * pixel_stride) +
                                    " bytes); rows must not overlap");
}

Histogram::Histogram(bool track_members)
    : track_members_(track_members),
      packed_(kPackedCopies * kPackedStride),
      cells_(kCellCount + 1),
      members_(track_members ? kCellCount + 1 : 0, 0u) {}

void Histogram::add(const PixelView& view, std::uint8_t alpha_threshold, AlphaMode mode) {
    view.validate();
    if (mode == AlphaMode::weight && alpha_threshold == 0)
        throw std::invalid_argument("weighting by alpha needs an alpha threshold of at least 1 "
                                    "(fully transparent pixels are reported as transparent)");
    const AccumulateRowFn accumulate = active_kernels().accumulate_row;
    std::uint32_t* members = track_members_ ? members_.data() : nullptr;
    for (std::int64_t y = 0; y < view.height; ++y) {
        const std::uint8_t* row = view.row(y);
        std::int64_t x = 0;
        while (x < view.width) {
            if (pending_ == kPackedCapacity) flush();
            const std::int64_t n = std::min(view.width - x, kPackedCapacity - pending_);
            accumulate(row + x * view.pixel_stride, n, view.pixel_stride, view.channels,
                       alpha_threshold, mode, packed_.data(), cells_.data(), members);
            pending_ += n;
            x += n;
        }
    }
    pixels_ += static_cast<std::uint64_t>(view.pixel_count());
    if (mode == AlphaMode::weight && (view.channels == 2 || view.channels == 4)) all_dirty_ = true;
}

void Histogram::flush() const {
    if (pending_ == 0) return;
    constexpr std::uint64_t mask21 = (std::uint64_t{1} << 21) - 1;
    constexpr std::uint64_t mask19 = (std::uint64_t{1} << 19) - 1;
    for (int index = 0; index <= kCellCount; ++index) {
        PackedCell p = packed_[static_cast<std::size_t>(index)];
        for (int copy = 1; copy < kPackedCopies; ++copy) {
            PackedCell& other = packed_[copy * kPackedStride + static_cast<std::size_t>(index)];
            p.lo += other.lo;  // fields cannot carry: the total stays within kPackedCapacity
            p.hi += other.hi;
            other = PackedCell{};
        }
        packed_[static_cast<std::size_t>(index)] = PackedCell{};
        if (p.hi == 0) continue;
        const std::uint64_t n = p.hi & mask19;
        CellMoments& c = cells_[static_cast<std::size_t>(index)];
        mark(static_cast<std::size_t>(index));
        if (index == kTransparentCell) {  // a pixel count; the colors there do not matter
            c.weight += n;
            continue;
        }
        const std::uint64_t dsq = p.hi >> 19;
        const std::uint64_t dr = p.lo & mask21, dg = (p.lo >> 21) & mask21, db = (p.lo >> 42) & mask21;
        // Cell base values (lowest channel value in the cell).
        const std::uint64_t br = static_cast<std::uint64_t>((index >> 10) & 31) << 3;
        const std::uint64_t bg = static_cast<std::uint64_t>((index >> 5) & 31) << 3;
        const std::uint64_t bb = static_cast<std::uint64_t>(index & 31) << 3;
        // Every packed pixel is opaque: it weighs kOpaqueWeight.
        constexpr std::uint64_t w = kOpaqueWeight;
        c.weight += w * n;
        c.sum_r += w * (n * br + dr);
        c.sum_g += w * (n * bg + dg);
        c.sum_b += w * (n * bb + db);
        // sum (base + d)^2 = n base^2 + 2 base sum d + sum d^2, over the three channels.
        c.sum_sq += w * (n * (br * br + bg * bg + bb * bb) + 2 * (br * dr + bg * dg + bb * db) + dsq);
    }
    pending_ = 0;
}

void Histogram::merge(const Histogram& other) {
    flush();
    other.flush();
    for (std::size_t i = 0; i < cells_.size(); ++i) {
        const CellMoments& o = other.cells_[i];
        if (o.weight == 0) continue;
        CellMoments& c = cells_[i];
        mark(i);
        c.weight += o.weight;
        c.sum_r += o.sum_r;
        c.sum_g += o.sum_g;
        c.sum_b += o.sum_b;
        c.sum_sq += o.sum_sq;
        if (track_members_ && other.track_members_) members_[i] = other.members_[i];
    }
    pixels_ += other.pixels_;
}

void Histogram::clear() {
    // flush() leaves the packed cells zeroed, so they need clearing only while pixels are pending.
    if (pending_ != 0) std::fill(packed_.begin(), packed_.end(), PackedCell{});
    if (all_dirty_) {
        std::fill(cells_.begin(), cells_.end(), CellMoments{});
        std::fill(members_.begin(), members_.end(), 0u);
    } else {
        for (std::size_t block = 0; block < kBlocks; ++block) {
            if (!(dirty_[block >> 6] >> (block & 63) & 1)) continue;
            const std::size_t begin = block * kBlockCells;
            const std::size_t end = std::min(begin + kBlockCells, cells_.size());
            std::fill(cells_.begin() + static_cast<long>(begin), cells_.begin() + static_cast<long>(end), CellMoments{});
            if (!members_.empty())
                std::fill(members_.begin() + static_cast<long>(begin), members_.begin() + static_cast<long>(end), 0u);
        }
    }
    dirty_.fill(0);
    all_dirty_ = false;
    pending_ = 0;
    pixels_ = 0;
}

const std::vector<CellMoments>& Histogram::cells() const {
    flush();
    return cells_;
}

std::uint64_t Histogram::weight() const {
    std::uint64_t total = 0;
    for_each_cell([&](int, const CellMoments& c) { total += c.weight; });
    return total;
}

std::uint64_t Histogram::transparent_pixels() const {
    flush();
    return cells_[kTransparentCell].weight;
}

}  // namespace palette
