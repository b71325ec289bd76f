// kq_tflm_runner.cc - runs a .tflite model on TFLite Micro built from source, on the host.
//
// keras-quaternion builds this program (keras_quaternion/export/tflm_runner.py) against a
// TFLite Micro checkout (KQ_TFLM_ROOT) with the op resolver that `kq-export --micro` generates
// for the model (<name>_ops.h, custom quaternion operators included), to verify compact models
// whole and to measure their tensor arena.
//
//   kq_tflm_runner MODEL.tflite INPUTS.bin OUTPUTS.bin ARENA_BYTES
//
// INPUTS.bin holds N raw input tensors back to back; OUTPUTS.bin receives the N raw outputs.
// Prints "arena_used <bytes>" (MicroInterpreter::arena_used_bytes()) and "invoke_us <mean>"
// (wall-clock time of one Invoke(), averaged over the inputs). An arena that is too
// small makes it fail, sometimes by a crash inside TFLite Micro: the caller bisects the
// smallest arena with one process per probe.
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/micro/micro_log.h"
#include "tensorflow/lite/schema/schema_generated.h"
#include KQ_OPS_HEADER

namespace {

bool ReadFile(const char* path, std::vector<unsigned char>* out) {
  FILE* f = std::fopen(path, "rb");
  if (f == nullptr) return false;
  unsigned char chunk[65536];
  size_t n;
  while ((n = std::fread(chunk, 1, sizeof(chunk), f)) > 0) out->insert(out->end(), chunk, chunk + n);
  std::fclose(f);
  return true;
}

unsigned char* Align16(std::vector<unsigned char>* buffer) {
  return buffer->data() + (16 - reinterpret_cast<uintptr_t>(buffer->data()) % 16);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 5) {
    std::fprintf(stderr, "usage: %s MODEL.tflite INPUTS.bin OUTPUTS.bin ARENA\n", argv[0]);
    return 2;
  }
  std::vector<unsigned char> data, inputs, outputs;
  if (!ReadFile(argv[1], &data) || !ReadFile(argv[2], &inputs)) {
    std::fprintf(stderr, "cannot read %s or %s\n", argv[1], argv[2]);
    return 2;
  }
  std::vector<unsigned char> model_bytes(data.size() + 16);
  unsigned char* model_data = Align16(&model_bytes);
  std::memcpy(model_data, data.data(), data.size());
  const tflite::Model* model = tflite::GetModel(model_data);
  static KQ_RESOLVER resolver;
  if (KQ_REGISTER(resolver) != kTfLiteOk) return 3;
  const size_t arena_size = std::strtoul(argv[4], nullptr, 10);
  std::vector<unsigned char> arena(arena_size + 16);
  tflite::MicroInterpreter interpreter(model, resolver, Align16(&arena), arena_size);
  if (interpreter.AllocateTensors() != kTfLiteOk) return 4;
  TfLiteTensor* in = interpreter.input(0);
  TfLiteTensor* out = interpreter.output(0);
  if (inputs.empty() || inputs.size() % in->bytes != 0) {
    std::fprintf(stderr, "%zu input bytes are not whole %zu-byte tensors\n", inputs.size(),
                 in->bytes);
    return 4;
  }
  double seconds = 0.0;
  for (size_t at = 0; at < inputs.size(); at += in->bytes) {
    std::memcpy(in->data.raw, inputs.data() + at, in->bytes);
    const auto start = std::chrono::steady_clock::now();
    if (interpreter.Invoke() != kTfLiteOk) return 5;
    seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    outputs.insert(outputs.end(), out->data.raw, out->data.raw + out->bytes);
  }
  FILE* f = std::fopen(argv[3], "wb");
  if (f == nullptr || std::fwrite(outputs.data(), 1, outputs.size(), f) != outputs.size()) return 6;
  std::fclose(f);
  std::printf("arena_used %zu\n", interpreter.arena_used_bytes());
  std::printf("invoke_us %.3f\n", 1e6 * seconds / (inputs.size() / in->bytes));
  return 0;
}
