// tflm_stub.cc -- the stand-in TFLM "interpreter" behind host/tflm_stub/ -- HOST TESTS ONLY.
//
// It reads from the real .tflite flatbuffer what the KWS adapter needs -- the schema version and,
// for subgraph 0, the type, shape and (first) scale / zero point of input 0 and output 0 -- with
// a small flatbuffer table reader, and carves those two tensors out of the caller's arena.
// It runs no operators: Invoke() writes, for output class c, the mean of the int8 input values
// at flat indices i with i % classes == c (C integer division, clamped to int8), the same
// function as host/fake_model.c, so a test can predict the result.
#include <cstdarg>
#include <cstdio>
#include <cstring>

#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/micro/micro_log.h"
#include "tensorflow/lite/micro/system_setup.h"
#include "tensorflow/lite/schema/schema_generated.h"

namespace {

// --- minimal flatbuffer reading (little-endian host) -----------------------------------------

uint32_t U32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
int32_t I32(const uint8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
uint16_t U16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}

// Offset of field `id` inside `table`, or 0 when the field is absent.
uint16_t FieldOffset(const uint8_t* table, int id) {
  const uint8_t* vtable = table - I32(table);
  const uint16_t vtable_size = U16(vtable);
  const int pos = 4 + 2 * id;
  return pos + 2 <= vtable_size ? U16(vtable + pos) : 0;
}

// Target of an offset field (table, vector or string), or nullptr when absent.
const uint8_t* Ref(const uint8_t* table, int id) {
  const uint16_t off = FieldOffset(table, id);
  if (off == 0) return nullptr;
  const uint8_t* p = table + off;
  return p + U32(p);
}

template <typename T>
T Scalar(const uint8_t* table, int id, T fallback) {
  const uint16_t off = FieldOffset(table, id);
  if (off == 0) return fallback;
  T v;
  std::memcpy(&v, table + off, sizeof(T));
  return v;
}

uint32_t VecLen(const uint8_t* vec) { return vec == nullptr ? 0 : U32(vec); }

// i-th table of a vector of tables
const uint8_t* VecTable(const uint8_t* vec, uint32_t i) {
  const uint8_t* p = vec + 4 + 4 * i;
  return p + U32(p);
}

// schema.fbs field ids used here
enum { kModelVersion = 0, kModelSubgraphs = 2 };
enum { kSubgraphTensors = 0, kSubgraphInputs = 1, kSubgraphOutputs = 2 };
enum { kTensorShape = 0, kTensorType = 1, kTensorQuantization = 4 };
enum { kQuantScale = 2, kQuantZeroPoint = 3 };
enum { kTensorTypeFloat32 = 0, kTensorTypeInt8 = 9 };

const uint8_t* g_flatbuffer = nullptr;

// Describe tensor `index` of subgraph 0 into `tensor` / `dims`; false when malformed.
bool DescribeTensor(bool is_input, TfLiteTensor* tensor, TfLiteIntArray* dims) {
  const uint8_t* model = g_flatbuffer + U32(g_flatbuffer);
  const uint8_t* subgraphs = Ref(model, kModelSubgraphs);
  if (VecLen(subgraphs) < 1) return false;
  const uint8_t* subgraph = VecTable(subgraphs, 0);
  const uint8_t* which = Ref(subgraph, is_input ? kSubgraphInputs : kSubgraphOutputs);
  const uint8_t* tensors = Ref(subgraph, kSubgraphTensors);
  if (VecLen(which) < 1) return false;
  const uint32_t index = static_cast<uint32_t>(I32(which + 4));
  if (index >= VecLen(tensors)) return false;
  const uint8_t* t = VecTable(tensors, index);
  const uint8_t* shape = Ref(t, kTensorShape);
  const uint32_t rank = VecLen(shape);
  if (rank < 1 || rank > 5) return false;
  dims->size = static_cast<int>(rank);
  size_t count = 1;
  for (uint32_t d = 0; d < rank; ++d) {
    dims->data[d] = I32(shape + 4 + 4 * d);
    count *= static_cast<size_t>(dims->data[d]);
  }
  const int8_t type = Scalar<int8_t>(t, kTensorType, kTensorTypeFloat32);
  tensor->type = type == kTensorTypeInt8 ? kTfLiteInt8
                 : type == kTensorTypeFloat32 ? kTfLiteFloat32
                                              : kTfLiteNoType;
  tensor->bytes = count * (tensor->type == kTfLiteFloat32 ? 4 : 1);
  tensor->dims = dims;
  tensor->params.scale = 0.0f;
  tensor->params.zero_point = 0;
  const uint8_t* quant = Ref(t, kTensorQuantization);
  if (quant != nullptr) {
    const uint8_t* scale = Ref(quant, kQuantScale);
    const uint8_t* zero_point = Ref(quant, kQuantZeroPoint);
    if (VecLen(scale) > 0) std::memcpy(&tensor->params.scale, scale + 4, 4);
    if (VecLen(zero_point) > 0) {
      int64_t zp;
      std::memcpy(&zp, zero_point + 4, 8);
      tensor->params.zero_point = static_cast<int32_t>(zp);
    }
  }
  return true;
}

size_t Align16(size_t n) { return (n + 15) & ~static_cast<size_t>(15); }

}  // namespace

namespace tflite {

uint32_t Model::version() const {
  const uint8_t* model = g_flatbuffer + U32(g_flatbuffer);
  return Scalar<uint32_t>(model, kModelVersion, 0);
}

const Model* GetModel(const void* buf) {
  g_flatbuffer = static_cast<const uint8_t*>(buf);
  static Model model;
  return &model;
}

MicroInterpreter::MicroInterpreter(const Model* model, const MicroOpResolver& op_resolver,
                                   uint8_t* tensor_arena, size_t tensor_arena_size)
    : arena_(tensor_arena), arena_size_(tensor_arena_size) {
  (void)model;
  (void)op_resolver;
}

TfLiteStatus MicroInterpreter::AllocateTensors() {
  if (!DescribeTensor(true, &in_, &in_dims_) || !DescribeTensor(false, &out_, &out_dims_)) {
    MicroPrintf("tflm_stub: cannot read input/output tensors from the flatbuffer");
    return kTfLiteError;
  }
  const size_t need = Align16(in_.bytes) + Align16(out_.bytes);
  if (need > arena_size_) {
    MicroPrintf("tflm_stub: arena too small: need %d bytes, have %d", static_cast<int>(need),
                static_cast<int>(arena_size_));
    return kTfLiteError;
  }
  in_.data.raw = arena_;
  out_.data.raw = arena_ + Align16(in_.bytes);
  std::memset(arena_, 0, need);
  used_ = need;
  return kTfLiteOk;
}

TfLiteStatus MicroInterpreter::Invoke() {
  if (used_ == 0 || in_.type != kTfLiteInt8 || out_.type != kTfLiteInt8) return kTfLiteError;
  const size_t classes = out_.bytes;
  for (size_t c = 0; c < classes; ++c) {
    long acc = 0, cnt = 0;
    for (size_t i = c; i < in_.bytes; i += classes) {
      acc += in_.data.int8[i];
      ++cnt;
    }
    long v = cnt > 0 ? acc / cnt : 0;
    v = v < -128 ? -128 : (v > 127 ? 127 : v);
    out_.data.int8[c] = static_cast<int8_t>(v);
  }
  return kTfLiteOk;
}

TfLiteTensor* MicroInterpreter::input(size_t index) { return index == 0 ? &in_ : nullptr; }
TfLiteTensor* MicroInterpreter::output(size_t index) { return index == 0 ? &out_ : nullptr; }

void InitializeTarget() {}

}  // namespace tflite

void MicroPrintf(const char* format, ...) {
  va_list args;
  va_start(args, format);
  std::vprintf(format, args);
  va_end(args);
  std::printf("\n");
}
