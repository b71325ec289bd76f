/*
 * main_host.c -- run the KWS app on a PC with the stand-in interpreter (host/fake_model.c).
 *
 *   kws_host [options] AUDIO
 *     AUDIO              raw native-endian float32 samples (int16 with --pcm16)
 *     --pcm16            AUDIO holds 16-bit PCM; converted with kws_pcm16_to_float
 *     --fit              fit any length to KWS_CLIP_SAMPLES with kws_fit_clip (else it must match)
 *     --rank R --frames F --mels M --channels C
 *                        fake model input shape (default [1, KWS_FRAMES, N_MELS, 4])
 *     --classes K        fake model outputs (default 10)
 *     --in-scale S --in-zp Z --out-scale S --out-zp Z   quantization (default 0.5 0 1/256 -128)
 *     --fail-invoke      make the fake interpreter fail
 *     --dump-input FILE  write the int8 model input after the run
 *
 * Prints one JSON object (rc, error, frames, top_class, top_score, scores, workspace_bytes,
 * clip_samples, invocations). Exit status: 0 ok, 1 the app returned an error, 2 usage / I/O.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fake_model.h"
#include "kws_app.h"

static kws_workspace_t g_ws;
static float g_clip[KWS_CLIP_SAMPLES];

static int usage(const char *why) {
    fprintf(stderr, "kws_host: %s\nusage: kws_host [--pcm16] [--fit] [--rank R] [--frames F] "
                    "[--mels M] [--channels C] [--classes K] [--in-scale S] [--in-zp Z] "
                    "[--out-scale S] [--out-zp Z] [--fail-invoke] [--dump-input FILE] AUDIO\n",
            why);
    return 2;
}

static void *read_file(const char *path, long *bytes) {
    FILE *f = fopen(path, "rb");
    void *data;
    if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (*bytes = ftell(f)) < 0 ||
        fseek(f, 0, SEEK_SET) != 0) {
        if (f != NULL) {
            fclose(f);
        }
        return NULL;
    }
    data = malloc(*bytes > 0 ? (size_t)*bytes : 1);
    if (data != NULL && *bytes > 0 && fread(data, 1, (size_t)*bytes, f) != (size_t)*bytes) {
        free(data);
        data = NULL;
    }
    fclose(f);
    return data;
}

int main(int argc, char **argv) {
    kws_fake_config_t cfg;
    kws_model_t model;
    kws_result_t result;
    const char *audio_path = NULL, *dump_path = NULL;
    int pcm16 = 0, fit = 0, i, rc, n;
    long bytes = 0;
    void *raw;
    float *audio;

    memset(&cfg, 0, sizeof(cfg));
    cfg.rank = 4;
    cfg.dims[0] = 1;
    cfg.dims[1] = KWS_FRAMES;
    cfg.dims[2] = KQ_FRONTEND_N_MELS;
    cfg.dims[3] = 4;
    cfg.input_scale = 0.5f;
    cfg.input_zero_point = 0;
    cfg.classes = 10;
    cfg.output_scale = 1.0f / 256.0f;
    cfg.output_zero_point = -128;

    for (i = 1; i < argc; ++i) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--pcm16") == 0) {
            pcm16 = 1;
        } else if (strcmp(a, "--fit") == 0) {
            fit = 1;
        } else if (strcmp(a, "--fail-invoke") == 0) {
            cfg.fail_invoke = 1;
        } else if (a[0] == '-' && a[1] == '-' && v == NULL) {
            return usage("option without a value");
        } else if (strcmp(a, "--rank") == 0) {
            cfg.rank = atoi(v), ++i;
        } else if (strcmp(a, "--frames") == 0) {
            cfg.dims[1] = atoi(v), ++i;
        } else if (strcmp(a, "--mels") == 0) {
            cfg.dims[2] = atoi(v), ++i;
        } else if (strcmp(a, "--channels") == 0) {
            cfg.dims[3] = atoi(v), ++i;
        } else if (strcmp(a, "--classes") == 0) {
            cfg.classes = atoi(v), ++i;
        } else if (strcmp(a, "--in-scale") == 0) {
            cfg.input_scale = (float)atof(v), ++i;
        } else if (strcmp(a, "--in-zp") == 0) {
            cfg.input_zero_point = atoi(v), ++i;
        } else if (strcmp(a, "--out-scale") == 0) {
            cfg.output_scale = (float)atof(v), ++i;
        } else if (strcmp(a, "--out-zp") == 0) {
            cfg.output_zero_point = atoi(v), ++i;
        } else if (strcmp(a, "--dump-input") == 0) {
            dump_path = v, ++i;
        } else if (a[0] == '-') {
            return usage("unknown option");
        } else if (audio_path == NULL) {
            audio_path = a;
        } else {
            return usage("more than one AUDIO file");
        }
    }
    if (audio_path == NULL) {
        return usage("no AUDIO file");
    }
    if (kws_fake_model_init(&model, &cfg) != 0) {
        return usage("bad fake model shape or class count");
    }
    raw = read_file(audio_path, &bytes);
    if (raw == NULL) {
        fprintf(stderr, "kws_host: cannot read '%s'\n", audio_path);
        return 2;
    }
    n = (int)(bytes / (pcm16 ? 2 : 4));
    audio = (float *)raw;
    if (pcm16) {
        audio = (float *)malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
        if (audio == NULL || kws_pcm16_to_float((const int16_t *)raw, n, audio) != KWS_OK) {
            fprintf(stderr, "kws_host: out of memory\n");
            return 2;
        }
        free(raw);
    }
    if (fit) {
        rc = kws_fit_clip(audio, n, g_clip);
        n = KWS_CLIP_SAMPLES;
    } else {
        rc = KWS_OK;
        const int copy = n < KWS_CLIP_SAMPLES ? n : KWS_CLIP_SAMPLES;
        memcpy(g_clip, audio, sizeof(float) * (size_t)copy);
    }
    free(audio);
    if (rc == KWS_OK) {
        rc = kws_classify(&model, g_clip, n, &g_ws, &result);
    }
    printf("{\"rc\": %d, \"error\": \"%s\", \"workspace_bytes\": %lu, \"clip_samples\": %d, "
           "\"invocations\": %d",
           rc, kws_strerror(rc), (unsigned long)sizeof(kws_workspace_t), KWS_CLIP_SAMPLES,
           kws_fake_model_invocations());
    if (rc == KWS_OK) {
        printf(", \"frames\": %d, \"top_class\": %d, \"top_score\": %.9g, \"scores\": [",
               result.frames, result.top_class, (double)result.top_score);
        for (i = 0; i < result.num_classes; ++i) {
            printf("%s%.9g", i ? ", " : "", (double)result.scores[i]);
        }
        printf("]");
    }
    printf("}\n");
    if (dump_path != NULL) {
        FILE *f = fopen(dump_path, "wb");
        if (f == NULL || fwrite(model.input, 1, model.input_bytes, f) != model.input_bytes) {
            fprintf(stderr, "kws_host: cannot write '%s'\n", dump_path);
            if (f != NULL) {
                fclose(f);
            }
            return 2;
        }
        fclose(f);
    }
    return rc == KWS_OK ? 0 : 1;
}
