/*
 * kq_frontend_cli.c -- host harness for the C front end (tests, parity reports, debugging).
 *
 * Reads raw native-endian float32 from a file, runs one front-end function, writes the result as
 * raw float32 (int8 for --quantize). Not part of the device library: it uses stdio and malloc.
 *
 *   kq_frontend_cli info                         JSON with the compiled config and sizes
 *   kq_frontend_cli quaternion IN OUT            audio -> [frames][mels][4]
 *   kq_frontend_cli logmel IN OUT                audio -> [frames][mels]
 *   kq_frontend_cli power IN OUT                 consecutive n_fft frames -> [frames][n_bins]
 *   kq_frontend_cli logmel-frames IN OUT         consecutive n_fft frames -> [frames][mels]
 *   kq_frontend_cli deltas IN OUT                log-mel [frames][mels] -> [frames][mels][4]
 *   kq_frontend_cli quantize SCALE ZP IN OUT     floats -> int8
 *   kq_frontend_cli quaternion-int8 SCALE ZP IN OUT
 *                                                audio -> log-mel -> int8 [frames][mels][4]
 *                                                (kq_frontend_quaternion_int8)
 *
 * Exit status: 0 ok, 1 front-end error (message on stderr), 2 usage or I/O error.
 */
#include "kq_frontend.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static float g_scratch[KQ_FRONTEND_SCRATCH_FLOATS];

static int usage(void) {
    fprintf(stderr,
            "usage: kq_frontend_cli info\n"
            "       kq_frontend_cli {quaternion|logmel|power|logmel-frames|deltas} IN OUT\n"
            "       kq_frontend_cli {quantize|quaternion-int8} SCALE ZERO_POINT IN OUT\n"
            "IN/OUT are raw native-endian float32 files (OUT is int8 for quantize).\n");
    return 2;
}

static float *read_floats(const char *path, long *count) {
    FILE *f = fopen(path, "rb");
    long bytes;
    float *data;
    if (f == NULL) {
        fprintf(stderr, "kq_frontend_cli: cannot open input '%s'\n", path);
        return NULL;
    }
    if (fseek(f, 0, SEEK_END) != 0 || (bytes = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
        fprintf(stderr, "kq_frontend_cli: cannot seek in '%s'\n", path);
        fclose(f);
        return NULL;
    }
    if (bytes % (long)sizeof(float) != 0) {
        fprintf(stderr, "kq_frontend_cli: '%s' has %ld bytes, not a multiple of 4 (float32)\n",
                path, bytes);
        fclose(f);
        return NULL;
    }
    *count = bytes / (long)sizeof(float);
    data = (float *)malloc(bytes > 0 ? (size_t)bytes : 1);
    if (data == NULL || (bytes > 0 && fread(data, 1, (size_t)bytes, f) != (size_t)bytes)) {
        fprintf(stderr, "kq_frontend_cli: cannot read '%s'\n", path);
        free(data);
        fclose(f);
        return NULL;
    }
    fclose(f);
    return data;
}

static int write_bytes(const char *path, const void *data, size_t bytes) {
    FILE *f = fopen(path, "wb");
    if (f == NULL || (bytes > 0 && fwrite(data, 1, bytes, f) != bytes)) {
        fprintf(stderr, "kq_frontend_cli: cannot write '%s'\n", path);
        if (f != NULL) {
            fclose(f);
        }
        return 2;
    }
    return fclose(f) == 0 ? 0 : 2;
}

static int fail(int code) {
    fprintf(stderr, "%s (code %d)\n", kq_frontend_strerror(code), code);
    return 1;
}

static int cmd_info(void) {
    printf("{\"config_key\": \"%s\", \"sample_rate\": %d, \"n_fft\": %d, \"hop_length\": %d, "
           "\"n_mels\": %d, \"n_bins\": %d, \"delta_width\": %d, \"fmin\": %.6f, \"fmax\": %.6f, "
           "\"scratch_bytes\": %lu, \"table_bytes\": %d, \"min_samples_logmel\": %d, "
           "\"min_samples_quaternion\": %d}\n",
           KQ_FRONTEND_CONFIG_KEY, KQ_FRONTEND_SAMPLE_RATE, KQ_FRONTEND_N_FFT, KQ_FRONTEND_HOP,
           KQ_FRONTEND_N_MELS, KQ_FRONTEND_N_BINS, KQ_FRONTEND_DELTA_WIDTH,
           (double)KQ_FRONTEND_FMIN, (double)KQ_FRONTEND_FMAX,
           (unsigned long)KQ_FRONTEND_SCRATCH_BYTES, KQ_FRONTEND_TABLE_BYTES,
           KQ_FRONTEND_MIN_SAMPLES_LOGMEL, KQ_FRONTEND_MIN_SAMPLES_QUATERNION);
    return 0;
}

static int cmd_clip(int mode, const char *in, const char *out) {
    long n = 0;
    float *audio = read_floats(in, &n);
    float *feat;
    int frames, rc;
    if (audio == NULL) {
        return 2;
    }
    frames = kq_frontend_num_frames((int)n, mode);
    if (frames < 0) {
        free(audio);
        return fail(frames);
    }
    feat = (float *)malloc(sizeof(float) * (size_t)frames * KQ_FRONTEND_N_MELS * (size_t)mode);
    if (feat == NULL) {
        free(audio);
        return 2;
    }
    frames = mode == KQ_FRONTEND_QUATERNION
                 ? kq_frontend_compute(audio, (int)n, feat, g_scratch)
                 : kq_frontend_compute_logmel(audio, (int)n, feat, g_scratch);
    free(audio);
    if (frames < 0) {
        free(feat);
        return fail(frames);
    }
    rc = write_bytes(out, feat, sizeof(float) * (size_t)frames * KQ_FRONTEND_N_MELS * (size_t)mode);
    free(feat);
    return rc;
}

/* power / logmel-frames: the input is whole frames of n_fft samples */
static int cmd_frames(int logmel, const char *in, const char *out) {
    long n = 0, frames, t;
    const int width = logmel ? KQ_FRONTEND_N_MELS : KQ_FRONTEND_N_BINS;
    float *x = read_floats(in, &n);
    float *y;
    int rc = 0;
    if (x == NULL) {
        return 2;
    }
    if (n % KQ_FRONTEND_N_FFT != 0) {
        fprintf(stderr, "kq_frontend_cli: input has %ld samples, not a multiple of n_fft=%d\n", n,
                KQ_FRONTEND_N_FFT);
        free(x);
        return 2;
    }
    frames = n / KQ_FRONTEND_N_FFT;
    y = (float *)malloc(sizeof(float) * (size_t)(frames > 0 ? frames : 1) * (size_t)width);
    if (y == NULL) {
        free(x);
        return 2;
    }
    for (t = 0; t < frames && rc == 0; ++t) {
        const float *frame = x + t * KQ_FRONTEND_N_FFT;
        rc = logmel ? kq_frontend_logmel_frame(frame, y + t * width, 1, g_scratch)
                    : kq_frontend_power_spectrum(frame, y + t * width, g_scratch);
    }
    free(x);
    if (rc != 0) {
        free(y);
        return fail(rc);
    }
    rc = write_bytes(out, y, sizeof(float) * (size_t)frames * (size_t)width);
    free(y);
    return rc;
}

static int cmd_deltas(const char *in, const char *out) {
    long n = 0, frames, t;
    int m, rc;
    float *x = read_floats(in, &n);
    float *y;
    if (x == NULL) {
        return 2;
    }
    if (n % KQ_FRONTEND_N_MELS != 0) {
        fprintf(stderr, "kq_frontend_cli: input has %ld floats, not a multiple of n_mels=%d\n", n,
                KQ_FRONTEND_N_MELS);
        free(x);
        return 2;
    }
    frames = n / KQ_FRONTEND_N_MELS;
    y = (float *)calloc((size_t)(frames > 0 ? frames : 1) * KQ_FRONTEND_N_MELS * 4, sizeof(float));
    if (y == NULL) {
        free(x);
        return 2;
    }
    for (t = 0; t < frames; ++t) {
        for (m = 0; m < KQ_FRONTEND_N_MELS; ++m) {
            y[(t * KQ_FRONTEND_N_MELS + m) * 4] = x[t * KQ_FRONTEND_N_MELS + m];
        }
    }
    free(x);
    rc = kq_frontend_deltas(y, (int)frames);
    if (rc != 0) {
        free(y);
        return fail(rc);
    }
    rc = write_bytes(out, y, sizeof(float) * (size_t)frames * KQ_FRONTEND_N_MELS * 4);
    free(y);
    return rc;
}

static int parse_quant(const char *scale_s, const char *zp_s, float *scale, int *zp) {
    char *end1 = NULL, *end2 = NULL;
    const double v = strtod(scale_s, &end1);
    const long z = strtol(zp_s, &end2, 10);
    if (end1 == scale_s || *end1 != '\0' || end2 == zp_s || *end2 != '\0' || z < -100000 ||
        z > 100000) {
        fprintf(stderr, "kq_frontend_cli: SCALE and ZERO_POINT must be numbers, got '%s' '%s'\n",
                scale_s, zp_s);
        return 2;
    }
    *scale = (float)v;
    *zp = (int)z;
    return 0;
}

/* from_audio = 0: quantize the floats of IN; 1: audio -> log-mel -> quaternion int8 */
static int cmd_quantize(int from_audio, const char *scale_s, const char *zp_s, const char *in,
                        const char *out) {
    long n = 0;
    size_t count;
    float scale, *x, *logmel = NULL;
    int zp, rc, frames = 0;
    int8_t *q;
    if (parse_quant(scale_s, zp_s, &scale, &zp) != 0) {
        return 2;
    }
    x = read_floats(in, &n);
    if (x == NULL) {
        return 2;
    }
    count = (size_t)n;
    if (from_audio) {
        frames = kq_frontend_num_frames((int)n, KQ_FRONTEND_QUATERNION);
        if (frames < 0) {
            free(x);
            return fail(frames);
        }
        logmel = (float *)malloc(sizeof(float) * (size_t)frames * KQ_FRONTEND_N_MELS);
        if (logmel == NULL) {
            free(x);
            return 2;
        }
        frames = kq_frontend_compute_logmel(x, (int)n, logmel, g_scratch);
        count = (size_t)frames * KQ_FRONTEND_N_MELS * 4;
    }
    q = (int8_t *)malloc(count > 0 ? count : 1);
    if (q == NULL) {
        free(x);
        free(logmel);
        return 2;
    }
    rc = from_audio ? kq_frontend_quaternion_int8(logmel, frames, scale, zp, q)
                    : kq_frontend_quantize_int8(x, count, scale, zp, q);
    free(x);
    free(logmel);
    if (rc != 0) {
        free(q);
        return fail(rc);
    }
    rc = write_bytes(out, q, count);
    free(q);
    return rc;
}

int main(int argc, char **argv) {
    if (argc == 2 && strcmp(argv[1], "info") == 0) {
        return cmd_info();
    }
    if (argc == 4) {
        if (strcmp(argv[1], "quaternion") == 0) {
            return cmd_clip(KQ_FRONTEND_QUATERNION, argv[2], argv[3]);
        }
        if (strcmp(argv[1], "logmel") == 0) {
            return cmd_clip(KQ_FRONTEND_LOGMEL, argv[2], argv[3]);
        }
        if (strcmp(argv[1], "power") == 0) {
            return cmd_frames(0, argv[2], argv[3]);
        }
        if (strcmp(argv[1], "logmel-frames") == 0) {
            return cmd_frames(1, argv[2], argv[3]);
        }
        if (strcmp(argv[1], "deltas") == 0) {
            return cmd_deltas(argv[2], argv[3]);
        }
    }
    if (argc == 6 && strcmp(argv[1], "quantize") == 0) {
        return cmd_quantize(0, argv[2], argv[3], argv[4], argv[5]);
    }
    if (argc == 6 && strcmp(argv[1], "quaternion-int8") == 0) {
        return cmd_quantize(1, argv[2], argv[3], argv[4], argv[5]);
    }
    return usage();
}
