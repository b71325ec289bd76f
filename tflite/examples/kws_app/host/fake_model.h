/*
 * fake_model.h -- a stand-in interpreter for building and testing the KWS app on a PC.
 *
 * It exposes an int8 input of any shape and an int8 output of `classes` values. Its "inference"
 * is fixed integer arithmetic on the input, so a test can recompute the expected output:
 *   acc[c] = sum of input[i] for i % classes == c,  cnt[c] = number of such i,
 *   output[c] = clamp(acc[c] / cnt[c] (C division, truncates toward zero), -128, 127).
 */
#ifndef KWS_FAKE_MODEL_H
#define KWS_FAKE_MODEL_H

#include "kws_model.h"

#ifdef __cplusplus
extern "C" {
#endif

#define KWS_FAKE_MAX_INPUT (1 << 20)
#define KWS_FAKE_MAX_CLASSES 256

typedef struct kws_fake_config {
    int rank;
    int dims[KWS_MODEL_MAX_DIMS];
    float input_scale;
    int input_zero_point;
    int classes;
    float output_scale;
    int output_zero_point;
    int fail_invoke; /* nonzero: invoke() reports an error */
} kws_fake_config_t;

/* Fill `model` with the fake interpreter (static buffers; one instance). Returns 0, or -1 when
 * the shape holds more than KWS_FAKE_MAX_INPUT bytes or classes is outside [1, 256]. */
int kws_fake_model_init(kws_model_t *model, const kws_fake_config_t *config);

/* Number of times invoke() ran. */
int kws_fake_model_invocations(void);

#ifdef __cplusplus
}
#endif

#endif /* KWS_FAKE_MODEL_H */
