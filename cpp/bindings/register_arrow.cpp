// Pixels exported through the Arrow C data interface (Pillow's Image.__arrow_c_array__) as a
// NumPy view of the same memory: no copy, the capsule kept alive as the array's base.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <cstring>
#include <stdexcept>

namespace py = pybind11;

namespace {

// The two structs of the Arrow C data interface (arrow.apache.org/docs/format/CDataInterface).
struct ArrowSchema {
    const char* format;
    const char* name;
    const char* metadata;
    std::int64_t flags;
    std::int64_t n_children;
    ArrowSchema** children;
    ArrowSchema* dictionary;
    void (*release)(ArrowSchema*);
    void* private_data;
};

struct ArrowArray {
    std::int64_t length;
    std::int64_t null_count;
    std::int64_t offset;
    std::int64_t n_buffers;
    std::int64_t n_children;
    const void** buffers;
    ArrowArray** children;
    ArrowArray* dictionary;
    void (*release)(ArrowArray*);
    void* private_data;
};

template <class T>
T* capsule_pointer(const py::capsule& capsule, const char* name) {
    void* pointer = PyCapsule_GetPointer(capsule.ptr(), name);
    if (pointer == nullptr) throw py::error_already_set();
    return static_cast<T*>(pointer);
}

}  // namespace

void register_arrow(py::module_& m) {
    m.def(
        "pixels_from_arrow",
        [](const py::capsule& schema_capsule, const py::capsule& array_capsule, py::ssize_t height,
           py::ssize_t width) {
            const auto* schema = capsule_pointer<ArrowSchema>(schema_capsule, "arrow_schema");
            const auto* array = capsule_pointer<ArrowArray>(array_capsule, "arrow_array");
            if (schema->release == nullptr || array->release == nullptr)
                throw std::invalid_argument("the Arrow schema or array was already released");
            if (std::strcmp(schema->format, "+w:4") != 0 || schema->n_children != 1 ||
                std::strcmp(schema->children[0]->format, "C") != 0)
                throw std::invalid_argument(std::string("pixels must be a fixed-size list of 4 uint8 "
                                                        "(format +w:4 of C), got ") + schema->format);
            if (height < 0 || width < 0 || array->length != height * width)
                throw std::invalid_argument("the Arrow array holds " + std::to_string(array->length) +
                                            " pixels, not " + std::to_string(height) + " x " +
                                            std::to_string(width));
            const ArrowArray* values = array->n_children == 1 ? array->children[0] : nullptr;
            if (values == nullptr || values->n_buffers < 2 || values->buffers[1] == nullptr)
                throw std::invalid_argument("the Arrow array has no pixel buffer");
            const auto* data = static_cast<const std::uint8_t*>(values->buffers[1]) +
                               (array->offset * 4 + values->offset);
            py::array_t<std::uint8_t> out({height, width, py::ssize_t{4}},
                                          {width * 4, py::ssize_t{4}, py::ssize_t{1}}, data,
                                          array_capsule);
            py::detail::array_proxy(out.ptr())->flags &= ~py::detail::npy_api::NPY_ARRAY_WRITEABLE_;
            return out;
        },
        py::arg("schema"), py::arg("array"), py::arg("height"), py::arg("width"),
        "A read-only HxWx4 uint8 view of pixels exported as Arrow capsules (a fixed-size list "
        "of 4 uint8 per pixel, rows packed), sharing their memory; the array capsule stays "
        "alive as the view's base and releases the memory with it.");
}
