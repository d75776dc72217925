#include "palette/color_set.hpp"

#include <algorithm>
#include <stdexcept>
#include <string>

namespace palette {

ColorSet::ColorSet(std::size_t limit) : limit_(limit) {
    if (limit < 1 || limit > (std::size_t{1} << 20))
        throw std::invalid_argument("a color set holds 1 to 1048576 colors, got " + std::to_string(limit));
    // Open addressing at most half full: a power of two at least twice the limit.
    std::uint32_t bits = 1;
    while ((std::size_t{1} << bits) < 2 * limit) ++bits;
    shift_ = 32 - bits;
    keys_.assign(std::size_t{1} << bits, 0u);
    weights_.assign(keys_.size(), 0u);
}

bool ColorSet::insert(std::uint32_t rgb, std::uint64_t weight) {
    const std::uint32_t key = rgb | 0x01000000u;
    const std::size_t mask = keys_.size() - 1;
    // Fibonacci hashing spreads neighbouring colors over the table.
    std::size_t slot = static_cast<std::size_t>((key * 2654435769u) >> shift_);
    while (true) {
        const std::uint32_t held = keys_[slot];
        if (held == key) {
            weights_[slot] += weight;
            return true;
        }
        if (held == 0) {
            if (size_ == limit_) return false;
            keys_[slot] = key;
            weights_[slot] = weight;
            ++size_;
            return true;
        }
        slot = (slot + 1) & mask;
    }
}

bool ColorSet::add(const PixelView& view, std::uint8_t alpha_threshold, AlphaMode mode) {
    view.validate();
    if (overflowed_) return false;
    pixels_ += static_cast<std::uint64_t>(view.pixel_count());
    const int c = view.channels;
    for (std::int64_t y = 0; y < view.height; ++y) {
        const std::uint8_t* p = view.row(y);
        for (std::int64_t x = 0; x < view.width; ++x, p += view.pixel_stride) {
            const std::uint32_t r = p[0], g = c >= 3 ? p[1] : p[0], b = c >= 3 ? p[2] : p[0];
            std::uint64_t weight = kOpaqueWeight;
            if (c == 2 || c == 4) {
                const std::uint32_t a = p[c - 1];
                transparent_ += a < alpha_threshold ? 1 : 0;
                if (mode == AlphaMode::threshold) {
                    if (a < alpha_threshold) continue;
                } else {
                    weight = a;
                    if (a == 0) continue;
                }
            }
            if (!insert(r | (g << 8) | (b << 16), weight)) {
                overflowed_ = true;
                return false;
            }
        }
    }
    return true;
}

void ColorSet::clear() {
    std::fill(keys_.begin(), keys_.end(), 0u);
    size_ = 0;
    overflowed_ = false;
    pixels_ = transparent_ = 0;
}

void ColorSet::colors(std::vector<std::uint8_t>& rgb, std::vector<std::uint64_t>& weights) const {
    std::vector<std::size_t> used;
    used.reserve(size_);
    for (std::size_t slot = 0; slot < keys_.size(); ++slot)
        if (keys_[slot] != 0) used.push_back(slot);
    auto value = [this](std::size_t slot) {  // 0xRRGGBB from the stored 0x01BBGGRR
        const std::uint32_t k = keys_[slot];
        return ((k & 0xFF) << 16) | (k & 0xFF00) | ((k >> 16) & 0xFF);
    };
    std::sort(used.begin(), used.end(), [&](std::size_t a, std::size_t b) { return value(a) < value(b); });
    rgb.resize(3 * used.size());
    weights.resize(used.size());
    for (std::size_t i = 0; i < used.size(); ++i) {
        const std::uint32_t k = keys_[used[i]];
        rgb[3 * i] = static_cast<std::uint8_t>(k & 0xFF);
        rgb[3 * i + 1] = static_cast<std::uint8_t>((k >> 8) & 0xFF);
        rgb[3 * i + 2] = static_cast<std::uint8_t>((k >> 16) & 0xFF);
        weights[i] = weights_[used[i]];
    }
}

}  // namespace palette
