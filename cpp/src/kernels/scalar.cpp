// The reference kernels: portable C++, one pixel at a time. Every other path must match these.
#include "palette/dispatch.hpp"
#include "pixel_ops.hpp"

namespace palette::kernels {
namespace {

void accumulate_row_scalar(const std::uint8_t* row, std::int64_t count, std::int64_t pixel_stride,
                           int channels, std::uint8_t alpha_threshold, AlphaMode mode,
                           PackedCell* cells, CellMoments* direct, std::uint32_t* members) {
    const std::uint8_t* p = row;
    switch (channels) {
        case 1:
            for (std::int64_t i = 0; i < count; ++i, p += pixel_stride)
                detail::add_pixel(p[0], p[0], p[0], true, cells, members);
            break;
        case 2:
            for (std::int64_t i = 0; i < count; ++i, p += pixel_stride)
                detail::add_alpha_pixel(p[0], p[0], p[0], p[1], alpha_threshold, mode, cells,
                                        direct, members);
            break;
        case 3:
            for (std::int64_t i = 0; i < count; ++i, p += pixel_stride)
                detail::add_pixel(p[0], p[1], p[2], true, cells, members);
            break;
        default:
            for (std::int64_t i = 0; i < count; ++i, p += pixel_stride)
                detail::add_alpha_pixel(p[0], p[1], p[2], p[3], alpha_threshold, mode, cells,
                                        direct, members);
            break;
    }
}

}  // namespace

const Kernels& scalar() {
    static const Kernels table{"scalar", accumulate_row_scalar};
    return table;
}

}  // namespace palette::kernels
