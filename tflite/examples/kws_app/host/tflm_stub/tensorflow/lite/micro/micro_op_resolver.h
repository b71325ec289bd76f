// Stand-in for TFLM's micro_op_resolver.h -- HOST TESTS ONLY.
#ifndef KWS_TFLM_STUB_MICRO_OP_RESOLVER_H_
#define KWS_TFLM_STUB_MICRO_OP_RESOLVER_H_

namespace tflite {

class MicroOpResolver {
 public:
  virtual ~MicroOpResolver() = default;
};

}  // namespace tflite

#endif  // KWS_TFLM_STUB_MICRO_OP_RESOLVER_H_
