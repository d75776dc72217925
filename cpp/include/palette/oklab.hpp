// sRGB <-> Oklab conversions (Björn Ottosson's published matrices), in double precision.
#pragma once

#include <array>
#include <cstdint>

namespace palette {

using Lab = std::array<double, 3>;
using Rgb8 = std::array<std::uint8_t, 3>;

double srgb_to_linear(double channel_0_255);        // table-interpolated, within 1e-7
double srgb_to_linear_exact(double channel_0_255);
double fast_cbrt(double x);                          // cube root, full precision, no libm
Lab srgb_to_oklab(double r, double g, double b);  // channels on 0-255, may be fractional
Rgb8 oklab_to_srgb8(const Lab& lab);              // clipped to the sRGB gamut, rounded

}  // namespace palette
