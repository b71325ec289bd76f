// kq_quaternion_stub.cc -- the compact quaternion operators' registrations for the stand-in
// interpreter -- HOST TESTS ONLY. A real build compiles kq_quaternion_tflm.cc (from the export
// folder) against TFLite Micro instead; the stand-in runs no operators.
#include "kq_quaternion_tflm.h"

namespace tflite {

TFLMRegistration* Register_KQ_QCONV2D() {
  static TFLMRegistration registration = {"KQ_QCONV2D"};
  return &registration;
}

TFLMRegistration* Register_KQ_QFULLY_CONNECTED() {
  static TFLMRegistration registration = {"KQ_QFULLY_CONNECTED"};
  return &registration;
}

}  // namespace tflite
