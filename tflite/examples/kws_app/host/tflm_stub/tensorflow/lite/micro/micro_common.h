// Stand-in for TFLM's micro_common.h -- HOST TESTS ONLY.
//
// TFLMRegistration as an opaque record: the stand-in interpreter runs no operators, it only
// checks that model_ops.h registers as many as it declares (AddCustom included).
#ifndef KWS_TFLM_STUB_MICRO_COMMON_H_
#define KWS_TFLM_STUB_MICRO_COMMON_H_

struct TFLMRegistration {
  const char* custom_name;
};

#endif  // KWS_TFLM_STUB_MICRO_COMMON_H_
