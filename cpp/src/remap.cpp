// Image -> palette indices: nearest color in Oklab per pixel, optional Floyd-Steinberg dithering.
#include <array>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "palette/quantize.hpp"

namespace palette {
namespace {

// Nearest-color search with a direct-mapped cache keyed by the exact 24-bit color: photos
// repeat colors heavily, and the Oklab conversion (three cube roots) is the expensive part.
class NearestCache {
public:
    explicit NearestCache(const std::vector<Rgb8>& palette) : keys_(kSize, kEmpty), values_(kSize, 0) {
        for (const Rgb8& c : palette) lab_.push_back(srgb_to_oklab(c[0], c[1], c[2]));
    }

    std::uint8_t find(int r, int g, int b) {
        const std::uint32_t key = static_cast<std::uint32_t>(r | (g << 8) | (b << 16));
        const std::uint32_t slot = (key * 2654435761u) >> (32 - kBits);
        if (keys_[slot] == key) return values_[slot];
        const Lab x = srgb_to_oklab(r, g, b);
        std::uint8_t best = 0;
        double bd = std::numeric_limits<double>::infinity();
        for (std::size_t j = 0; j < lab_.size(); ++j) {
            const double d0 = x[0] - lab_[j][0], d1 = x[1] - lab_[j][1], d2 = x[2] - lab_[j][2];
            const double d = d0 * d0 + d1 * d1 + d2 * d2;
            if (d < bd) { bd = d; best = static_cast<std::uint8_t>(j); }
        }
        keys_[slot] = key;
        values_[slot] = best;
        return best;
    }

private:
    static constexpr int kBits = 16;
    static constexpr std::size_t kSize = std::size_t{1} << kBits;
    static constexpr std::uint32_t kEmpty = 0xFFFFFFFFu;
    std::vector<Lab> lab_;
    std::vector<std::uint32_t> keys_;
    std::vector<std::uint8_t> values_;
};

struct Px { int r, g, b; bool opaque; };

Px read_pixel(const std::uint8_t* p, int channels, std::uint8_t alpha_threshold) {
    switch (channels) {
        case 1: return {p[0], p[0], p[0], true};
        case 2: return {p[0], p[0], p[0], p[1] >= alpha_threshold};
        case 3: return {p[0], p[1], p[2], true};
        default: return {p[0], p[1], p[2], p[3] >= alpha_threshold};
    }
}

}  // namespace

void remap(const PixelView& view, const std::vector<Rgb8>& palette, bool dither,
           std::uint8_t alpha_threshold, std::uint8_t transparent_index, std::uint8_t* out) {
    view.validate();
    if (palette.empty() || palette.size() > 256)
        throw std::invalid_argument("the palette must have 1 to 256 colors, got " + std::to_string(palette.size()));
    NearestCache cache(palette);
    const auto w = static_cast<std::size_t>(view.width);
    // Error rows for dithering, one pixel of padding on each side.
    std::vector<std::array<float, 3>> err_row(dither ? w + 2 : 0), err_next(dither ? w + 2 : 0);
    for (std::int64_t y = 0; y < view.height; ++y) {
        const std::uint8_t* row = view.row(y);
        std::uint8_t* dst = out + static_cast<std::size_t>(y) * w;
        for (std::size_t x = 0; x < w; ++x) {
            const Px px = read_pixel(row + static_cast<std::int64_t>(x) * view.pixel_stride, view.channels, alpha_threshold);
            if (!px.opaque) { dst[x] = transparent_index; continue; }
            if (!dither) { dst[x] = cache.find(px.r, px.g, px.b); continue; }
            const std::array<float, 3>& e = err_row[x + 1];
            float v[3] = {static_cast<float>(px.r) + e[0], static_cast<float>(px.g) + e[1], static_cast<float>(px.b) + e[2]};
            int q[3];
            for (int c = 0; c < 3; ++c) {
                v[c] = std::fmin(255.0f, std::fmax(0.0f, v[c]));
                q[c] = static_cast<int>(std::lround(v[c]));
            }
            const std::uint8_t j = cache.find(q[0], q[1], q[2]);
            dst[x] = j;
            for (std::size_t c = 0; c < 3; ++c) {
                const float d = v[c] - static_cast<float>(palette[j][c]);
                err_row[x + 2][c] += d * (7.0f / 16.0f);
                err_next[x][c] += d * (3.0f / 16.0f);
                err_next[x + 1][c] += d * (5.0f / 16.0f);
                err_next[x + 2][c] += d * (1.0f / 16.0f);
            }
        }
        if (dither) {
            err_row.swap(err_next);
            for (auto& e : err_next) e = {0.0f, 0.0f, 0.0f};
        }
    }
}

}  // namespace palette
