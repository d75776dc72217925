// The pixel sums behind analyze()'s no-reference quality score (palette_native/quality.py turns
// them into components). Luma is Y = 0.299 R + 0.587 G + 0.114 B on 8-bit sRGB values, in float.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "palette/pixels.hpp"

namespace palette {

// Global statistics of a sample of the image (about 64K pixels), from one pass.
struct SampleStatistics {
    // Histograms of the largest channel (row 0) and of R, G, B (rows 1-3).
    std::array<std::array<std::uint64_t, 256>, 4> histograms{};
    std::uint64_t pixels = 0;
    double luma_mean = 0.0, luma_std = 0.0;
    // Hasler and Suesstrunk's opponent channels rg = R - G, yb = (R + G) / 2 - B.
    double rg_mean = 0.0, rg_std = 0.0, yb_mean = 0.0, yb_std = 0.0;
};

// pixels: 3 or 4 channels (alpha ignored).
SampleStatistics sample_statistics(const PixelView& pixels);

// What the fine measures add up over horizontal bands of the analysis image.
struct FineSums {
    // Mean |Y * M| (M the 3x3 Laplacian difference mask) of each 16x16 tile whose pixels all
    // have their largest channel strictly between usable_above and usable_below.
    std::vector<float> tile_responses;
    // Per axis (0 = down the columns, 1 = along the rows), over the 20 % strongest edges by
    // the 5-tap step: edges counted, sum of the squared step at their centre, sum of the
    // squared step between 5-tap means.
    std::array<std::array<double, 3>, 2> edges{};
    // Per axis: the mean squared step at each offset along the axis, summed over the bands.
    std::array<std::vector<double>, 2> steps;
    int bands = 0;
};

// Bands of band_rows rows start every band_step rows (one band of the whole height when it is at
// most 2 x band_rows). pixels: 3 or 4 channels.
FineSums fine_sums(const PixelView& pixels, int usable_above, int usable_below, int band_rows,
                   int band_step);

}  // namespace palette
