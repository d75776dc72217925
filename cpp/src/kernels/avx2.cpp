// AVX2 kernels: eight pixels at a time for packed RGB and RGBA rows. Cell indices and offset
// keys are computed in vector registers; the scatter into cells stays scalar (AVX2 has no
// conflict-free scatter) and adds precomputed increments. Other layouts use the scalar
// reference.
#include "palette/dispatch.hpp"
#include "pixel_ops.hpp"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

namespace palette::kernels {
namespace {

// Packed increments depend only on the offsets inside the cell (value & 7 per channel):
// 512 combinations, precomputed once (8 KiB, stays in L1).
struct alignas(16) Increments {
    PackedCell add[512];  // same layout as a cell: one 16-byte add per pixel
    Increments() {
        for (std::uint32_t key = 0; key < 512; ++key) {
            const std::uint32_t r = key & 7, g = (key >> 3) & 7, b = key >> 6;
            add[key] = PackedCell{detail::packed_lo(r, g, b), detail::packed_hi(r, g, b)};
        }
    }
};
const Increments& increments() {
    static const Increments table;
    return table;
}

// Lanes hold pixels as 0xAABBGGRR. Writes, per pixel, cell index << 9 | offset key.
__attribute__((target("avx2"))) inline __m256i cell_and_key(__m256i px, __m256i opaque_mask) {
    const __m256i five = _mm256_set1_epi32(0x1F);
    const __m256i r5 = _mm256_and_si256(_mm256_srli_epi32(px, 3), five);
    const __m256i g5 = _mm256_and_si256(_mm256_srli_epi32(px, 11), five);
    const __m256i b5 = _mm256_and_si256(_mm256_srli_epi32(px, 19), five);
    __m256i cell = _mm256_or_si256(_mm256_slli_epi32(r5, 10),
                                   _mm256_or_si256(_mm256_slli_epi32(g5, 5), b5));
    // Transparent pixels go to the extra cell.
    cell = _mm256_blendv_epi8(_mm256_set1_epi32(kTransparentCell), cell, opaque_mask);
    const __m256i key = _mm256_or_si256(
        _mm256_and_si256(px, _mm256_set1_epi32(7)),
        _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi32(px, 5), _mm256_set1_epi32(7 << 3)),
                        _mm256_and_si256(_mm256_srli_epi32(px, 10), _mm256_set1_epi32(7 << 6))));
    return _mm256_or_si256(_mm256_slli_epi32(cell, 9), key);
}

__attribute__((target("avx2"))) inline void scatter8(__m256i packed, __m256i px,
                                                     const Increments& inc, PackedCell* cells,
                                                     std::uint32_t* members) {
    alignas(32) std::uint32_t slots[8];
    _mm256_store_si256(reinterpret_cast<__m256i*>(slots), packed);
    static_assert(kPackedCopies == 2, "odd pixels use the second copy");
    for (int k = 0; k < 8; ++k) {
        // One 16-byte add updates both packed words of the cell; odd pixels go to the second
        // copy so a run of pixels in one cell forms two independent chains.
        auto* cell = reinterpret_cast<__m128i*>(cells + (k & 1) * kPackedStride + (slots[k] >> 9));
        const auto* add = reinterpret_cast<const __m128i*>(inc.add + (slots[k] & 511));
        _mm_storeu_si128(cell, _mm_add_epi64(_mm_loadu_si128(cell), _mm_load_si128(add)));
    }
    if (members != nullptr) {
        alignas(32) std::uint32_t colors[8];
        _mm256_store_si256(reinterpret_cast<__m256i*>(colors),
                           _mm256_and_si256(px, _mm256_set1_epi32(0x00FFFFFF)));
        for (int k = 0; k < 8; ++k) members[slots[k] >> 9] = colors[k];
    }
}

__attribute__((target("avx2"))) void accumulate_row_avx2(const std::uint8_t* row,
                                                         std::int64_t count,
                                                         std::int64_t pixel_stride, int channels,
                                                         std::uint8_t alpha_threshold,
                                                         AlphaMode mode, PackedCell* cells,
                                                         CellMoments* direct,
                                                         std::uint32_t* members) {
    std::int64_t i = 0;
    const Increments& inc = increments();
    if (channels == 4 && pixel_stride == 4 && mode == AlphaMode::threshold) {
        // Opaque when alpha >= threshold, i.e. alpha > threshold - 1 (signed compare on 0..255).
        const __m256i limit = _mm256_set1_epi32(static_cast<int>(alpha_threshold) - 1);
        for (; i + 8 <= count; i += 8) {
            const __m256i px = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + 4 * i));
            const __m256i alpha = _mm256_srli_epi32(px, 24);
            const __m256i opaque = _mm256_cmpgt_epi32(alpha, limit);
            scatter8(cell_and_key(px, opaque), px, inc, cells, members);
        }
    } else if (channels == 4 && pixel_stride == 4) {
        // Weighted by alpha: eight pixels that are each fully opaque or fully transparent take
        // the packed path (alpha 0 is always below the threshold, which is at least 1 here);
        // any other group goes through the scalar reference pixel by pixel.
        const __m256i full = _mm256_set1_epi32(255);
        for (; i + 8 <= count; i += 8) {
            const __m256i px = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + 4 * i));
            const __m256i alpha = _mm256_srli_epi32(px, 24);
            const __m256i opaque = _mm256_cmpeq_epi32(alpha, full);
            const __m256i clear = _mm256_cmpeq_epi32(alpha, _mm256_setzero_si256());
            if (_mm256_movemask_epi8(_mm256_or_si256(opaque, clear)) == -1) {
                scatter8(cell_and_key(px, opaque), px, inc, cells, members);
            } else {
                kernels::scalar().accumulate_row(row + 4 * i, 8, 4, 4, alpha_threshold, mode,
                                                 cells, direct, members);
            }
        }
    } else if (channels == 3 && pixel_stride == 3) {
        // Two 16-byte loads of 12 useful bytes each; spread RGB triples into 32-bit lanes.
        const __m256i spread = _mm256_setr_epi8(0, 1, 2, -1, 3, 4, 5, -1, 6, 7, 8, -1, 9, 10, 11,
                                                -1, 0, 1, 2, -1, 3, 4, 5, -1, 6, 7, 8, -1, 9, 10,
                                                11, -1);
        const __m256i all = _mm256_set1_epi32(-1);
        // The second load reads 4 bytes past pixel i+7, so stop while 28 bytes remain readable.
        for (; i + 8 <= count && 3 * i + 28 <= 3 * count; i += 8) {
            const std::uint8_t* p = row + 3 * i;
            const __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
            const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 12));
            const __m256i px = _mm256_shuffle_epi8(_mm256_set_m128i(b, a), spread);
            scatter8(cell_and_key(px, all), px, inc, cells, members);
        }
    }
    if (i < count)
        kernels::scalar().accumulate_row(row + i * pixel_stride, count - i, pixel_stride,
                                         channels, alpha_threshold, mode, cells, direct, members);
}

}  // namespace

const Kernels* avx2() {
    static const Kernels table{"avx2", accumulate_row_avx2};
    return &table;
}

}  // namespace palette::kernels

#else

namespace palette::kernels {
const Kernels* avx2() { return nullptr; }
}  // namespace palette::kernels

#endif
