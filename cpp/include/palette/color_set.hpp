// The exact colors of an image with their weights, up to a limit. Flat artwork (charts, UI
// screens, logos, pixel art) holds a few hundred or thousand exact colors, and clustering those
// tells apart shades that the histogram's 8x8x8-value cells merge; a photo passes any small
// limit within a few thousand pixels, and then the set stops counting.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "palette/histogram.hpp"
#include "palette/pixels.hpp"

namespace palette {

class ColorSet {
public:
    // Holds up to `limit` distinct colors (1 .. 1 << 20).
    explicit ColorSet(std::size_t limit);

    // Adds the pixels of the view, weighted as Histogram::add weighs them. Returns false, and
    // ignores this and every later view, once the pixels hold more than `limit` colors.
    bool add(const PixelView& view, std::uint8_t alpha_threshold = 128,
             AlphaMode mode = AlphaMode::threshold);
    bool overflowed() const { return overflowed_; }
    std::size_t size() const { return size_; }
    std::uint64_t pixels() const { return pixels_; }                   // every pixel added
    std::uint64_t transparent_pixels() const { return transparent_; }  // below the threshold
    void clear();

    // The colors (RGB triplets, by ascending 0xRRGGBB value) and their weights.
    void colors(std::vector<std::uint8_t>& rgb, std::vector<std::uint64_t>& weights) const;

private:
    bool insert(std::uint32_t rgb, std::uint64_t weight);

    std::size_t limit_;
    std::size_t size_ = 0;
    bool overflowed_ = false;
    std::uint64_t pixels_ = 0, transparent_ = 0;
    std::uint32_t shift_;
    std::vector<std::uint32_t> keys_;    // 0x01RRGGBB, or 0 for an empty slot
    std::vector<std::uint64_t> weights_;
};

}  // namespace palette
