// Quality sums for analyze(): one pass over a sample for the global statistics, one pass per
// band of the analysis image for the fine measures. Plain loops over float rows that compilers
// vectorise at the portable baseline; the sums are in double so their order barely matters.
#include "palette/analysis_quality.hpp"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstring>
#include <stdexcept>
#include <string>

namespace palette {
namespace {

constexpr int kBoxTaps = 5;          // the re-blur the sharpness sets the image's own step against
constexpr double kEdgeShare = 0.2;   // the share of the strongest edges the sharpness looks at
constexpr std::size_t kEdgeSampleStep = 7;  // the edge threshold is read from every 7th step
constexpr std::int64_t kTile = 16;   // noise tiles, in pixels

void require_rgb(const PixelView& pixels) {
    pixels.validate();
    if (pixels.channels < 3)
        throw std::invalid_argument("pixels must have 3 (RGB) or 4 (RGBA) channels, got " +
                                    std::to_string(pixels.channels));
}

inline float luma_of(const std::uint8_t* p) {
    return 0.299f * static_cast<float>(p[0]) + 0.587f * static_cast<float>(p[1]) +
           0.114f * static_cast<float>(p[2]);
}

inline std::uint8_t largest_of(const std::uint8_t* p) { return std::max({p[0], p[1], p[2]}); }

std::size_t idx(std::int64_t i) { return static_cast<std::size_t>(i); }

// Luma and "not clipped" of one band, row-major rows x width.
struct Band {
    std::int64_t rows = 0, width = 0;
    std::vector<float> y;
    std::vector<std::uint8_t> usable;
    std::vector<float> work;   // scratch: the second Laplacian pass, the 5-tap steps
    std::vector<float> picks;  // scratch: the sampled 5-tap steps
    std::vector<float> totals;  // scratch: per-column edge totals
    // Squared steps between neighbours: down (rows - 1) x width, across rows x (width - 1).
    std::vector<float> down2, across2;
    std::vector<std::uint32_t> bins;  // scratch: the edge threshold's buckets
    std::vector<std::uint8_t> planes;  // scratch: one row's R, G and B
    float at(std::int64_t r, std::int64_t c) const { return y[idx(r * width + c)]; }
};

// One row of interleaved pixels to three planes. Four-byte pixels (RGBX, RGBA) are read as
// words and split with shifts, which vectorise; other layouts byte by byte.
void to_planes(const std::uint8_t* __restrict row, std::int64_t width, std::int64_t stride,
               std::uint8_t* __restrict red, std::uint8_t* __restrict green,
               std::uint8_t* __restrict blue) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    if (stride == 4) {
        for (std::int64_t c = 0; c < width; ++c) {
            std::uint32_t word;
            std::memcpy(&word, row + 4 * c, sizeof word);
            red[c] = static_cast<std::uint8_t>(word);
            green[c] = static_cast<std::uint8_t>(word >> 8);
            blue[c] = static_cast<std::uint8_t>(word >> 16);
        }
        return;
    }
#endif
    for (std::int64_t c = 0; c < width; ++c, row += stride) {
        red[c] = row[0];
        green[c] = row[1];
        blue[c] = row[2];
    }
}

void load_band(const PixelView& pixels, std::int64_t top, std::int64_t rows, int above, int below,
               Band& band) {
    const std::int64_t width = pixels.width;
    band.rows = rows;
    band.width = width;
    band.y.resize(idx(rows * width));
    band.usable.resize(band.y.size());
    band.planes.resize(idx(3 * width));
    std::uint8_t* red = band.planes.data();
    std::uint8_t* green = red + width;
    std::uint8_t* blue = green + width;
    for (std::int64_t r = 0; r < rows; ++r) {
        // Channels to planes first, so the arithmetic below runs in vector lanes.
        to_planes(pixels.row(top + r), width, pixels.pixel_stride, red, green, blue);
        float* out = band.y.data() + r * width;
        std::uint8_t* ok = band.usable.data() + r * width;
        for (std::int64_t c = 0; c < width; ++c) {
            out[c] = 0.299f * static_cast<float>(red[c]) + 0.587f * static_cast<float>(green[c]) +
                     0.114f * static_cast<float>(blue[c]);
            const int largest = std::max(std::max(red[c], green[c]), blue[c]);
            ok[c] = static_cast<std::uint8_t>((largest > above) & (largest < below));
        }
    }
}

// The sum of value(0..n-1): in float, vectorised (the order of the adds is the compiler's
// lanes, fixed for a build), then in double.
template <class F>
double lane_sum(std::int64_t n, F&& value) {
    float total = 0.0f;
#pragma omp simd reduction(+ : total)
    for (std::int64_t c = 0; c < n; ++c) total += value(c);
    return static_cast<double>(total);
}

// Immerkaer's mask [[1,-2,1],[-2,4,-2],[1,-2,1]] is the outer product of [1,-2,1] with itself:
// one pass down the columns, one along the rows. Response (i, j) is centred on pixel (i+1, j+1).
void add_tile_responses(Band& band, FineSums& out) {
    const std::int64_t rows = band.rows, width = band.width;
    if (rows < kTile + 2 || width < kTile + 2) return;
    const std::int64_t tiles_y = (rows - 2) / kTile, tiles_x = (width - 2) / kTile;
    const std::int64_t used = tiles_x * kTile;
    std::vector<float>& response = band.work;
    response.resize(idx(width));
    std::vector<double> sums(idx(tiles_x));
    std::vector<std::uint8_t> whole(idx(tiles_x));
    std::vector<float> down(idx(width));
    for (std::int64_t ty = 0; ty < tiles_y; ++ty) {
        std::fill(sums.begin(), sums.end(), 0.0);
        std::fill(whole.begin(), whole.end(), std::uint8_t{1});
        for (std::int64_t i = ty * kTile; i < (ty + 1) * kTile; ++i) {
            const float* a = band.y.data() + i * width;
            const float* b = a + width;
            const float* c = b + width;
            for (std::int64_t j = 0; j < used + 2; ++j) down[idx(j)] = a[j] - 2.0f * b[j] + c[j];
            for (std::int64_t j = 0; j < used; ++j)
                response[idx(j)] = std::fabs(down[idx(j)] - 2.0f * down[idx(j + 1)] + down[idx(j + 2)]);
            const std::uint8_t* ok = band.usable.data() + (i + 1) * width + 1;
            for (std::int64_t tx = 0; tx < tiles_x; ++tx) {
                const float* r = response.data() + tx * kTile;
                const std::uint8_t* u = ok + tx * kTile;
                float row_sum = 0.0f;
                std::uint8_t all = 1;
#pragma omp simd reduction(+ : row_sum) reduction(& : all)
                for (std::int64_t j = 0; j < kTile; ++j) {
                    row_sum += r[j];
                    all &= u[j];
                }
                sums[idx(tx)] += static_cast<double>(row_sum);
                whole[idx(tx)] &= all;
            }
        }
        for (std::int64_t tx = 0; tx < tiles_x; ++tx)
            if (whole[idx(tx)])
                out.tile_responses.push_back(static_cast<float>(sums[idx(tx)] / (kTile * kTile)));
    }
}

// Adds the steps above `threshold` of one row: per column, one for the edge, its squared step
// at the centre `sharp2` and its squared 5-tap step `wide`.
void add_edges(const float* __restrict wide, const float* __restrict sharp2, float threshold,
               std::int64_t n, float* __restrict count, float* __restrict sharp,
               float* __restrict smooth) {
    for (std::int64_t c = 0; c < n; ++c) {
        const float edge = wide[c] > threshold ? 1.0f : 0.0f;
        count[c] += edge;
        sharp[c] += edge * sharp2[c];
        smooth[c] += edge * wide[c];
    }
}

// The squared steps between neighbours down and across the band, which the edges and the
// block steps both read.
void square_steps(Band& band) {
    const std::int64_t rows = band.rows, width = band.width;
    band.down2.resize(idx(std::max<std::int64_t>(rows - 1, 0) * width));
    band.across2.resize(idx(rows * std::max<std::int64_t>(width - 1, 0)));
    for (std::int64_t r = 0; r + 1 < rows; ++r) {
        const float* y = band.y.data() + r * width;
        float* out = band.down2.data() + r * width;
        for (std::int64_t c = 0; c < width; ++c) {
            const float d = y[c + width] - y[c];
            out[c] = d * d;
        }
    }
    for (std::int64_t r = 0; r < rows && width > 1; ++r) {
        const float* y = band.y.data() + r * width;
        float* out = band.across2.data() + r * (width - 1);
        for (std::int64_t c = 0; c + 1 < width; ++c) {
            const float d = y[c + 1] - y[c];
            out[c] = d * d;
        }
    }
}

// The rank-th smallest of `values` (all >= 0), as std::nth_element would find it: the bit
// patterns of non-negative floats sort like the floats, so a histogram of their top bits finds
// the bucket holding that rank in one pass, and only that bucket is sorted partly.
float select_rank(std::vector<float>& values, std::size_t rank, std::vector<std::uint32_t>& bins) {
    constexpr int kShift = 20;  // 2^12 buckets of the 32-bit patterns
    bins.assign(std::size_t{1} << (32 - kShift), 0u);
    const auto bucket = [](float v) {
        std::uint32_t bits;
        std::memcpy(&bits, &v, sizeof bits);
        return bits >> kShift;
    };
    for (const float v : values) ++bins[bucket(v)];
    std::size_t below = 0, chosen = 0;
    while (below + bins[chosen] <= rank) below += bins[chosen++];
    std::size_t kept = 0;
    for (const float v : values)
        if (bucket(v) == chosen) values[kept++] = v;
    const auto at = static_cast<std::ptrdiff_t>(rank - below);
    std::nth_element(values.begin(), values.begin() + at, values.begin() + static_cast<std::ptrdiff_t>(kept));
    return values[static_cast<std::size_t>(at)];
}

// The 20 % strongest edges of the band along one axis, by the step between neighbouring 5-tap
// means ((y[i + 5] - y[i]) / 5), set against the image's own step at their centre.
void add_edge_energies(Band& band, int axis, FineSums& out) {
    const std::int64_t rows = band.rows, width = band.width;
    const std::int64_t length = axis == 0 ? rows : width;
    if (length <= kBoxTaps + 2) return;
    const std::int64_t out_rows = axis == 0 ? rows - kBoxTaps : rows;
    const std::int64_t out_cols = axis == 0 ? width : width - kBoxTaps;
    const std::int64_t along = axis == 0 ? width : 1;  // index step of one pixel along the axis
    const std::int64_t centre = kBoxTaps / 2;
    std::vector<float>& wide = band.work;
    wide.resize(idx(out_rows * out_cols));
    for (std::int64_t r = 0; r < out_rows; ++r) {
        const float* y = band.y.data() + r * width;
        float* w = wide.data() + r * out_cols;
        for (std::int64_t c = 0; c < out_cols; ++c) {
            const float step = y[c + kBoxTaps * along] - y[c];
            w[c] = step * step;  // (5 x the blurred step)^2
        }
    }
    std::vector<float>& picks = band.picks;
    picks.resize((wide.size() + kEdgeSampleStep - 1) / kEdgeSampleStep);
    for (std::size_t i = 0; i < picks.size(); ++i) picks[i] = wide[i * kEdgeSampleStep];
    const auto rank = static_cast<std::size_t>(static_cast<double>(picks.size()) * (1.0 - kEdgeShare));
    const float threshold = select_rank(picks, rank, band.bins);
    // Per-column totals (plain element-wise adds, which vectorise), summed once at the end.
    std::vector<float>& totals = band.totals;
    totals.assign(idx(3 * out_cols), 0.0f);
    float* count_at = totals.data();
    float* sharp_at = count_at + out_cols;
    float* wide_at = sharp_at + out_cols;
    for (std::int64_t r = 0; r < out_rows; ++r) {
        // The squared step at the edge's centre, between pixels centre and centre + 1.
        const float* sharp2 = axis == 0 ? band.down2.data() + (r + centre) * width
                                        : band.across2.data() + r * (width - 1) + centre;
        add_edges(wide.data() + r * out_cols, sharp2, threshold, out_cols, count_at,
                  sharp_at, wide_at);
    }
    double count = 0.0, sharp_sum = 0.0, wide_sum = 0.0;
    for (std::int64_t c = 0; c < out_cols; ++c) {
        count += static_cast<double>(count_at[c]);
        sharp_sum += static_cast<double>(sharp_at[c]);
        wide_sum += static_cast<double>(wide_at[c]);
    }
    out.edges[idx(axis)][0] += count;
    out.edges[idx(axis)][1] += sharp_sum;
    out.edges[idx(axis)][2] += wide_sum / (kBoxTaps * kBoxTaps);
}

// Mean squared step between neighbours at each offset along the axis (block edges show as
// larger steps at one offset in eight).
void add_steps(const Band& band, FineSums& out) {
    const std::int64_t rows = band.rows, width = band.width;
    std::vector<double>& down = out.steps[0];
    std::vector<double>& across = out.steps[1];
    if (down.empty() && rows > 1) down.assign(idx(rows - 1), 0.0);
    if (across.empty() && width > 1) across.assign(idx(width - 1), 0.0);
    for (std::int64_t r = 0; r + 1 < rows && idx(r) < down.size(); ++r) {
        const float* d2 = band.down2.data() + r * width;
        down[idx(r)] += lane_sum(width, [&](std::int64_t c) { return d2[c]; }) /
                        static_cast<double>(width);
    }
    if (width < 2) return;
    std::vector<float> column_sums(idx(width - 1), 0.0f);
    for (std::int64_t r = 0; r < rows; ++r) {
        const float* d2 = band.across2.data() + r * (width - 1);
        for (std::int64_t c = 0; c + 1 < width; ++c) column_sums[idx(c)] += d2[c];
    }
    for (std::size_t c = 0; c < column_sums.size() && c < across.size(); ++c)
        across[c] += static_cast<double>(column_sums[c]) / static_cast<double>(rows);
}

}  // namespace

SampleStatistics sample_statistics(const PixelView& pixels) {
    require_rgb(pixels);
    SampleStatistics s;
    // Exact integer moments of the channels; luma and the opponent channels are linear in them.
    std::uint64_t r1 = 0, g1 = 0, b1 = 0, rr = 0, gg = 0, bb = 0, rg = 0, rb = 0, gb = 0;
    for (std::int64_t y = 0; y < pixels.height; ++y) {
        const std::uint8_t* p = pixels.row(y);
        for (std::int64_t c = 0; c < pixels.width; ++c, p += pixels.pixel_stride) {
            const std::uint32_t r = p[0], g = p[1], b = p[2];
            ++s.histograms[0][std::max({r, g, b})];
            ++s.histograms[1][r];
            ++s.histograms[2][g];
            ++s.histograms[3][b];
            r1 += r;
            g1 += g;
            b1 += b;
            rr += r * r;
            gg += g * g;
            bb += b * b;
            rg += r * g;
            rb += r * b;
            gb += g * b;
        }
    }
    s.pixels = static_cast<std::uint64_t>(pixels.pixel_count());
    if (s.pixels == 0) return s;
    const double n = static_cast<double>(s.pixels);
    const auto mean = [n](std::uint64_t v) { return static_cast<double>(v) / n; };
    const double mr = mean(r1), mg = mean(g1), mb = mean(b1);
    // Covariances of R, G, B (population), from which every linear mix's variance follows.
    const double vrr = mean(rr) - mr * mr, vgg = mean(gg) - mg * mg, vbb = mean(bb) - mb * mb;
    const double vrg = mean(rg) - mr * mg, vrb = mean(rb) - mr * mb, vgb = mean(gb) - mg * mb;
    const auto spread = [&](double wr, double wg, double wb) {
        const double v = wr * wr * vrr + wg * wg * vgg + wb * wb * vbb +
                         2.0 * (wr * wg * vrg + wr * wb * vrb + wg * wb * vgb);
        return std::sqrt(std::max(0.0, v));
    };
    s.luma_mean = 0.299 * mr + 0.587 * mg + 0.114 * mb;
    s.luma_std = spread(0.299, 0.587, 0.114);
    s.rg_mean = mr - mg;
    s.rg_std = spread(1.0, -1.0, 0.0);
    s.yb_mean = 0.5 * (mr + mg) - mb;
    s.yb_std = spread(0.5, 0.5, -1.0);
    return s;
}

FineSums fine_sums(const PixelView& pixels, int usable_above, int usable_below, int band_rows,
                   int band_step) {
    require_rgb(pixels);
    if (band_rows < 1 || band_step < band_rows)
        throw std::invalid_argument("bands need band_rows >= 1 and band_step >= band_rows, got " +
                                    std::to_string(band_rows) + " and " + std::to_string(band_step));
    FineSums out;
    const std::int64_t height = pixels.height;
    if (height == 0 || pixels.width == 0) return out;
    Band band;
    const auto measure = [&](std::int64_t top, std::int64_t rows) {
        load_band(pixels, top, rows, usable_above, usable_below, band);
        add_tile_responses(band, out);
        square_steps(band);
        add_edge_energies(band, 0, out);
        add_edge_energies(band, 1, out);
        add_steps(band, out);
        ++out.bands;
    };
    if (height <= 2 * std::int64_t{band_rows}) {
        measure(0, height);
        return out;
    }
    for (std::int64_t top = 0; top + band_rows <= height; top += band_step) measure(top, band_rows);
    return out;
}

}  // namespace palette
