// kws_model_tflm.cc -- kws_model_t over tflite::MicroInterpreter (see kws_model_tflm.h).
//
// The model files come from keras_quaternion.export.write_micro_artifacts. For artifacts written
// with another name (e.g. name="kws": kws_data.h, g_kws_data, kKwsTensorArenaSize,
// KwsOpResolver, RegisterKwsOps) define the KWS_MODEL_* macros below on the command line.

#include "kws_model_tflm.h"

#include <cstdint>
#include <new>

#include "kws_app.h"

#ifndef KWS_MODEL_DATA_HEADER
#define KWS_MODEL_DATA_HEADER "model_data.h"
#endif
#ifndef KWS_MODEL_OPS_HEADER
#define KWS_MODEL_OPS_HEADER "model_ops.h"
#endif
#ifndef KWS_MODEL_DATA
#define KWS_MODEL_DATA g_model_data
#endif
#ifndef KWS_MODEL_ARENA_SIZE
#define KWS_MODEL_ARENA_SIZE kTensorArenaSize
#endif
#ifndef KWS_MODEL_OP_RESOLVER
#define KWS_MODEL_OP_RESOLVER ModelOpResolver
#endif
#ifndef KWS_MODEL_REGISTER_OPS
#define KWS_MODEL_REGISTER_OPS RegisterModelOps
#endif

#include KWS_MODEL_DATA_HEADER
#include KWS_MODEL_OPS_HEADER
#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/micro/micro_log.h"
#include "tensorflow/lite/schema/schema_generated.h"

namespace {

// The arena holds every tensor of the model, the int8 model input included.
alignas(16) uint8_t g_arena[KWS_MODEL_ARENA_SIZE];

// Constructed on the first kws_model_tflm_init() (placement new: no heap, no static-init order).
alignas(KWS_MODEL_OP_RESOLVER) unsigned char g_resolver_storage[sizeof(KWS_MODEL_OP_RESOLVER)];
alignas(tflite::MicroInterpreter) unsigned char
    g_interpreter_storage[sizeof(tflite::MicroInterpreter)];
tflite::MicroInterpreter* g_interpreter = nullptr;
int g_init_status = 1;  // 1: not tried yet, else the result of the first setup

int InvokeModel(void* ctx) {
  auto* interpreter = static_cast<tflite::MicroInterpreter*>(ctx);
  return interpreter->Invoke() == kTfLiteOk ? 0 : -1;
}

int SetUp() {
  const tflite::Model* model = tflite::GetModel(KWS_MODEL_DATA);
  if (model->version() != TFLITE_SCHEMA_VERSION) {
    MicroPrintf("kws: model schema version %d, TFLite Micro supports %d",
                static_cast<int>(model->version()), TFLITE_SCHEMA_VERSION);
    return KWS_ERR_MODEL_VERSION;
  }
  auto* resolver = new (g_resolver_storage) KWS_MODEL_OP_RESOLVER();
  if (KWS_MODEL_REGISTER_OPS(*resolver) != kTfLiteOk) {
    MicroPrintf("kws: registering the model's operators failed");
    return KWS_ERR_MODEL_OPS;
  }
  auto* interpreter = new (g_interpreter_storage)
      tflite::MicroInterpreter(model, *resolver, g_arena, sizeof(g_arena));
  if (interpreter->AllocateTensors() != kTfLiteOk) {
    MicroPrintf("kws: AllocateTensors failed with a %d-byte arena",
                static_cast<int>(sizeof(g_arena)));
    return KWS_ERR_ALLOCATE;
  }
  g_interpreter = interpreter;
  return KWS_OK;
}

}  // namespace

extern "C" int kws_model_tflm_init(kws_model_t* model) {
  if (model == nullptr) {
    return KWS_ERR_NULL;
  }
  if (g_init_status == 1) {
    g_init_status = SetUp();
  }
  if (g_init_status != KWS_OK) {
    return g_init_status;
  }
  TfLiteTensor* input = g_interpreter->input(0);
  TfLiteTensor* output = g_interpreter->output(0);
  if (input == nullptr || output == nullptr || input->type != kTfLiteInt8 ||
      output->type != kTfLiteInt8) {
    MicroPrintf("kws: the model's input and output must be int8 (full-integer export)");
    return KWS_ERR_MODEL_TYPE;
  }
  if (input->dims == nullptr || input->dims->size < 1 ||
      input->dims->size > KWS_MODEL_MAX_DIMS) {
    return KWS_ERR_INPUT_SHAPE;
  }
  model->input = input->data.int8;
  model->input_bytes = input->bytes;
  model->input_rank = input->dims->size;
  for (int d = 0; d < input->dims->size; ++d) {
    model->input_dims[d] = input->dims->data[d];
  }
  model->input_scale = input->params.scale;
  model->input_zero_point = static_cast<int>(input->params.zero_point);
  model->output = output->data.int8;
  model->output_count = output->bytes;  // int8: one byte per class
  model->output_scale = output->params.scale;
  model->output_zero_point = static_cast<int>(output->params.zero_point);
  model->invoke = InvokeModel;
  model->ctx = g_interpreter;
  return KWS_OK;
}

extern "C" size_t kws_model_tflm_arena_used_bytes(void) {
  return g_interpreter == nullptr ? 0 : g_interpreter->arena_used_bytes();
}

extern "C" size_t kws_model_tflm_arena_size(void) { return sizeof(g_arena); }
