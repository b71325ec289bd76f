// Stand-in for TFLM's system_setup.h -- HOST TESTS ONLY.
#ifndef KWS_TFLM_STUB_SYSTEM_SETUP_H_
#define KWS_TFLM_STUB_SYSTEM_SETUP_H_

namespace tflite {
void InitializeTarget();
}  // namespace tflite

#endif  // KWS_TFLM_STUB_SYSTEM_SETUP_H_
