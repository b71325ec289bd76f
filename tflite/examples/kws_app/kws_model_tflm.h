/*
 * kws_model_tflm.h -- kws_model_t backed by a TensorFlow Lite Micro interpreter.
 *
 * kws_model_tflm.cc (C++) builds one tflite::MicroInterpreter over the model exported by
 * keras_quaternion.export.write_micro_artifacts (model_data.h/.cc: g_model_data,
 * kTensorArenaSize; model_ops.h: ModelOpResolver, RegisterModelOps) with a static, 16-byte
 * aligned tensor arena of kTensorArenaSize bytes, and exposes it to the C app.
 */
#ifndef KWS_MODEL_TFLM_H
#define KWS_MODEL_TFLM_H

#include <stddef.h>

#include "kws_model.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Set up the interpreter (first call only: schema check, op registration, AllocateTensors) and
 * fill *model. Returns KWS_OK (0) or KWS_ERR_NULL / KWS_ERR_MODEL_VERSION / KWS_ERR_MODEL_OPS /
 * KWS_ERR_ALLOCATE / KWS_ERR_MODEL_TYPE / KWS_ERR_INPUT_SHAPE (see kws_app.h); TFLM's own message
 * goes to MicroPrintf. Call kws_check_model() next to validate the shape against the front end. */
int kws_model_tflm_init(kws_model_t *model);

/* Size of the static tensor arena in bytes (kTensorArenaSize). */
size_t kws_model_tflm_arena_size(void);

/* Arena bytes the interpreter actually uses (after a successful init), else 0. */
size_t kws_model_tflm_arena_used_bytes(void);

#ifdef __cplusplus
}
#endif

#endif /* KWS_MODEL_TFLM_H */
