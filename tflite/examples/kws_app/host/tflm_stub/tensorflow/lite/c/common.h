// Stand-in for TFLite's c/common.h -- HOST TESTS ONLY (see micro/micro_interpreter.h): the
// fields of TfLiteTensor that the KWS adapter reads, with TFLite's names.
#ifndef KWS_TFLM_STUB_COMMON_H_
#define KWS_TFLM_STUB_COMMON_H_

#include <cstddef>
#include <cstdint>

typedef enum TfLiteStatus { kTfLiteOk = 0, kTfLiteError = 1 } TfLiteStatus;
typedef enum { kTfLiteNoType = 0, kTfLiteFloat32 = 1, kTfLiteInt8 = 9 } TfLiteType;

typedef struct TfLiteIntArray {
  int size;
  int data[5];
} TfLiteIntArray;

typedef struct TfLiteQuantizationParams {
  float scale;
  int32_t zero_point;
} TfLiteQuantizationParams;

typedef union TfLitePtrUnion {
  int8_t* int8;
  float* f;
  void* raw;
} TfLitePtrUnion;

typedef struct TfLiteTensor {
  TfLiteType type;
  TfLitePtrUnion data;
  TfLiteIntArray* dims;
  TfLiteQuantizationParams params;
  size_t bytes;
} TfLiteTensor;

#endif  // KWS_TFLM_STUB_COMMON_H_
