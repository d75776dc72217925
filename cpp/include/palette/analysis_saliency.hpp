// The saliency map and subject rectangle behind analyze()'s subject (palette_native/subject.py
// documents the cues and their constants).
#pragma once

#include <cstdint>
#include <vector>

#include "palette/pixels.hpp"

namespace palette {

struct SaliencyGrid {
    std::int64_t rows = 0, cols = 0;
    std::int64_t cell = 1;      // cell side, in pixels of the input
    std::vector<float> values;  // rows x cols, row-major
};

// The saliency of each cell of a grid of about `target_cells` cells over a small RGB image
// (3 or 4 channels, alpha ignored): distinctness from the border's colors x detail x
// sqrt(rarity) x centre prior, smoothed over 3x3 cells.
SaliencyGrid saliency_grid(const PixelView& pixels, int target_cells);

// Every `step`-th pixel of `pixels` (along each axis) as RGBA whose alpha is its weight for the
// subject palette (its cell's saliency over the peak, nearest cell of the grid over the whole
// of `pixels`) and for the background palette (one minus that), both times the pixel's own
// alpha when it has one (4 channels). Each output holds ceil(h / step) x ceil(w / step) x 4
// bytes. A grid with no positive value weighs every pixel fully for both.
void saliency_weighted(const PixelView& pixels, const SaliencyGrid& grid, std::int64_t step,
                       std::uint8_t* subject, std::uint8_t* background);

struct CellRect {
    std::int64_t top = 0, left = 0, bottom = 0, right = 0;  // exclusive ends
};

// The rectangle of cells with the largest sum of `gain` (rows x cols, row-major): for every
// pair of top and bottom rows, Kadane's maximum subarray over the column sums. Ties go to the
// first found (top, then bottom, then right end, then left end ascending).
CellRect best_rectangle(const float* gain, std::int64_t rows, std::int64_t cols);

}  // namespace palette
