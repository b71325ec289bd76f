/*
 * kq_quaternion_tflm.h - TFLite Micro registrations of keras-quaternion's compact operators.
 *
 * A model exported with `kq-export --quaternion compact` holds CUSTOM operators named
 * "KQ_QCONV2D" and "KQ_QFULLY_CONNECTED"; the generated <name>_ops.h registers them with
 *
 *   resolver.AddCustom("KQ_QCONV2D", tflite::Register_KQ_QCONV2D());
 *   resolver.AddCustom("KQ_QFULLY_CONNECTED", tflite::Register_KQ_QFULLY_CONNECTED());
 *
 * Build kq_quaternion_tflm.cc and kq_quaternion_ops.c with the application.
 */
#ifndef KQ_QUATERNION_TFLM_H_
#define KQ_QUATERNION_TFLM_H_

#include "tensorflow/lite/micro/micro_common.h"

namespace tflite {

// The quaternion convolution (int8, per-channel quantised, CONV_2D semantics).
TFLMRegistration* Register_KQ_QCONV2D();

// The quaternion fully connected layer (int8, FULLY_CONNECTED semantics).
TFLMRegistration* Register_KQ_QFULLY_CONNECTED();

}  // namespace tflite

#endif  // KQ_QUATERNION_TFLM_H_
