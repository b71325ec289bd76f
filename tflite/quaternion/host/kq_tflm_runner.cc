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
// Prints "arena_used <bytes>" (MicroInterpreter::arena_used_bytes()). An arena that is too
// small makes it fail, sometimes by a crash inside TFLite Micro: the caller bisects the
// smallest arena with one process per probe.
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

// Allocates and runs `input` with an arena of `size` bytes; copies the output when asked.
bool RunWithArena(const tflite::Model* model, const KQ_RESOLVER& resolver, size_t size,
                  const unsigned char* input, std::vector<unsigned char>* output,
                  size_t* used) {
  std::vector<unsigned char> arena(size + 16);
  unsigned char* aligned = arena.data() + (16 - reinterpret_cast<uintptr_t>(arena.data()) % 16);
  tflite::MicroInterpreter interpreter(model, resolver, aligned, size);
  if (interpreter.AllocateTensors() != kTfLiteOk) return false;
  TfLiteTensor* in = interpreter.input(0);
  std::memcpy(in->data.raw, input, in->bytes);
  if (interpreter.Invoke() != kTfLiteOk) return false;
  TfLiteTensor* out = interpreter.output(0);
  if (output != nullptr) output->insert(output->end(), out->data.raw, out->data.raw + out->bytes);
  if (used != nullptr) *used = interpreter.arena_used_bytes();
  return true;
}

size_t InputBytes(const tflite::Model* model, const KQ_RESOLVER& resolver, size_t arena) {
  std::vector<unsigned char> buffer(arena + 16);
  unsigned char* aligned = buffer.data() + (16 - reinterpret_cast<uintptr_t>(buffer.data()) % 16);
  tflite::MicroInterpreter interpreter(model, resolver, aligned, arena);
  if (interpreter.AllocateTensors() != kTfLiteOk) return 0;
  return interpreter.input(0)->bytes;
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
  unsigned char* model_data =
      model_bytes.data() + (16 - reinterpret_cast<uintptr_t>(model_bytes.data()) % 16);
  std::memcpy(model_data, data.data(), data.size());
  const tflite::Model* model = tflite::GetModel(model_data);
  static KQ_RESOLVER resolver;
  if (KQ_REGISTER(resolver) != kTfLiteOk) return 3;
  const size_t arena = std::strtoul(argv[4], nullptr, 10);
  const size_t in_bytes = InputBytes(model, resolver, arena);
  if (in_bytes == 0 || inputs.size() % in_bytes != 0) {
    std::fprintf(stderr, "AllocateTensors failed or inputs are not whole tensors\n");
    return 4;
  }
  size_t used = 0;
  for (size_t at = 0; at < inputs.size(); at += in_bytes) {
    if (!RunWithArena(model, resolver, arena, inputs.data() + at, &outputs, &used)) return 5;
  }
  FILE* f = std::fopen(argv[3], "wb");
  if (f == nullptr || std::fwrite(outputs.data(), 1, outputs.size(), f) != outputs.size()) return 6;
  std::fclose(f);
  std::printf("arena_used %zu\n", used);
  return 0;
}
