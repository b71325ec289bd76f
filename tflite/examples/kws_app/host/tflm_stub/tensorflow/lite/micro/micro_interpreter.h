// Stand-in for TensorFlow Lite Micro's micro_interpreter.h -- HOST TESTS ONLY.
//
// Declares the small subset of the TFLM API that kws_model_tflm.cc and main_device.cc use, with
// the same names and signatures as TFLM (github.com/tensorflow/tflite-micro), so the adapter can
// be compiled and exercised on a PC without the TFLM sources. The "interpreter" behind it does
// not parse the flatbuffer: its tensors are described by the KWS_STUB_* macros (see
// tflm_stub.cc), and Invoke() computes a fixed integer function of the input.
#ifndef KWS_TFLM_STUB_MICRO_INTERPRETER_H_
#define KWS_TFLM_STUB_MICRO_INTERPRETER_H_

#include <cstddef>
#include <cstdint>

#include "tensorflow/lite/c/common.h"
#include "tensorflow/lite/micro/micro_op_resolver.h"
#include "tensorflow/lite/schema/schema_generated.h"

#define TFLITE_SCHEMA_VERSION (3)

namespace tflite {

class MicroInterpreter {
 public:
  MicroInterpreter(const Model* model, const MicroOpResolver& op_resolver, uint8_t* tensor_arena,
                   size_t tensor_arena_size);
  TfLiteStatus AllocateTensors();
  TfLiteStatus Invoke();
  TfLiteTensor* input(size_t index);
  TfLiteTensor* output(size_t index);
  size_t arena_used_bytes() const { return used_; }

 private:
  uint8_t* arena_;
  size_t arena_size_;
  size_t used_ = 0;
  TfLiteIntArray in_dims_{};
  TfLiteIntArray out_dims_{};
  TfLiteTensor in_{};
  TfLiteTensor out_{};
};

}  // namespace tflite

#endif  // KWS_TFLM_STUB_MICRO_INTERPRETER_H_
