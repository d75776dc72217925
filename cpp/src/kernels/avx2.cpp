// AVX2 kernels: eight pixels at a time for packed RGB and RGBA rows. Cell indices and packed
// increments are computed in vector registers; the scatter into cells stays scalar (AVX2 has no
// conflict-free scatter). Other layouts use the scalar reference.
#include "palette/dispatch.hpp"
#include "pixel_ops.hpp"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

namespace palette::kernels {
namespace {

// Lanes hold pixels as 0xAABBGGRR. Writes cell index, packed lo and hi for 8 pixels.
__attribute__((target("avx2"))) inline void pack8(__m256i px, __m256i opaque_mask,
                                                  std::uint32_t* index, std::uint64_t* lo,
                                                  std::uint64_t* hi) {
    const __m256i five = _mm256_set1_epi32(0x1F);
    const __m256i seven = _mm256_set1_epi32(7);
    const __m256i r5 = _mm256_and_si256(_mm256_srli_epi32(px, 3), five);
    const __m256i g5 = _mm256_and_si256(_mm256_srli_epi32(px, 11), five);
    const __m256i b5 = _mm256_and_si256(_mm256_srli_epi32(px, 19), five);
    __m256i cell = _mm256_or_si256(_mm256_slli_epi32(r5, 10),
                                   _mm256_or_si256(_mm256_slli_epi32(g5, 5), b5));
    // Transparent pixels go to the extra cell.
    cell = _mm256_blendv_epi8(_mm256_set1_epi32(kTransparentCell), cell, opaque_mask);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(index), cell);

    const __m256i dr = _mm256_and_si256(px, seven);
    const __m256i dg = _mm256_and_si256(_mm256_srli_epi32(px, 8), seven);
    const __m256i db = _mm256_and_si256(_mm256_srli_epi32(px, 16), seven);
    const __m256i sq = _mm256_add_epi32(
        _mm256_add_epi32(_mm256_mullo_epi32(dr, dr), _mm256_mullo_epi32(dg, dg)),
        _mm256_mullo_epi32(db, db));

    // Widen to 64-bit lanes: low four pixels, then high four.
    for (int half = 0; half < 2; ++half) {
        const __m128i dr4 = half ? _mm256_extracti128_si256(dr, 1) : _mm256_castsi256_si128(dr);
        const __m128i dg4 = half ? _mm256_extracti128_si256(dg, 1) : _mm256_castsi256_si128(dg);
        const __m128i db4 = half ? _mm256_extracti128_si256(db, 1) : _mm256_castsi256_si128(db);
        const __m128i sq4 = half ? _mm256_extracti128_si256(sq, 1) : _mm256_castsi256_si128(sq);
        const __m256i lo4 = _mm256_or_si256(
            _mm256_cvtepu32_epi64(dr4),
            _mm256_or_si256(_mm256_slli_epi64(_mm256_cvtepu32_epi64(dg4), 21),
                            _mm256_slli_epi64(_mm256_cvtepu32_epi64(db4), 42)));
        const __m256i hi4 = _mm256_or_si256(_mm256_set1_epi64x(1),
                                            _mm256_slli_epi64(_mm256_cvtepu32_epi64(sq4), 19));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(lo + 4 * half), lo4);
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(hi + 4 * half), hi4);
    }
}

__attribute__((target("avx2"))) inline void scatter8(const std::uint32_t* index,
                                                     const std::uint64_t* lo,
                                                     const std::uint64_t* hi, __m256i px,
                                                     PackedCell* cells, std::uint32_t* members) {
    for (int k = 0; k < 8; ++k) {
        PackedCell& cell = cells[index[k]];
        cell.lo += lo[k];
        cell.hi += hi[k];
    }
    if (members != nullptr) {
        alignas(32) std::uint32_t colors[8];
        _mm256_store_si256(reinterpret_cast<__m256i*>(colors),
                           _mm256_and_si256(px, _mm256_set1_epi32(0x00FFFFFF)));
        for (int k = 0; k < 8; ++k) members[index[k]] = colors[k];
    }
}

__attribute__((target("avx2"))) void accumulate_row_avx2(const std::uint8_t* row,
                                                         std::int64_t count,
                                                         std::int64_t pixel_stride, int channels,
                                                         std::uint8_t alpha_threshold,
                                                         PackedCell* cells,
                                                         std::uint32_t* members) {
    std::int64_t i = 0;
    alignas(32) std::uint32_t index[8];
    alignas(32) std::uint64_t lo[8];
    alignas(32) std::uint64_t hi[8];
    if (channels == 4 && pixel_stride == 4) {
        // Opaque when alpha >= threshold, i.e. alpha > threshold - 1 (signed compare on 0..255).
        const __m256i limit = _mm256_set1_epi32(static_cast<int>(alpha_threshold) - 1);
        for (; i + 8 <= count; i += 8) {
            const __m256i px = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + 4 * i));
            const __m256i alpha = _mm256_srli_epi32(px, 24);
            const __m256i opaque = _mm256_cmpgt_epi32(alpha, limit);
            pack8(px, opaque, index, lo, hi);
            scatter8(index, lo, hi, px, cells, members);
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
            pack8(px, all, index, lo, hi);
            scatter8(index, lo, hi, px, cells, members);
        }
    }
    if (i < count)
        kernels::scalar().accumulate_row(row + i * pixel_stride, count - i, pixel_stride,
                                         channels, alpha_threshold, cells, members);
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
