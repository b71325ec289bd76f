/*
 * kws_app.h -- keyword spotting on a microcontroller: audio clip -> C front end -> int8 model
 * input -> interpreter -> top class. C99, no malloc; the interpreter sits behind kws_model_t
 * (kws_model.h), so this part builds and runs anywhere.
 *
 * Compile-time settings (define before including, or with -D):
 *   KWS_CLIP_SAMPLES  samples per clip the model was trained on (default: 1 s at
 *                     KQ_FRONTEND_SAMPLE_RATE, the training pipeline's FSDD default).
 *   KWS_MAX_CLASSES   capacity of kws_result_t.scores (default 32).
 *
 * RAM used by the app itself is sizeof(kws_workspace_t): the float log-mel of one clip plus the
 * front end's scratch (26,888 bytes for the FSDD config: 101 frames x 64 mels x 4 B + 1,032 B).
 * The quaternion channels are computed and quantized straight into the model's int8 input
 * tensor, which lives in the interpreter's arena.
 *
 * Example:
 *   static kws_workspace_t ws;
 *   kws_model_t model;
 *   kws_result_t result;
 *   if (kws_model_tflm_init(&model) == KWS_OK && kws_check_model(&model) == KWS_OK &&
 *       kws_classify(&model, clip, KWS_CLIP_SAMPLES, &ws, &result) == KWS_OK)
 *       printf("class %d (score %.2f)\n", result.top_class, result.top_score);
 */
#ifndef KWS_APP_H
#define KWS_APP_H

#include <stddef.h>
#include <stdint.h>

#include "kq_frontend.h"
#include "kws_model.h"

#ifdef __cplusplus
extern "C" {
#endif

#ifndef KWS_CLIP_SAMPLES
#define KWS_CLIP_SAMPLES KQ_FRONTEND_SAMPLE_RATE
#endif
#ifndef KWS_MAX_CLASSES
#define KWS_MAX_CLASSES 32
#endif

/* frames the front end produces for one clip; the model input must have this many */
#define KWS_FRAMES KQ_FRONTEND_NUM_FRAMES(KWS_CLIP_SAMPLES)

#if KWS_CLIP_SAMPLES < KQ_FRONTEND_MIN_SAMPLES_QUATERNION
#error "KWS_CLIP_SAMPLES is below the front end minimum KQ_FRONTEND_MIN_SAMPLES_QUATERNION"
#endif

/* ---- error codes: the front end's (-1 .. -9, see kq_frontend.h) plus these ---- */
#define KWS_OK 0
#define KWS_ERR_NULL (-20)          /* NULL model, audio, workspace or result */
#define KWS_ERR_INPUT_SHAPE (-21)   /* model input is not [1, KWS_FRAMES, N_MELS, 1 or 4] */
#define KWS_ERR_INPUT_BYTES (-22)   /* input buffer size does not match its shape */
#define KWS_ERR_OUTPUT (-23)        /* no output, or more classes than KWS_MAX_CLASSES */
#define KWS_ERR_QUANT (-24)         /* input/output scale not > 0 or zero point not int8 */
#define KWS_ERR_INVOKE (-25)        /* the interpreter failed to run the model */
#define KWS_ERR_CLIP_LENGTH (-26)   /* clip is not KWS_CLIP_SAMPLES long (use kws_fit_clip) */
#define KWS_ERR_MODEL_VERSION (-27) /* flatbuffer schema version differs from TFLM's */
#define KWS_ERR_MODEL_OPS (-28)     /* registering the model's operators failed */
#define KWS_ERR_ALLOCATE (-29)      /* AllocateTensors failed: arena too small? */
#define KWS_ERR_MODEL_TYPE (-30)    /* input or output tensor is not int8 */

/* Working memory of kws_classify; keep it static (it is large for a stack). */
typedef struct kws_workspace {
    float logmel[KWS_FRAMES * KQ_FRONTEND_N_MELS];
    float scratch[KQ_FRONTEND_SCRATCH_FLOATS];
} kws_workspace_t;

typedef struct kws_result {
    int top_class;   /* index of the highest score (the first one on ties) */
    float top_score; /* its dequantized score */
    int num_classes;
    int frames; /* feature frames computed (== KWS_FRAMES) */
    float scores[KWS_MAX_CLASSES]; /* dequantized: (q - zero_point) * scale */
} kws_result_t;

/* Validate the model against the compiled front end: int8 input [1, KWS_FRAMES,
 * KQ_FRONTEND_N_MELS, 1 or 4] (channels 1 = the model computes its deltas), consistent byte size,
 * 1 .. KWS_MAX_CLASSES outputs, valid quantization. Returns KWS_OK or a KWS_ERR_* code. */
int kws_check_model(const kws_model_t *model);

/* Make a clip as the training pipeline does: the first KWS_CLIP_SAMPLES samples of audio, zero
 * padded at the end when shorter. clip holds KWS_CLIP_SAMPLES floats. Returns KWS_OK or
 * KWS_ERR_NULL / KQ_FRONTEND_ERR_ARG (n < 0). */
int kws_fit_clip(const float *audio, int n, float *clip);

/* 16-bit PCM (a microphone / WAV) to float in [-1, 1): x / 32768, as the Python loader reads
 * 16-bit files. Returns KWS_OK or KWS_ERR_NULL / KQ_FRONTEND_ERR_ARG. */
int kws_pcm16_to_float(const int16_t *pcm, int n, float *out);

/* Compute the clip's features and quantize them into model->input (no inference). Returns the
 * number of frames or a negative error code (kws_check_model's, KWS_ERR_CLIP_LENGTH, or the
 * front end's). */
int kws_set_input(const kws_model_t *model, const float *clip, int n, kws_workspace_t *ws);

/* kws_set_input + invoke + dequantize + argmax. n must be KWS_CLIP_SAMPLES. Returns KWS_OK or a
 * negative error code; result is filled only on success. */
int kws_classify(const kws_model_t *model, const float *clip, int n, kws_workspace_t *ws,
                 kws_result_t *result);

/* A constant English description of a KWS_ERR_* or KQ_FRONTEND_ERR_* code. */
const char *kws_strerror(int code);

#ifdef __cplusplus
}
#endif

#endif /* KWS_APP_H */
