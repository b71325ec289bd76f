/* kws_app.c -- see kws_app.h. */
#include "kws_app.h"

#include <string.h>

const char *kws_strerror(int code) {
    switch (code) {
    case KWS_OK:
        return "ok";
    case KWS_ERR_NULL:
        return "kws: a required pointer (model, clip, workspace, result or model buffers) is NULL";
    case KWS_ERR_INPUT_SHAPE:
        return "kws: model input shape is not [1, KWS_FRAMES, KQ_FRONTEND_N_MELS, 1 or 4]; the "
               "model was trained with another clip length or feature config (regenerate "
               "kq_frontend_config.h with gen_config.py and set KWS_CLIP_SAMPLES)";
    case KWS_ERR_INPUT_BYTES:
        return "kws: model input byte size does not match its shape (int8 expected)";
    case KWS_ERR_OUTPUT:
        return "kws: model output is empty or has more than KWS_MAX_CLASSES values";
    case KWS_ERR_QUANT:
        return "kws: model input/output quantization invalid (scale must be > 0, zero point in "
               "[-128, 127]); export the model as full-integer int8";
    case KWS_ERR_INVOKE:
        return "kws: the interpreter failed to run the model";
    case KWS_ERR_CLIP_LENGTH:
        return "kws: clip length differs from KWS_CLIP_SAMPLES; fit it with kws_fit_clip";
    case KWS_ERR_MODEL_VERSION:
        return "kws: the model's flatbuffer schema version is not the one TFLite Micro supports";
    case KWS_ERR_MODEL_OPS:
        return "kws: registering the model's operators failed (regenerate model_ops.h with "
               "the model)";
    case KWS_ERR_ALLOCATE:
        return "kws: AllocateTensors failed; the tensor arena is too small for this model "
               "(use kTensorArenaSize from the model's model_data.h)";
    case KWS_ERR_MODEL_TYPE:
        return "kws: model input or output is not int8; export with full-integer quantization";
    default:
        return kq_frontend_strerror(code);
    }
}

static int kws_channels(const kws_model_t *model) {
    const int *d = model->input_dims;
    if (model->input_rank == 4 && d[0] == 1 && d[1] == KWS_FRAMES && d[2] == KQ_FRONTEND_N_MELS &&
        (d[3] == 1 || d[3] == 4)) {
        return d[3];
    }
    if (model->input_rank == 3 && d[0] == 1 && d[1] == KWS_FRAMES &&
        d[2] == KQ_FRONTEND_N_MELS) {
        return 1;
    }
    return 0;
}

static int kws_quant_ok(float scale, int zero_point) {
    return scale > 0.0f && scale - scale == 0.0f && zero_point >= -128 && zero_point <= 127;
}

int kws_check_model(const kws_model_t *model) {
    int channels;
    if (model == NULL || model->input == NULL || model->output == NULL ||
        model->invoke == NULL) {
        return KWS_ERR_NULL;
    }
    channels = kws_channels(model);
    if (channels == 0) {
        return KWS_ERR_INPUT_SHAPE;
    }
    if (model->input_bytes != (size_t)KWS_FRAMES * KQ_FRONTEND_N_MELS * (size_t)channels) {
        return KWS_ERR_INPUT_BYTES;
    }
    if (model->output_count < 1 || model->output_count > KWS_MAX_CLASSES) {
        return KWS_ERR_OUTPUT;
    }
    if (!kws_quant_ok(model->input_scale, model->input_zero_point) ||
        !kws_quant_ok(model->output_scale, model->output_zero_point)) {
        return KWS_ERR_QUANT;
    }
    return KWS_OK;
}

int kws_fit_clip(const float *audio, int n, float *clip) {
    int copy;
    if (audio == NULL || clip == NULL) {
        return KWS_ERR_NULL;
    }
    if (n < 0) {
        return KQ_FRONTEND_ERR_ARG;
    }
    copy = n < KWS_CLIP_SAMPLES ? n : KWS_CLIP_SAMPLES;
    memmove(clip, audio, sizeof(float) * (size_t)copy);
    if (copy < KWS_CLIP_SAMPLES) {
        memset(clip + copy, 0, sizeof(float) * (size_t)(KWS_CLIP_SAMPLES - copy));
    }
    return KWS_OK;
}

int kws_pcm16_to_float(const int16_t *pcm, int n, float *out) {
    int i;
    if (pcm == NULL || out == NULL) {
        return KWS_ERR_NULL;
    }
    if (n < 0) {
        return KQ_FRONTEND_ERR_ARG;
    }
    for (i = 0; i < n; ++i) {
        out[i] = (float)pcm[i] * (1.0f / 32768.0f);
    }
    return KWS_OK;
}

int kws_set_input(const kws_model_t *model, const float *clip, int n, kws_workspace_t *ws) {
    int rc, frames, channels;
    if (clip == NULL || ws == NULL) {
        return KWS_ERR_NULL;
    }
    if ((rc = kws_check_model(model)) != KWS_OK) {
        return rc;
    }
    if (n != KWS_CLIP_SAMPLES) {
        return KWS_ERR_CLIP_LENGTH;
    }
    channels = kws_channels(model);
    frames = kq_frontend_compute_ex(clip, n, KQ_FRONTEND_LOGMEL, ws->logmel,
                                    sizeof(ws->logmel) / sizeof(ws->logmel[0]), ws->scratch);
    if (frames < 0) {
        return frames;
    }
    rc = channels == 4 ? kq_frontend_quaternion_int8(ws->logmel, frames, model->input_scale,
                                                     model->input_zero_point, model->input)
                       : kq_frontend_quantize_int8(ws->logmel,
                                                   (size_t)frames * KQ_FRONTEND_N_MELS,
                                                   model->input_scale, model->input_zero_point,
                                                   model->input);
    return rc < 0 ? rc : frames;
}

int kws_classify(const kws_model_t *model, const float *clip, int n, kws_workspace_t *ws,
                 kws_result_t *result) {
    int frames, c, best = 0;
    if (result == NULL) {
        return KWS_ERR_NULL;
    }
    frames = kws_set_input(model, clip, n, ws);
    if (frames < 0) {
        return frames;
    }
    if (model->invoke(model->ctx) != 0) {
        return KWS_ERR_INVOKE;
    }
    for (c = 0; c < (int)model->output_count; ++c) {
        const float s =
            (float)(model->output[c] - model->output_zero_point) * model->output_scale;
        result->scores[c] = s;
        if (model->output[c] > model->output[best]) {
            best = c;
        }
    }
    result->num_classes = (int)model->output_count;
    result->top_class = best;
    result->top_score = result->scores[best];
    result->frames = frames;
    return KWS_OK;
}
