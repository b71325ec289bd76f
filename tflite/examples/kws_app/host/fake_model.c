/* fake_model.c -- see fake_model.h. Host-only test double for the TFLM interpreter. */
#include "fake_model.h"

#include <stddef.h>
#include <string.h>

static int8_t g_input[KWS_FAKE_MAX_INPUT];
static int8_t g_output[KWS_FAKE_MAX_CLASSES];
static kws_fake_config_t g_config;
static size_t g_input_bytes;
static int g_invocations;

static int fake_invoke(void *ctx) {
    long acc[KWS_FAKE_MAX_CLASSES];
    long cnt[KWS_FAKE_MAX_CLASSES];
    size_t i;
    int c;
    (void)ctx;
    ++g_invocations;
    if (g_config.fail_invoke) {
        return -1;
    }
    for (c = 0; c < g_config.classes; ++c) {
        acc[c] = 0;
        cnt[c] = 0;
    }
    for (i = 0; i < g_input_bytes; ++i) {
        acc[i % (size_t)g_config.classes] += g_input[i];
        cnt[i % (size_t)g_config.classes] += 1;
    }
    for (c = 0; c < g_config.classes; ++c) {
        long v = cnt[c] > 0 ? acc[c] / cnt[c] : 0;
        if (v < -128) {
            v = -128;
        } else if (v > 127) {
            v = 127;
        }
        g_output[c] = (int8_t)v;
    }
    return 0;
}

int kws_fake_model_init(kws_model_t *model, const kws_fake_config_t *config) {
    size_t bytes = 1;
    int d;
    if (model == NULL || config == NULL || config->rank < 1 || config->rank > KWS_MODEL_MAX_DIMS ||
        config->classes < 1 || config->classes > KWS_FAKE_MAX_CLASSES) {
        return -1;
    }
    for (d = 0; d < config->rank; ++d) {
        if (config->dims[d] < 1) {
            return -1;
        }
        bytes *= (size_t)config->dims[d];
    }
    if (bytes > KWS_FAKE_MAX_INPUT) {
        return -1;
    }
    g_config = *config;
    g_input_bytes = bytes;
    g_invocations = 0;
    memset(g_input, 0, sizeof(g_input));
    memset(g_output, 0, sizeof(g_output));
    memset(model, 0, sizeof(*model));
    model->input = g_input;
    model->input_bytes = bytes;
    model->input_rank = config->rank;
    for (d = 0; d < config->rank; ++d) {
        model->input_dims[d] = config->dims[d];
    }
    model->input_scale = config->input_scale;
    model->input_zero_point = config->input_zero_point;
    model->output = g_output;
    model->output_count = (size_t)config->classes;
    model->output_scale = config->output_scale;
    model->output_zero_point = config->output_zero_point;
    model->invoke = fake_invoke;
    model->ctx = NULL;
    return 0;
}

int kws_fake_model_invocations(void) {
    return g_invocations;
}
