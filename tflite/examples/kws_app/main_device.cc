// main_device.cc -- keyword spotting demo for a microcontroller (or a host TFLM build).
//
// Classifies the clip in audio_sample.h (made by wav_to_header.py from a WAV file) with the model
// in model_data.cc / model_ops.h (made by kq-export --micro) and prints the top class with
// MicroPrintf. Replace the audio_sample.h clip by a microphone buffer of KWS_CLIP_SAMPLES 16-bit
// samples at KQ_FRONTEND_SAMPLE_RATE in a real application.
//
// Build: see README.md (Arduino: define KWS_NO_MAIN and call kws_demo_run() from setup()).

#include <cstdint>
#include <cstdio>

#include "audio_sample.h"
#include "kws_app.h"
#include "kws_model_tflm.h"
#include "tensorflow/lite/micro/micro_log.h"
#include "tensorflow/lite/micro/system_setup.h"

#if KWS_AUDIO_SAMPLE_RATE != KQ_FRONTEND_SAMPLE_RATE
#error "audio_sample.h was made for another sample rate than kq_frontend_config.h"
#endif

// The model's class names, clip length and feature key, written by kq-export --micro
// (model_labels.h; KWS_MODEL_LABELS_HEADER names another file), when present.
#ifndef KWS_MODEL_LABELS_HEADER
#define KWS_MODEL_LABELS_HEADER "model_labels.h"
#endif
#if defined(__has_include)
#if __has_include(KWS_MODEL_LABELS_HEADER)
#include KWS_MODEL_LABELS_HEADER
#endif
#endif

namespace {
constexpr bool SameText(const char* a, const char* b) {
  return *a == *b && (*a == '\0' || SameText(a + 1, b + 1));
}
}  // namespace

#ifdef KWS_LABELS_CLIP_SAMPLES
static_assert(KWS_LABELS_CLIP_SAMPLES == KWS_CLIP_SAMPLES,
              "the model was trained on clips of KWS_LABELS_CLIP_SAMPLES samples (model_labels.h): "
              "build with -DKWS_CLIP_SAMPLES=<that number> (make CLIP_SAMPLES=...)");
#endif
#ifdef KWS_LABELS_FEATURE_KEY
static_assert(SameText(KWS_LABELS_FEATURE_KEY, KQ_FRONTEND_CONFIG_KEY),
              "kq_frontend_config.h was generated for other features than the model's: use the "
              "kq_frontend_config.h kq-export --micro wrote beside the model");
#endif

// Class names in the model's output order (default: the FSDD spoken digits). Override with
// -DKWS_LABELS='{"yes", "no", ...}'.
#ifndef KWS_LABELS
#define KWS_LABELS \
  { "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine" }
#endif

namespace {
const char* const kLabels[] = KWS_LABELS;
constexpr int kNumLabels = static_cast<int>(sizeof(kLabels) / sizeof(kLabels[0]));
kws_workspace_t g_workspace;      // float log-mel + FFT scratch (static: too big for a stack)
float g_clip[KWS_CLIP_SAMPLES];  // one clip as float in [-1, 1)
}  // namespace

extern "C" int kws_demo_run(void) {
  kws_model_t model;
  int rc = kws_model_tflm_init(&model);
  if (rc == KWS_OK) {
    rc = kws_check_model(&model);
  }
  if (rc != KWS_OK) {
    MicroPrintf("kws: model setup failed: %s", kws_strerror(rc));
    return rc;
  }
  if (static_cast<int>(model.output_count) != kNumLabels) {
    MicroPrintf("kws: the model has %d classes but %d labels are compiled in (KWS_LABELS)",
                static_cast<int>(model.output_count), kNumLabels);
  }
  // the training pipeline's clip: the first KWS_CLIP_SAMPLES samples, zero padded
  const int n = KWS_AUDIO_SAMPLE_LEN < KWS_CLIP_SAMPLES ? KWS_AUDIO_SAMPLE_LEN : KWS_CLIP_SAMPLES;
  kws_pcm16_to_float(kAudioSample, n, g_clip);
  kws_fit_clip(g_clip, n, g_clip);

  kws_result_t result;
  rc = kws_classify(&model, g_clip, KWS_CLIP_SAMPLES, &g_workspace, &result);
  if (rc != KWS_OK) {
    MicroPrintf("kws: classification failed: %s", kws_strerror(rc));
    return rc;
  }
  // the raw int8 scores, for comparing with another runtime on the same input
  char line[16 + 5 * KWS_MAX_CLASSES];
  int pos = 0;
  for (int c = 0; c < result.num_classes; ++c) {
    pos += std::snprintf(line + pos, sizeof(line) - pos, "%s%d", c ? " " : "",
                         static_cast<int>(model.output[c]));
  }
  MicroPrintf("kws: int8 output %s", line);
  const char* label = result.top_class < kNumLabels ? kLabels[result.top_class] : "?";
  MicroPrintf("kws: '%s' -> class %d (%s), score %d/1000", KWS_AUDIO_SAMPLE_NAME,
              result.top_class, label, static_cast<int>(result.top_score * 1000.0f + 0.5f));
  MicroPrintf("label: %s", label);
  MicroPrintf("kws: %d frames x %d mels, tensor arena used %d of %d bytes, app RAM %d bytes",
              result.frames, KQ_FRONTEND_N_MELS,
              static_cast<int>(kws_model_tflm_arena_used_bytes()),
              static_cast<int>(kws_model_tflm_arena_size()),
              static_cast<int>(sizeof(g_workspace) + sizeof(g_clip)));
  return KWS_OK;
}

#if !defined(ARDUINO) && !defined(KWS_NO_MAIN)
int main() {
  tflite::InitializeTarget();
  return kws_demo_run() == KWS_OK ? 0 : 1;
}
#endif
