// Stand-in for TFLM's micro_log.h -- HOST TESTS ONLY: MicroPrintf prints a line to stdout.
#ifndef KWS_TFLM_STUB_MICRO_LOG_H_
#define KWS_TFLM_STUB_MICRO_LOG_H_

void MicroPrintf(const char* format, ...);

#endif  // KWS_TFLM_STUB_MICRO_LOG_H_
