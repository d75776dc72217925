// From a histogram (or weighted colors) to a palette of exactly K distinct colors.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "palette/histogram.hpp"
#include "palette/oklab.hpp"

namespace palette {

struct PaletteParams {
    int colors = 8;                   // K, 1..256
    bool snap_to_members = false;     // each color becomes a real image color (needs members)
    double max_color_fraction = 0.0;  // cap any cell's weight at this share of the total (0 = off)
    int max_iterations = 64;          // k-means iterations per stage
    int median_rounds = 3;            // Weiszfeld steps towards per-cluster medians (0 = off)
    int swap_rounds = 0;              // k-median local search: centers moved at most (0 = off)
    int swap_candidates = 32;         // ... points tried as a moved center's new place, per move
    int swap_settle_rounds = 3;       // ... median steps once the moves are done (at least 1)
};

struct PaletteMetrics {
    double mse = 0.0;           // mean squared error per channel, 0-255 scale
    double psnr = 0.0;          // dB; +inf when mse == 0
    double delta_e_mean = 0.0;  // Oklab distance x 100, pixel-weighted mean
    double delta_e_p95 = 0.0;   // ... and 95th percentile
};

struct PaletteResult {
    std::vector<Rgb8> colors;              // ordered by population, descending
    std::vector<std::uint64_t> population;  // weight nearest to each color (1/255 pixel units)
    PaletteMetrics metrics;                 // weighted like the population
    std::uint64_t total_weight = 0;         // 1/255 pixel units (kOpaqueWeight per opaque pixel)
    std::uint64_t distinct_cells = 0;      // non-empty histogram cells (or distinct input colors)
    int iterations = 0;                     // k-means iterations spent
    std::string reason;                     // why fewer than K colors came back, else empty
};

PaletteResult build_palette(const Histogram& histogram, const PaletteParams& params);

// The same algorithm on explicit weighted colors (e.g. an image's exact unique colors).
// colors: count x 3 bytes (RGB); weights: count weights in 1/255 pixel (kOpaqueWeight per
// opaque pixel).
PaletteResult build_palette_from_colors(const std::uint8_t* colors, const std::uint64_t* weights,
                                        std::size_t count, const PaletteParams& params);

// Maps each pixel to its nearest palette color in Oklab; optional Floyd-Steinberg dithering.
// out: width*height indices, row-major. Pixels with alpha < alpha_threshold get index
// `transparent_index`.
void remap(const PixelView& view, const std::vector<Rgb8>& palette, bool dither,
           std::uint8_t alpha_threshold, std::uint8_t transparent_index, std::uint8_t* out);

}  // namespace palette
