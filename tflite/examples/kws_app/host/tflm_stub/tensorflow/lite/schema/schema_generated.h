// Stand-in for TFLite's schema_generated.h -- HOST TESTS ONLY (see micro_interpreter.h).
#ifndef KWS_TFLM_STUB_SCHEMA_GENERATED_H_
#define KWS_TFLM_STUB_SCHEMA_GENERATED_H_

#include <cstdint>

namespace tflite {

// The flatbuffer's schema version; the stub reads it as TFLM does (uint32 at the root table's
// "version" field is not parsed here: the stub reports KWS_STUB_SCHEMA_VERSION, default 3).
class Model {
 public:
  uint32_t version() const;
};

const Model* GetModel(const void* buf);

}  // namespace tflite

#endif  // KWS_TFLM_STUB_SCHEMA_GENERATED_H_
