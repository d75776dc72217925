#include "palette/jpeg_dc.hpp"

#include <algorithm>
#include <array>
#include <cstring>

namespace palette {
namespace {

constexpr int kMaxComponents = 3;

struct HuffmanTable {
    bool defined = false;
    // Canonical decoding (ITU T.81 F.2.2.3): for each code length, the largest code, and where
    // its first value sits in ``values`` relative to the smallest code of that length.
    std::array<std::int32_t, 17> maxcode{};
    std::array<std::int32_t, 17> offset{};
    std::array<std::uint8_t, 256> values{};
};

struct Component {
    int id = 0;
    int h = 1;  // sampling factors
    int v = 1;
    int quant_table = 0;
    int dc_quant = 0;  // latched at the component's first scan, as libjpeg does
    bool has_dc = false;
    int blocks_wide = 0;  // of the padded (whole MCUs) block grid
    int blocks_high = 0;
    std::vector<std::int32_t> dc;  // quantized DC coefficient per block
};

struct Frame {
    int width = 0;
    int height = 0;
    int hmax = 1;
    int vmax = 1;
    int mcus_wide = 0;
    int mcus_high = 0;
    std::vector<Component> components;
};

// Reads entropy-coded bits, undoing 0xFF00 stuffing and stopping at any marker (after which it
// supplies zero bits, as libjpeg does).
class BitReader {
public:
    BitReader(const std::uint8_t* data, std::size_t end, std::size_t pos) : data_(data), end_(end), pos_(pos) {}

    std::uint32_t peek(int n) {
        fill();
        return static_cast<std::uint32_t>(bits_ >> (64 - n));
    }
    void skip(int n) {
        bits_ <<= n;
        count_ -= n;
    }
    std::uint32_t take(int n) {
        if (n == 0) return 0;
        const std::uint32_t v = peek(n);
        skip(n);
        return v;
    }
    // Drops the bits left in the current byte and moves past the restart marker that must follow.
    bool restart() {
        bits_ = 0;
        count_ = 0;
        at_marker_ = false;
        while (pos_ + 1 < end_ && !(data_[pos_] == 0xFF && data_[pos_ + 1] != 0x00 && data_[pos_ + 1] != 0xFF)) {
            ++pos_;  // what is left of the interval (padding bits), up to the marker
        }
        if (pos_ + 1 >= end_ || data_[pos_ + 1] < 0xD0 || data_[pos_ + 1] > 0xD7) return false;
        pos_ += 2;
        return true;
    }

private:
    void fill() {
        while (count_ <= 56) {
            std::uint64_t byte = 0;
            if (!at_marker_ && pos_ < end_) {
                byte = data_[pos_];
                if (byte == 0xFF) {
                    std::size_t next = pos_ + 1;
                    while (next < end_ && data_[next] == 0xFF) ++next;  // fill bytes
                    if (next < end_ && data_[next] == 0x00) {
                        pos_ = next + 1;
                    } else {
                        at_marker_ = true;
                        byte = 0;
                    }
                } else {
                    ++pos_;
                }
            }
            bits_ |= byte << (56 - count_);
            count_ += 8;
        }
    }

    const std::uint8_t* data_;
    std::size_t end_;
    std::size_t pos_;
    std::uint64_t bits_ = 0;
    int count_ = 0;
    bool at_marker_ = false;
};

int decode_symbol(BitReader& bits, const HuffmanTable& table) {
    const std::uint32_t code16 = bits.peek(16);
    for (int length = 1; length <= 16; ++length) {
        const auto code = static_cast<std::int32_t>(code16 >> (16 - length));
        if (code <= table.maxcode[length]) {
            bits.skip(length);
            return table.values[static_cast<std::size_t>((code + table.offset[length]) & 0xFF)];
        }
    }
    return -1;  // no such code: corrupt data
}

std::uint16_t be16(const std::uint8_t* p) { return static_cast<std::uint16_t>((p[0] << 8) | p[1]); }

// The first marker at or after ``pos`` that is not a restart marker (entropy-coded data, with
// its stuffed bytes and restart markers, ends there).
std::size_t next_marker(const std::uint8_t* data, std::size_t size, std::size_t pos) {
    while (pos + 1 < size) {
        const void* found = std::memchr(data + pos, 0xFF, size - pos - 1);
        if (found == nullptr) return size;
        pos = static_cast<std::size_t>(static_cast<const std::uint8_t*>(found) - data);
        const std::uint8_t m = data[pos + 1];
        if (m != 0x00 && m != 0xFF && (m < 0xD0 || m > 0xD7)) return pos;
        pos += (m == 0xFF) ? 1 : 2;
    }
    return size;
}

std::string read_huffman(const std::uint8_t* p, std::size_t length, std::array<HuffmanTable, 4>& dc_tables) {
    std::size_t at = 0;
    while (at < length) {
        if (at + 17 > length) return "corrupt DHT segment";
        const int table_class = p[at] >> 4;
        const int id = p[at] & 0x0F;
        if (id > 3 || table_class > 1) return "corrupt DHT segment";
        std::array<int, 17> counts{};
        std::size_t total = 0;
        for (int l = 1; l <= 16; ++l) {
            counts[static_cast<std::size_t>(l)] = p[at + static_cast<std::size_t>(l)];
            total += p[at + static_cast<std::size_t>(l)];
        }
        if (total > 256 || at + 17 + total > length) return "corrupt DHT segment";
        if (table_class == 0) {
            HuffmanTable& t = dc_tables[static_cast<std::size_t>(id)];
            t = HuffmanTable{};
            t.defined = true;
            std::copy(p + at + 17, p + at + 17 + total, t.values.begin());
            std::int32_t code = 0;
            std::int32_t index = 0;
            for (int l = 1; l <= 16; ++l) {
                const int n = counts[static_cast<std::size_t>(l)];
                t.offset[static_cast<std::size_t>(l)] = index - code;
                code += n;
                index += n;
                t.maxcode[static_cast<std::size_t>(l)] = n ? code - 1 : -1;
                code <<= 1;
            }
        }
        at += 17 + total;
    }
    return {};
}

std::string read_frame(const std::uint8_t* p, std::size_t length, Frame& frame) {
    if (length < 6) return "corrupt SOF segment";
    if (p[0] != 8) return "not 8-bit";
    frame.height = be16(p + 1);
    frame.width = be16(p + 3);
    const int count = p[5];
    if (frame.width == 0 || frame.height == 0) return "no image size in the frame header";
    if (count != 1 && count != 3) return "not gray or three-component";
    if (length < 6 + 3 * static_cast<std::size_t>(count)) return "corrupt SOF segment";
    frame.components.assign(static_cast<std::size_t>(count), Component{});
    for (int c = 0; c < count; ++c) {
        const std::uint8_t* q = p + 6 + 3 * c;
        Component& comp = frame.components[static_cast<std::size_t>(c)];
        comp.id = q[0];
        comp.h = q[1] >> 4;
        comp.v = q[1] & 0x0F;
        comp.quant_table = q[2];
        if (comp.h < 1 || comp.h > 4 || comp.v < 1 || comp.v > 4 || comp.quant_table > 3) {
            return "corrupt SOF segment";
        }
        frame.hmax = std::max(frame.hmax, comp.h);
        frame.vmax = std::max(frame.vmax, comp.v);
    }
    frame.mcus_wide = (frame.width + 8 * frame.hmax - 1) / (8 * frame.hmax);
    frame.mcus_high = (frame.height + 8 * frame.vmax - 1) / (8 * frame.vmax);
    for (Component& comp : frame.components) {
        comp.blocks_wide = frame.mcus_wide * comp.h;
        comp.blocks_high = frame.mcus_high * comp.v;
        comp.dc.assign(static_cast<std::size_t>(comp.blocks_wide) * static_cast<std::size_t>(comp.blocks_high), 0);
    }
    return {};
}

struct Scan {
    std::array<int, kMaxComponents> components{};  // indices into the frame's components
    std::array<int, kMaxComponents> tables{};
    int count = 0;
    int ah = 0;
    int al = 0;
};

// One DC scan (first pass or refinement) over [start, end).
std::string decode_dc_scan(const std::uint8_t* data, std::size_t start, std::size_t end, Frame& frame,
                           const Scan& scan, const std::array<HuffmanTable, 4>& tables, int restart_interval,
                           const std::array<int, 4>& dc_quant) {
    BitReader bits(data, end, start);
    std::array<std::int64_t, kMaxComponents> pred{};
    for (int s = 0; s < scan.count; ++s) {
        Component& comp = frame.components[static_cast<std::size_t>(scan.components[static_cast<std::size_t>(s)])];
        if (scan.ah == 0) {
            if (!tables[static_cast<std::size_t>(scan.tables[static_cast<std::size_t>(s)])].defined) {
                return "DC scan before its Huffman table";
            }
            if (!comp.has_dc) comp.dc_quant = dc_quant[static_cast<std::size_t>(comp.quant_table)];
            comp.has_dc = true;
        } else if (!comp.has_dc) {
            return "DC refinement before the first DC scan";
        }
    }
    // Non-interleaved scans walk one component's own blocks (not padded to whole MCUs).
    const bool single = scan.count == 1;
    const Component& first = frame.components[static_cast<std::size_t>(scan.components[0])];
    const int units_wide = single ? ((frame.width * first.h + frame.hmax - 1) / frame.hmax + 7) / 8 : frame.mcus_wide;
    const int units_high = single ? ((frame.height * first.v + frame.vmax - 1) / frame.vmax + 7) / 8 : frame.mcus_high;
    long until_restart = restart_interval;
    for (int uy = 0; uy < units_high; ++uy) {
        for (int ux = 0; ux < units_wide; ++ux) {
            if (restart_interval > 0) {
                if (until_restart == 0) {
                    if (!bits.restart()) return "missing restart marker";
                    pred.fill(0);
                    until_restart = restart_interval;
                }
                --until_restart;
            }
            for (int s = 0; s < scan.count; ++s) {
                Component& comp =
                    frame.components[static_cast<std::size_t>(scan.components[static_cast<std::size_t>(s)])];
                const int bh = single ? 1 : comp.h;
                const int bv = single ? 1 : comp.v;
                for (int v = 0; v < bv; ++v) {
                    for (int h = 0; h < bh; ++h) {
                        const int bx = single ? ux : ux * comp.h + h;
                        const int by = single ? uy : uy * comp.v + v;
                        std::int32_t& coef = comp.dc[static_cast<std::size_t>(by) * static_cast<std::size_t>(comp.blocks_wide) +
                                                     static_cast<std::size_t>(bx)];
                        if (scan.ah == 0) {
                            const int size = decode_symbol(
                                bits, tables[static_cast<std::size_t>(scan.tables[static_cast<std::size_t>(s)])]);
                            if (size < 0 || size > 16) return "corrupt DC data";
                            std::int32_t diff = static_cast<std::int32_t>(bits.take(size));
                            if (size > 0 && diff < (1 << (size - 1))) diff -= (1 << size) - 1;
                            // Kept to a coefficient's range (libjpeg stores 16 bits): corrupt
                            // data must not overflow the running sum.
                            std::int64_t& p = pred[static_cast<std::size_t>(s)];
                            p = std::clamp<std::int64_t>(p + diff, -32768, 32767);
                            coef = static_cast<std::int32_t>(std::clamp<std::int64_t>(p * (std::int64_t{1} << scan.al),
                                                                                       -32768, 32767));
                        } else if (bits.take(1)) {
                            coef |= 1 << scan.al;
                        }
                    }
                }
            }
        }
    }
    return {};
}

std::uint8_t clamp8(std::int32_t v) { return static_cast<std::uint8_t>(std::clamp(v, 0, 255)); }

// libjpeg's YCbCr -> RGB in 16-bit fixed point (jdcolor.c), so the colors match its output.
struct YccTables {
    std::array<std::int32_t, 256> cr_r{}, cb_b{}, cr_g{}, cb_g{};
    YccTables() {
        constexpr int kBits = 16;
        constexpr std::int32_t kHalf = 1 << (kBits - 1);
        auto fix = [](double x) { return static_cast<std::int32_t>(x * (1 << kBits) + 0.5); };
        for (int i = 0; i < 256; ++i) {
            const std::int32_t x = i - 128;
            cr_r[static_cast<std::size_t>(i)] = (fix(1.40200) * x + kHalf) >> kBits;
            cb_b[static_cast<std::size_t>(i)] = (fix(1.77200) * x + kHalf) >> kBits;
            cr_g[static_cast<std::size_t>(i)] = -fix(0.71414) * x;
            cb_g[static_cast<std::size_t>(i)] = -fix(0.34414) * x + kHalf;
        }
    }
};

}  // namespace

std::string decode_jpeg_dc(const std::uint8_t* data, std::size_t size, JpegDc& out) {
    if (size < 4 || data[0] != 0xFF || data[1] != 0xD8) return "not a JPEG";
    Frame frame;
    bool progressive = false;
    bool jfif = false;
    int adobe_transform = -1;
    int restart_interval = 0;
    std::array<HuffmanTable, 4> dc_tables;
    std::array<int, 4> dc_quant{};
    std::size_t pos = 2;
    while (pos + 4 <= size) {
        if (data[pos] != 0xFF) return "corrupt marker structure";
        const std::uint8_t marker = data[pos + 1];
        if (marker == 0xFF) {
            ++pos;  // fill byte
            continue;
        }
        if (marker == 0xD9) break;  // EOI
        if ((marker >= 0xD0 && marker <= 0xD7) || marker == 0x01) {
            pos += 2;
            continue;
        }
        const std::size_t length = be16(data + pos + 2);
        if (length < 2 || pos + 2 + length > size) return "truncated segment";
        const std::uint8_t* p = data + pos + 4;
        const std::size_t n = length - 2;
        const std::size_t segment_end = pos + 2 + length;
        if (marker == 0xC2) {
            if (progressive) return "two frames";
            progressive = true;
            if (auto why = read_frame(p, n, frame); !why.empty()) return why;
        } else if ((marker >= 0xC0 && marker <= 0xCF) && marker != 0xC4 && marker != 0xC8 && marker != 0xCC) {
            return "not a progressive Huffman-coded JPEG";
        } else if (marker == 0xC4) {
            if (auto why = read_huffman(p, n, dc_tables); !why.empty()) return why;
        } else if (marker == 0xDB) {
            std::size_t at = 0;
            while (at < n) {
                const int precision = p[at] >> 4;
                const int id = p[at] & 0x0F;
                const std::size_t bytes = precision ? 128 : 64;
                if (id > 3 || at + 1 + bytes > n) return "corrupt DQT segment";
                dc_quant[static_cast<std::size_t>(id)] = precision ? be16(p + at + 1) : p[at + 1];
                at += 1 + bytes;
            }
        } else if (marker == 0xDD) {
            if (n < 2) return "corrupt DRI segment";
            restart_interval = be16(p);
        } else if (marker == 0xE0) {
            jfif = jfif || (n >= 5 && std::memcmp(p, "JFIF\0", 5) == 0);
        } else if (marker == 0xEE) {
            if (n >= 12 && std::memcmp(p, "Adobe", 5) == 0) adobe_transform = p[11];
        } else if (marker == 0xDA) {
            if (!progressive) return "scan before the frame header";
            if (n < 1) return "corrupt SOS segment";
            Scan scan;
            scan.count = p[0];
            if (scan.count < 1 || scan.count > static_cast<int>(frame.components.size()) ||
                n < 4 + 2 * static_cast<std::size_t>(scan.count)) {
                return "corrupt SOS segment";
            }
            for (int s = 0; s < scan.count; ++s) {
                const int id = p[1 + 2 * s];
                const auto found = std::find_if(frame.components.begin(), frame.components.end(),
                                                [id](const Component& c) { return c.id == id; });
                if (found == frame.components.end()) return "scan of an unknown component";
                scan.components[static_cast<std::size_t>(s)] = static_cast<int>(found - frame.components.begin());
                scan.tables[static_cast<std::size_t>(s)] = p[2 + 2 * s] >> 4;
                if (scan.tables[static_cast<std::size_t>(s)] > 3) return "corrupt SOS segment";
            }
            const std::uint8_t* tail = p + 1 + 2 * scan.count;
            const int ss = tail[0];
            scan.ah = tail[2] >> 4;
            scan.al = tail[2] & 0x0F;
            const std::size_t scan_end = next_marker(data, size, segment_end);
            if (ss == 0) {
                if (tail[1] != 0 || scan.al > 13) return "corrupt DC scan";
                if (auto why = decode_dc_scan(data, segment_end, scan_end, frame, scan, dc_tables, restart_interval,
                                              dc_quant);
                    !why.empty()) {
                    return why;
                }
            }
            pos = scan_end;
            continue;
        }
        pos = segment_end;
    }
    if (!progressive) return "not a progressive JPEG";
    for (const Component& comp : frame.components) {
        if (!comp.has_dc) return "a component has no DC scan";
    }

    out.width = static_cast<std::uint32_t>(frame.width);
    out.height = static_cast<std::uint32_t>(frame.height);
    out.out_width = (out.width + 7) / 8;
    out.out_height = (out.height + 7) / 8;
    out.channels = frame.components.size() == 1 ? 1 : 3;
    out.pixels.assign(static_cast<std::size_t>(out.out_width) * out.out_height * out.channels, 0);

    // Each component's 1/8-scale samples (libjpeg's 1x1 inverse DCT), then chroma replicated to
    // full 1/8 resolution (libjpeg does no smooth upsampling at this scale).
    const std::size_t ncomp = frame.components.size();
    std::array<std::vector<std::uint8_t>, kMaxComponents> samples;
    for (std::size_t c = 0; c < ncomp; ++c) {
        const Component& comp = frame.components[c];
        samples[c].resize(comp.dc.size());
        for (std::size_t i = 0; i < comp.dc.size(); ++i) {
            const std::int64_t value = (std::int64_t{comp.dc[i]} * comp.dc_quant + 4) >> 3;  // DESCALE by 3 bits
            samples[c][i] = clamp8(static_cast<std::int32_t>(std::clamp<std::int64_t>(value, -256, 511)) + 128);
        }
    }
    bool ycc = false;
    if (ncomp == 3) {
        const bool rgb_ids = frame.components[0].id == 'R' && frame.components[1].id == 'G' && frame.components[2].id == 'B';
        ycc = jfif || adobe_transform > 0 || (adobe_transform < 0 && !rgb_ids);
    }
    static const YccTables tables;
    std::uint8_t* dst = out.pixels.data();
    for (std::uint32_t y = 0; y < out.out_height; ++y) {
        std::array<const std::uint8_t*, kMaxComponents> rows{};
        for (std::size_t c = 0; c < ncomp; ++c) {
            const Component& comp = frame.components[c];
            const std::size_t by = y * static_cast<std::uint32_t>(comp.v) / static_cast<std::uint32_t>(frame.vmax);
            rows[c] = samples[c].data() + by * static_cast<std::size_t>(comp.blocks_wide);
        }
        for (std::uint32_t x = 0; x < out.out_width; ++x) {
            if (ncomp == 1) {
                *dst++ = rows[0][x];
                continue;
            }
            std::array<std::uint8_t, kMaxComponents> v{};
            for (std::size_t c = 0; c < 3; ++c) {
                const Component& comp = frame.components[c];
                v[c] = rows[c][x * static_cast<std::uint32_t>(comp.h) / static_cast<std::uint32_t>(frame.hmax)];
            }
            if (ycc) {
                const std::int32_t luma = v[0];
                dst[0] = clamp8(luma + tables.cr_r[v[2]]);
                dst[1] = clamp8(luma + ((tables.cb_g[v[1]] + tables.cr_g[v[2]]) >> 16));
                dst[2] = clamp8(luma + tables.cb_b[v[1]]);
            } else {
                dst[0] = v[0];
                dst[1] = v[1];
                dst[2] = v[2];
            }
            dst += 3;
        }
    }
    return {};
}

}  // namespace palette
