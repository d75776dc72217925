#include "palette/dispatch.hpp"

#include <atomic>
#include <stdexcept>

namespace palette {
namespace {

bool cpu_has_avx2() {
#if defined(__x86_64__) || defined(__i386__)
    return __builtin_cpu_supports("avx2") != 0;
#else
    return false;
#endif
}

const Kernels* best_kernels() {
    if (kernels::avx2() != nullptr && cpu_has_avx2()) return kernels::avx2();
    return &kernels::scalar();
}

std::atomic<const Kernels*>& active() {
    static std::atomic<const Kernels*> table{best_kernels()};
    return table;
}

}  // namespace

std::vector<std::string> compiled_isas() {
    std::vector<std::string> names{"scalar"};
    if (kernels::avx2() != nullptr) names.emplace_back("avx2");
    return names;
}

std::vector<std::string> supported_isas() {
    std::vector<std::string> names{"scalar"};
    if (kernels::avx2() != nullptr && cpu_has_avx2()) names.emplace_back("avx2");
    return names;
}

std::string active_isa() { return active().load()->name; }

void set_isa(const std::string& name) {
    if (name == "best") {
        active().store(best_kernels());
    } else if (name == "scalar") {
        active().store(&kernels::scalar());
    } else if (name == "avx2") {
        if (kernels::avx2() == nullptr) throw std::invalid_argument("ISA 'avx2' is not compiled into this build");
        if (!cpu_has_avx2()) throw std::invalid_argument("ISA 'avx2' is not supported by this CPU");
        active().store(kernels::avx2());
    } else {
        throw std::invalid_argument("unknown ISA '" + name + "'; expected 'best', 'scalar' or 'avx2'");
    }
}

const Kernels& active_kernels() { return *active().load(); }

}  // namespace palette
