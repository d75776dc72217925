#include "palette/oklab.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

namespace palette {
namespace {

double linear_to_srgb(double x) {
    x = std::clamp(x, 0.0, 1.0);
    const double v = x <= 0.0031308 ? 12.92 * x : 1.055 * std::pow(x, 1.0 / 2.4) - 0.055;
    return v * 255.0;
}

}  // namespace

double srgb_to_linear_exact(double channel_0_255) {
    const double c = channel_0_255 / 255.0;
    return c <= 0.04045 ? c / 12.92 : std::pow((c + 0.055) / 1.055, 2.4);
}

namespace {

// The transfer curve sampled every 1/16 of a level; linear interpolation between samples is
// within 1e-7 of the exact curve and avoids a pow() per color in the hot paths.
constexpr int kLinearSteps = 16;
struct LinearTable {
    double v[255 * kLinearSteps + 2];
    LinearTable() {
        for (int i = 0; i <= 255 * kLinearSteps + 1; ++i)
            v[i] = srgb_to_linear_exact(static_cast<double>(i) / kLinearSteps);
    }
};
const LinearTable& linear_table() {
    static const LinearTable table;
    return table;
}

}  // namespace

double fast_cbrt(double x) {
    // Oklab feeds this cone responses in [0, 1] (a little beyond for out-of-gamut colors).
    // A bit-level first guess, then two Halley steps: cubic convergence gives full double
    // precision for normal inputs at a fraction of libm's cost.
    if (x == 0.0 || !std::isfinite(x)) return x;
    const bool negative = x < 0.0;
    const double a = negative ? -x : x;
    std::uint64_t bits;
    std::memcpy(&bits, &a, sizeof bits);
    bits = bits / 3 + 0x2A9F7893782DA1CEull;  // exponent divided by three, roughly
    double y;
    std::memcpy(&y, &bits, sizeof y);
    for (int i = 0; i < 3; ++i) {
        const double y3 = y * y * y;
        y = y * (y3 + 2.0 * a) / (2.0 * y3 + a);
    }
    return negative ? -y : y;
}

double srgb_to_linear(double channel_0_255) {
    const double x = std::clamp(channel_0_255, 0.0, 255.0) * kLinearSteps;
    const int i = static_cast<int>(x);
    const double f = x - i;
    const LinearTable& t = linear_table();
    return t.v[i] + (t.v[i + 1] - t.v[i]) * f;
}

Lab srgb_to_oklab(double r8, double g8, double b8) {
    const double r = srgb_to_linear(r8), g = srgb_to_linear(g8), b = srgb_to_linear(b8);
    const double l = fast_cbrt(0.4122214708 * r + 0.5363325363 * g + 0.0514459929 * b);
    const double m = fast_cbrt(0.2119034982 * r + 0.6806995451 * g + 0.1073969566 * b);
    const double s = fast_cbrt(0.0883024619 * r + 0.2817188376 * g + 0.6299787005 * b);
    return {0.2104542553 * l + 0.7936177850 * m - 0.0040720468 * s,
            1.9779984951 * l - 2.4285922050 * m + 0.4505937099 * s,
            0.0259040371 * l + 0.7827717662 * m - 0.8086757660 * s};
}

Rgb8 oklab_to_srgb8(const Lab& lab) {
    const double l_ = lab[0] + 0.3963377774 * lab[1] + 0.2158037573 * lab[2];
    const double m_ = lab[0] - 0.1055613458 * lab[1] - 0.0638541728 * lab[2];
    const double s_ = lab[0] - 0.0894841775 * lab[1] - 1.2914855480 * lab[2];
    const double l = l_ * l_ * l_, m = m_ * m_ * m_, s = s_ * s_ * s_;
    const double r = 4.0767416621 * l - 3.3077115913 * m + 0.2309699292 * s;
    const double g = -1.2684380046 * l + 2.6097574011 * m - 0.3413193965 * s;
    const double b = -0.0041960863 * l - 0.7034186147 * m + 1.7076147010 * s;
    auto to8 = [](double linear) {
        return static_cast<std::uint8_t>(std::lround(linear_to_srgb(linear)));
    };
    return {to8(r), to8(g), to8(b)};
}

}  // namespace palette
