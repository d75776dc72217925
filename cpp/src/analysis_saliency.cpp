// Saliency for analyze(): four cues on a coarse grid of cells over a ~64K-pixel sample.
#include "palette/analysis_saliency.hpp"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <stdexcept>
#include <string>

#include "palette/oklab.hpp"

namespace palette {
namespace {

constexpr int kBorderNeighbours = 4;   // background = mean distance to this many border colors
constexpr std::size_t kColorSamples = 96;  // border colors, and cells for the rarity
constexpr double kCenterSigma = 0.5;   // of each side
constexpr std::size_t kLanes = 8;       // for the nearest border colors

std::size_t idx(std::int64_t i) { return static_cast<std::size_t>(i); }

// Oklab colors as three float arrays, so distances to all of them vectorise.
struct Colors {
    std::vector<float> l, a, b;
    std::size_t size() const { return l.size(); }
    void push(const Lab& c) {
        l.push_back(static_cast<float>(c[0]));
        a.push_back(static_cast<float>(c[1]));
        b.push_back(static_cast<float>(c[2]));
    }
    void distances2(float l0, float a0, float b0, std::vector<float>& out) const {
        const std::size_t n = size();
#pragma omp simd
        for (std::size_t j = 0; j < n; ++j) {
            const float dl = l[j] - l0, da = a[j] - a0, db = b[j] - b0;
            out[j] = dl * dl + da * da + db * db;
        }
    }
    float mean_distance(float l0, float a0, float b0) const {
        const std::size_t n = size();
        float total = 0.0f;
#pragma omp simd reduction(+ : total)
        for (std::size_t j = 0; j < n; ++j) {
            const float dl = l[j] - l0, da = a[j] - a0, db = b[j] - b0;
            total += std::sqrt(dl * dl + da * da + db * db);
        }
        return total / static_cast<float>(n);
    }
};

// Divides by the 99th percentile (linear interpolation) and clips to 0-1; all zeros when the
// percentile is zero.
void normalise(std::vector<float>& values) {
    std::vector<float> sorted(values);
    const double position = 0.99 * static_cast<double>(sorted.size() - 1);
    const auto low = static_cast<std::size_t>(position);
    const std::size_t high = std::min(low + 1, sorted.size() - 1);
    std::nth_element(sorted.begin(), sorted.begin() + static_cast<std::ptrdiff_t>(low), sorted.end());
    const double at_low = sorted[low];
    const double at_high = high == low ? at_low
        : *std::min_element(sorted.begin() + static_cast<std::ptrdiff_t>(high), sorted.end());
    const double top = at_low + (at_high - at_low) * (position - static_cast<double>(low));
    for (float& v : values)
        v = top <= 1e-9 ? 0.0f : static_cast<float>(std::clamp(static_cast<double>(v) / top, 0.0, 1.0));
}

}  // namespace

SaliencyGrid saliency_grid(const PixelView& pixels, int target_cells) {
    pixels.validate();
    if (pixels.channels < 3)
        throw std::invalid_argument("pixels must have 3 (RGB) or 4 (RGBA) channels, got " +
                                    std::to_string(pixels.channels));
    if (target_cells < 1)
        throw std::invalid_argument("target_cells must be at least 1, got " + std::to_string(target_cells));
    const std::int64_t h = pixels.height, w = pixels.width;
    SaliencyGrid grid;
    grid.cell = std::max<std::int64_t>(
        1, static_cast<std::int64_t>(std::sqrt(static_cast<double>(h * w) / target_cells)));
    const std::int64_t cell = grid.cell;
    const std::int64_t rows = h / cell, cols = w / cell;
    if (rows < 3 || cols < 3) {  // too small to tell a subject from its border
        grid.rows = std::max<std::int64_t>(rows, 1);
        grid.cols = std::max<std::int64_t>(cols, 1);
        grid.values.assign(idx(grid.rows * grid.cols), 1.0f);
        return grid;
    }
    grid.rows = rows;
    grid.cols = cols;
    const std::size_t n = idx(rows * cols);

    // Per cell: the mean color (rounded to 8 bits, in Oklab) and the mean green gradient.
    std::vector<std::uint64_t> sums(n * 3, 0);
    std::vector<std::uint64_t> gradient(n, 0);
    const std::int64_t stride = pixels.pixel_stride;
    for (std::int64_t y = 0; y < rows * cell; ++y) {
        const std::uint8_t* row = pixels.row(y);
        const std::uint8_t* below = y + 1 < h ? pixels.row(y + 1) : nullptr;
        std::uint64_t* cell_sums = sums.data() + 3 * idx((y / cell) * cols);
        std::uint64_t* cell_detail = gradient.data() + idx((y / cell) * cols);
        for (std::int64_t cx = 0; cx < cols; ++cx) {
            std::uint32_t r = 0, g = 0, b = 0, detail = 0;
            for (std::int64_t x = cx * cell; x < (cx + 1) * cell; ++x) {
                const std::uint8_t* p = row + x * stride;
                r += p[0];
                g += p[1];
                b += p[2];
                const int green = p[1];
                if (x + 1 < w) detail += static_cast<std::uint32_t>(std::abs(p[stride + 1] - green));
                if (below != nullptr) detail += static_cast<std::uint32_t>(std::abs(below[x * stride + 1] - green));
            }
            cell_sums[3 * cx] += r;
            cell_sums[3 * cx + 1] += g;
            cell_sums[3 * cx + 2] += b;
            cell_detail[cx] += detail;
        }
    }
    const double area = static_cast<double>(cell * cell);
    std::vector<Lab> lab(n);
    std::vector<float> detail(n);
    for (std::size_t c = 0; c < n; ++c) {
        const auto level = [&](std::size_t k) {
            return std::floor(static_cast<double>(sums[3 * c + k]) / area + 0.5);
        };
        lab[c] = srgb_to_oklab(level(0), level(1), level(2));
        detail[c] = static_cast<float>(static_cast<double>(gradient[c]) / area);
    }

    // Distinctness: distance to the nearest few of (up to 96) colors on the image's border.
    std::vector<std::size_t> border;
    for (std::int64_t x = 0; x < cols; ++x) border.push_back(idx(x));
    for (std::int64_t x = 0; x < cols; ++x) border.push_back(idx((rows - 1) * cols + x));
    for (std::int64_t y = 1; y + 1 < rows; ++y) border.push_back(idx(y * cols));
    for (std::int64_t y = 1; y + 1 < rows; ++y) border.push_back(idx(y * cols + cols - 1));
    Colors border_sample, all_sample;
    for (std::size_t i = 0; i < border.size(); i += std::max<std::size_t>(1, border.size() / kColorSamples))
        border_sample.push(lab[border[i]]);
    for (std::size_t i = 0; i < n; i += std::max<std::size_t>(1, n / kColorSamples))
        all_sample.push(lab[i]);
    const std::size_t nearest = std::min<std::size_t>(kBorderNeighbours, border_sample.size());
    std::vector<float> distinct(n), rare(n);
    // Padded to whole lanes with distances that never win.
    std::vector<float> d((border_sample.size() + kLanes - 1) / kLanes * kLanes, INFINITY);
    for (std::size_t c = 0; c < n; ++c) {
        const float l = static_cast<float>(lab[c][0]), a = static_cast<float>(lab[c][1]),
                    b = static_cast<float>(lab[c][2]);
        border_sample.distances2(l, a, b, d);
        // The `nearest` smallest: each of 8 lanes keeps its 4 smallest through a min/max
        // network (vector ops), then the 4 smallest of those 32.
        static_assert(kBorderNeighbours == 4, "the network below keeps four per lane");
        float lanes[kBorderNeighbours][kLanes];
        std::fill(&lanes[0][0], &lanes[0][0] + kBorderNeighbours * kLanes, INFINITY);
        float* m0 = lanes[0];
        float* m1 = lanes[1];
        float* m2 = lanes[2];
        float* m3 = lanes[3];
        for (std::size_t j = 0; j < d.size(); j += kLanes) {
            const float* v = d.data() + j;
#pragma omp simd
            for (std::size_t lane = 0; lane < kLanes; ++lane) {
                const float x0 = v[lane];
                const float x1 = x0 < m0[lane] ? m0[lane] : x0;
                m0[lane] = x0 < m0[lane] ? x0 : m0[lane];
                const float x2 = x1 < m1[lane] ? m1[lane] : x1;
                m1[lane] = x1 < m1[lane] ? x1 : m1[lane];
                const float x3 = x2 < m2[lane] ? m2[lane] : x2;
                m2[lane] = x2 < m2[lane] ? x2 : m2[lane];
                m3[lane] = x3 < m3[lane] ? x3 : m3[lane];
            }
        }
        // Each lane's four are sorted: merge the lanes' heads.
        std::size_t head[kLanes] = {};
        float background = 0.0f;
        for (std::size_t k = 0; k < nearest; ++k) {
            std::size_t best = 0;
            for (std::size_t lane = 1; lane < kLanes; ++lane)
                if (lanes[head[lane]][lane] < lanes[head[best]][best]) best = lane;
            background += std::sqrt(lanes[head[best]][best]);
            ++head[best];
        }
        distinct[c] = background / static_cast<float>(nearest);
        // Rarity: mean distance to a fixed sample of all cells (global color contrast).
        rare[c] = all_sample.mean_distance(l, a, b);
    }
    normalise(distinct);
    normalise(rare);
    normalise(detail);

    std::vector<float> raw(n);
    for (std::int64_t y = 0; y < rows; ++y) {
        const double cy = (static_cast<double>(y) + 0.5) / static_cast<double>(rows) - 0.5;
        for (std::int64_t x = 0; x < cols; ++x) {
            const double cx = (static_cast<double>(x) + 0.5) / static_cast<double>(cols) - 0.5;
            const double center = std::exp(-(cy * cy + cx * cx) / (2.0 * kCenterSigma * kCenterSigma));
            const std::size_t c = idx(y * cols + x);
            raw[c] = static_cast<float>(static_cast<double>(distinct[c]) * detail[c] *
                                        std::sqrt(static_cast<double>(rare[c])) * center);
        }
    }
    // Smoothed over 3x3 cells, the border repeated outwards.
    grid.values.assign(n, 0.0f);
    for (std::int64_t y = 0; y < rows; ++y)
        for (std::int64_t x = 0; x < cols; ++x) {
            double total = 0.0;
            for (std::int64_t dy = -1; dy <= 1; ++dy)
                for (std::int64_t dx = -1; dx <= 1; ++dx) {
                    const std::int64_t yy = std::clamp<std::int64_t>(y + dy, 0, rows - 1);
                    const std::int64_t xx = std::clamp<std::int64_t>(x + dx, 0, cols - 1);
                    total += raw[idx(yy * cols + xx)];
                }
            grid.values[idx(y * cols + x)] = static_cast<float>(total / 9.0);
        }
    return grid;
}

void saliency_weighted(const PixelView& pixels, const SaliencyGrid& grid, std::int64_t step,
                       std::uint8_t* subject, std::uint8_t* background) {
    pixels.validate();
    if (pixels.channels < 3)
        throw std::invalid_argument("pixels must have 3 (RGB) or 4 (RGBA) channels, got " +
                                    std::to_string(pixels.channels));
    if (step < 1) throw std::invalid_argument("step must be at least 1, got " + std::to_string(step));
    if (grid.rows < 1 || grid.cols < 1 || grid.values.size() != idx(grid.rows * grid.cols))
        throw std::invalid_argument("the saliency grid must be a non-empty rows x cols array");
    const float peak = *std::max_element(grid.values.begin(), grid.values.end());
    const bool has_alpha = pixels.channels == 4;
    const std::int64_t h = pixels.height, w = pixels.width;
    std::vector<std::int64_t> col_of(idx((w + step - 1) / step));
    for (std::int64_t x = 0; x < w; x += step) col_of[idx(x / step)] = std::min(x * grid.cols / w, grid.cols - 1);
    for (std::int64_t y = 0; y < h; y += step) {
        const float* cells = grid.values.data() + std::min(y * grid.rows / h, grid.rows - 1) * grid.cols;
        const std::uint8_t* p = pixels.row(y);
        for (std::int64_t x = 0; x < w; x += step, subject += 4, background += 4) {
            const std::uint8_t* q = p + x * pixels.pixel_stride;
            const float weight = peak > 0.0f ? cells[col_of[idx(x / step)]] / peak : 1.0f;
            const float opacity = has_alpha ? static_cast<float>(q[3]) / 255.0f : 1.0f;
            const float behind = peak > 0.0f ? 1.0f - weight : 1.0f;
            for (int k = 0; k < 3; ++k) subject[k] = background[k] = q[k];
            subject[3] = static_cast<std::uint8_t>(std::clamp(std::nearbyint(weight * opacity * 255.0f), 0.0f, 255.0f));
            background[3] = static_cast<std::uint8_t>(std::clamp(std::nearbyint(behind * opacity * 255.0f), 0.0f, 255.0f));
        }
    }
}

CellRect best_rectangle(const float* gain, std::int64_t rows, std::int64_t cols) {
    if (rows < 1 || cols < 1)
        throw std::invalid_argument("the gain grid must have at least one cell, got " +
                                    std::to_string(rows) + "x" + std::to_string(cols));
    CellRect best{0, 0, 1, 1};
    double best_gain = -INFINITY;
    std::vector<double> column(idx(cols));
    for (std::int64_t top = 0; top < rows; ++top) {
        std::fill(column.begin(), column.end(), 0.0);
        for (std::int64_t bottom = top + 1; bottom <= rows; ++bottom) {
            const float* row = gain + (bottom - 1) * cols;
            for (std::int64_t x = 0; x < cols; ++x) column[idx(x)] += static_cast<double>(row[x]);
            // Largest prefix-sum difference: the best run of columns ending at each x.
            double running = 0.0, lowest = 0.0;
            std::int64_t lowest_at = 0;
            for (std::int64_t x = 0; x < cols; ++x) {
                const double before = running;
                if (before < lowest) {
                    lowest = before;
                    lowest_at = x;
                }
                running += column[idx(x)];
                if (running - lowest > best_gain) {
                    best_gain = running - lowest;
                    best = {top, lowest_at, bottom, x + 1};
                }
            }
        }
    }
    return best;
}

}  // namespace palette
