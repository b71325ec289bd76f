/*
 * kws_model.h -- the small interface between the keyword-spotting app (C99) and the interpreter.
 *
 * The app only needs the model's int8 input buffer with its shape and quantization, the int8
 * output with its quantization, and a function that runs the model. kws_model_tflm.cc fills this
 * struct from a TFLite Micro MicroInterpreter; host/fake_model.c fills it with a stand-in
 * interpreter so the app can be built and tested on a PC without the TFLM sources.
 */
#ifndef KWS_MODEL_H
#define KWS_MODEL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define KWS_MODEL_MAX_DIMS 5

typedef struct kws_model {
    /* input tensor 0: int8, shape [1, frames, mels, channels] (or [1, frames, mels]) */
    int8_t *input;
    size_t input_bytes;
    int input_rank;
    int input_dims[KWS_MODEL_MAX_DIMS];
    float input_scale;
    int input_zero_point;
    /* output tensor 0: int8 class scores (probabilities or logits), output_count values */
    const int8_t *output;
    size_t output_count;
    float output_scale;
    int output_zero_point;
    /* run the model on the current input; returns 0 on success */
    int (*invoke)(void *ctx);
    void *ctx;
} kws_model_t;

#ifdef __cplusplus
}
#endif

#endif /* KWS_MODEL_H */
