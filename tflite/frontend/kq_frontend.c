/*
 * kq_frontend.c -- see kq_frontend.h. C99, no allocation, no global mutable state (reentrant).
 */
#define KQ_FRONTEND_DEFINE_TABLES /* this file owns the constant tables of the config header */
#include "kq_frontend.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#if (KQ_FRONTEND_N_FFT & (KQ_FRONTEND_N_FFT - 1)) != 0 || KQ_FRONTEND_N_FFT < 4
#error "kq_frontend: KQ_FRONTEND_N_FFT must be a power of two >= 4 (regenerate the config)"
#endif
#if (1 << KQ_FRONTEND_LOG2_N_FFT) != KQ_FRONTEND_N_FFT
#error "kq_frontend: KQ_FRONTEND_LOG2_N_FFT does not match KQ_FRONTEND_N_FFT"
#endif
#if KQ_FRONTEND_HOP < 1 || KQ_FRONTEND_HOP > KQ_FRONTEND_N_FFT
#error "kq_frontend: KQ_FRONTEND_HOP must be in [1, KQ_FRONTEND_N_FFT]"
#endif

#define KQ_HALF_N (KQ_FRONTEND_N_FFT / 2)

const char *kq_frontend_strerror(int code) {
    switch (code) {
    case KQ_FRONTEND_OK:
        return "ok";
    case KQ_FRONTEND_ERR_NULL:
        return "kq_frontend: a required pointer argument (audio, out, frame or scratch) is NULL";
    case KQ_FRONTEND_ERR_TOO_SHORT:
        return "kq_frontend: clip too short; it needs at least KQ_FRONTEND_MIN_SAMPLES(mode) "
               "samples (n_fft/2 + 1 for the reflect padding, delta_width frames for deltas); "
               "pad it with zeros";
    case KQ_FRONTEND_ERR_MODE:
        return "kq_frontend: mode must be KQ_FRONTEND_LOGMEL (1) or KQ_FRONTEND_QUATERNION (4)";
    case KQ_FRONTEND_ERR_CAPACITY:
        return "kq_frontend: output buffer too small; size it with "
               "KQ_FRONTEND_OUTPUT_FLOATS(n, mode)";
    case KQ_FRONTEND_ERR_ALIGN:
        return "kq_frontend: scratch must be aligned for float (declare it as a float array of "
               "KQ_FRONTEND_SCRATCH_FLOATS)";
    case KQ_FRONTEND_ERR_FRAMES:
        return "kq_frontend: deltas need at least KQ_FRONTEND_DELTA_WIDTH frames";
    case KQ_FRONTEND_ERR_SCALE:
        return "kq_frontend: quantization scale must be finite and > 0 (the model input's "
               "scale)";
    case KQ_FRONTEND_ERR_ZERO_POINT:
        return "kq_frontend: int8 zero point must be in [-128, 127]";
    case KQ_FRONTEND_ERR_ARG:
        return "kq_frontend: a sample count, frame count or stride is out of range";
    default:
        return "kq_frontend: unknown error code";
    }
}

static int kq_misaligned(const void *p) {
    return ((uintptr_t)p % sizeof(float)) != 0;
}

int kq_frontend_num_frames(int n, int mode) {
    if (mode != KQ_FRONTEND_LOGMEL && mode != KQ_FRONTEND_QUATERNION) {
        return KQ_FRONTEND_ERR_MODE;
    }
    if (n < 0) {
        return KQ_FRONTEND_ERR_ARG;
    }
    if (n < KQ_FRONTEND_MIN_SAMPLES(mode)) {
        return KQ_FRONTEND_ERR_TOO_SHORT;
    }
    return KQ_FRONTEND_NUM_FRAMES(n);
}

/*
 * In-place complex FFT of KQ_HALF_N points, interleaved (re, im). Twiddles of the half-size
 * transform are every second entry of the n_fft table: exp(-2 pi i k / (N/2)) = W_N^(2k).
 */
static void kq_complex_fft_half(float *z) {
    const int m = KQ_HALF_N;
    const int bits = KQ_FRONTEND_LOG2_N_FFT - 1;
    int i, len;
    /* bit-reversal permutation */
    for (i = 0; i < m; ++i) {
        int j = 0, b, v = i;
        for (b = 0; b < bits; ++b) {
            j = (j << 1) | (v & 1);
            v >>= 1;
        }
        if (j > i) {
            float tr = z[2 * i], ti = z[2 * i + 1];
            z[2 * i] = z[2 * j];
            z[2 * i + 1] = z[2 * j + 1];
            z[2 * j] = tr;
            z[2 * j + 1] = ti;
        }
    }
    /* radix-2 butterflies; a stage of length len uses W_N^(k * N / len), k < len / 2 */
    for (len = 2; len <= m; len <<= 1) {
        const int half = len >> 1;
        const int step = KQ_FRONTEND_N_FFT / len;
        int start;
        for (start = 0; start < m; start += len) {
            int k;
            for (k = 0; k < half; ++k) {
                const float wr = kq_twiddle_re[k * step];
                const float wi = kq_twiddle_im[k * step];
                float *a = z + 2 * (start + k);
                float *b = z + 2 * (start + k + half);
                const float br = b[0] * wr - b[1] * wi;
                const float bi = b[0] * wi + b[1] * wr;
                b[0] = a[0] - br;
                b[1] = a[1] - bi;
                a[0] += br;
                a[1] += bi;
            }
        }
    }
}

/*
 * buf: KQ_FRONTEND_N_FFT + 2 floats holding the windowed frame in buf[0 .. N-1]. On return the
 * power of bin k (k = 0 .. N/2) is at buf[2k]. The real FFT is one complex FFT of N/2 points of
 * z[n] = x[2n] + i x[2n+1], split into the spectra of the even and odd samples:
 *   X[k] = E[k] + W_N^k O[k],  E[k] = (Z[k] + conj Z[M-k]) / 2,  O[k] = (Z[k] - conj Z[M-k]) / 2i.
 * Each pair (k, M - k) reads and writes only its own slots, so this runs in place.
 */
static void kq_real_fft_power(float *buf) {
    const int m = KQ_HALF_N;
    int k;
    kq_complex_fft_half(buf);
    {
        const float r0 = buf[0], i0 = buf[1];
        buf[0] = (r0 + i0) * (r0 + i0);         /* DC */
        buf[2 * m] = (r0 - i0) * (r0 - i0);     /* Nyquist */
    }
    for (k = 1; k <= m / 2; ++k) {
        const int q = m - k;
        const float zkr = buf[2 * k], zki = buf[2 * k + 1];
        const float zqr = buf[2 * q], zqi = buf[2 * q + 1];
        /* E[k] = (Z[k] + conj Z[q]) / 2 and O[k] = (Z[k] - conj Z[q]) / 2i */
        const float er = 0.5f * (zkr + zqr), ei = 0.5f * (zki - zqi);
        const float orr = 0.5f * (zki + zqi), oi = -0.5f * (zkr - zqr);
        /* X[k] = E[k] + W^k O[k]; since W^(M-k) = -conj(W^k), X[M-k] = conj(E[k] - W^k O[k]) */
        const float wr = kq_twiddle_re[k], wi = kq_twiddle_im[k];
        const float tr = wr * orr - wi * oi, ti = wr * oi + wi * orr;
        const float xkr = er + tr, xki = ei + ti;
        const float xqr = er - tr, xqi = ti - ei;
        buf[2 * k] = xkr * xkr + xki * xki;
        buf[2 * q] = xqr * xqr + xqi * xqi;
    }
}

/* Copy one frame of n_fft samples starting at padded index `start` (reflect padding). */
static void kq_load_frame(const float *audio, int n, long start, float *dst) {
    int j;
    for (j = 0; j < KQ_FRONTEND_N_FFT; ++j) {
        long i = start + j - KQ_FRONTEND_PAD;
        if (i < 0) {
            i = -i;
        } else if (i >= n) {
            i = 2 * (long)(n - 1) - i;
        }
        dst[j] = audio[i];
    }
}

static void kq_window_and_power(float *buf) {
    int j;
    for (j = 0; j < KQ_FRONTEND_N_FFT; ++j) {
        buf[j] *= kq_window[j];
    }
    kq_real_fft_power(buf);
}

/* power at buf[2k] -> log-mel dB at out[m * stride] */
static void kq_mel_log(const float *buf, float *out, int stride) {
    int m;
    for (m = 0; m < KQ_FRONTEND_N_MELS; ++m) {
        const float *w = kq_mel_weights + kq_mel_offset[m];
        const float *p = buf + 2 * (int)kq_mel_start[m];
        const int count = (int)kq_mel_count[m];
        float acc = 0.0f;
        int j;
        for (j = 0; j < count; ++j) {
            acc += w[j] * p[2 * j];
        }
        if (!(acc > KQ_FRONTEND_AMIN)) { /* floor; NaN input also lands here */
            acc = KQ_FRONTEND_AMIN;
        }
        out[m * stride] = 10.0f * log10f(acc);
    }
}

int kq_frontend_power_spectrum(const float *frame, float *power, void *scratch) {
    float *buf = (float *)scratch;
    int k;
    if (frame == NULL || power == NULL || scratch == NULL) {
        return KQ_FRONTEND_ERR_NULL;
    }
    if (kq_misaligned(scratch)) {
        return KQ_FRONTEND_ERR_ALIGN;
    }
    memcpy(buf, frame, sizeof(float) * KQ_FRONTEND_N_FFT);
    kq_window_and_power(buf);
    for (k = 0; k < KQ_FRONTEND_N_BINS; ++k) {
        power[k] = buf[2 * k];
    }
    return KQ_FRONTEND_OK;
}

int kq_frontend_logmel_frame(const float *frame, float *mel_out, int out_stride, void *scratch) {
    float *buf = (float *)scratch;
    if (frame == NULL || mel_out == NULL || scratch == NULL) {
        return KQ_FRONTEND_ERR_NULL;
    }
    if (out_stride < 1) {
        return KQ_FRONTEND_ERR_ARG;
    }
    if (kq_misaligned(scratch)) {
        return KQ_FRONTEND_ERR_ALIGN;
    }
    memcpy(buf, frame, sizeof(float) * KQ_FRONTEND_N_FFT);
    kq_window_and_power(buf);
    kq_mel_log(buf, mel_out, out_stride);
    return KQ_FRONTEND_OK;
}

/* Savitzky-Golay coefficients for output frame t of a clip of `frames` frames; returns the first
 * input frame they apply to (left edge matrix, central filter or right edge matrix). */
static int kq_delta_coefs(int t, int frames, const float *coef[KQ_FRONTEND_N_DELTA_ORDERS]) {
    const int h = KQ_FRONTEND_DELTA_HALF;
    int o;
    for (o = 0; o < KQ_FRONTEND_N_DELTA_ORDERS; ++o) {
        if (t < h) {
            coef[o] = kq_sg_left[o][t];
        } else if (t >= frames - h) {
            coef[o] = kq_sg_right[o][t - (frames - h)];
        } else {
            coef[o] = kq_sg_central[o];
        }
    }
    return t < h ? 0 : (t >= frames - h ? frames - KQ_FRONTEND_DELTA_WIDTH : t - h);
}

/* d1, d2, d3 of one (frame, mel) from x[j * row], j = 0 .. width - 1 */
static void kq_delta_point(const float *x, long row, const float *const *coef,
                           float acc[KQ_FRONTEND_N_DELTA_ORDERS]) {
    int o, j;
    for (o = 0; o < KQ_FRONTEND_N_DELTA_ORDERS; ++o) {
        acc[o] = 0.0f;
    }
    for (j = 0; j < KQ_FRONTEND_DELTA_WIDTH; ++j) {
        const float v = x[(long)j * row];
        for (o = 0; o < KQ_FRONTEND_N_DELTA_ORDERS; ++o) {
            acc[o] += coef[o][j] * v;
        }
    }
}

static int kq_check_frames(int frames) {
    if (frames < 0) {
        return KQ_FRONTEND_ERR_ARG;
    }
    return frames < KQ_FRONTEND_DELTA_WIDTH ? KQ_FRONTEND_ERR_FRAMES : KQ_FRONTEND_OK;
}

int kq_frontend_deltas(float *features, int frames) {
    const long row = KQ_FRONTEND_N_MELS * 4; /* floats per frame */
    int t, m, o, rc;
    if (features == NULL) {
        return KQ_FRONTEND_ERR_NULL;
    }
    if ((rc = kq_check_frames(frames)) != KQ_FRONTEND_OK) {
        return rc;
    }
    for (t = 0; t < frames; ++t) {
        const float *coef[KQ_FRONTEND_N_DELTA_ORDERS];
        const int first = kq_delta_coefs(t, frames, coef);
        for (m = 0; m < KQ_FRONTEND_N_MELS; ++m) {
            float acc[KQ_FRONTEND_N_DELTA_ORDERS];
            kq_delta_point(features + first * row + 4 * m, row, coef, acc);
            for (o = 0; o < KQ_FRONTEND_N_DELTA_ORDERS; ++o) {
                features[t * row + 4 * m + 1 + o] = acc[o];
            }
        }
    }
    return KQ_FRONTEND_OK;
}

int kq_frontend_compute_ex(const float *audio, int n, int mode, float *out, size_t out_capacity,
                           void *scratch) {
    float *buf = (float *)scratch;
    int frames, t;
    if (audio == NULL || out == NULL || scratch == NULL) {
        return KQ_FRONTEND_ERR_NULL;
    }
    frames = kq_frontend_num_frames(n, mode);
    if (frames < 0) {
        return frames;
    }
    if (kq_misaligned(scratch)) {
        return KQ_FRONTEND_ERR_ALIGN;
    }
    if (out_capacity < (size_t)frames * KQ_FRONTEND_N_MELS * (size_t)mode) {
        return KQ_FRONTEND_ERR_CAPACITY;
    }
    for (t = 0; t < frames; ++t) {
        kq_load_frame(audio, n, (long)t * KQ_FRONTEND_HOP, buf);
        kq_window_and_power(buf);
        kq_mel_log(buf, out + (size_t)t * KQ_FRONTEND_N_MELS * (size_t)mode, mode);
    }
    if (mode == KQ_FRONTEND_QUATERNION) {
        const int rc = kq_frontend_deltas(out, frames);
        if (rc != KQ_FRONTEND_OK) {
            return rc;
        }
    }
    return frames;
}

int kq_frontend_compute(const float *audio, int n, float *out, void *scratch) {
    return kq_frontend_compute_ex(audio, n, KQ_FRONTEND_QUATERNION, out, (size_t)-1, scratch);
}

int kq_frontend_compute_logmel(const float *audio, int n, float *out, void *scratch) {
    return kq_frontend_compute_ex(audio, n, KQ_FRONTEND_LOGMEL, out, (size_t)-1, scratch);
}

/* 0 when scale / zero point are usable for int8 quantization, else an error code */
static int kq_check_quant(float scale, int zero_point) {
    const float inv = 1.0f / scale;
    if (!(scale > 0.0f) || !(inv > 0.0f) || inv - inv != 0.0f) { /* NaN, <= 0, inf, tiny */
        return KQ_FRONTEND_ERR_SCALE;
    }
    if (zero_point < -128 || zero_point > 127) {
        return KQ_FRONTEND_ERR_ZERO_POINT;
    }
    return KQ_FRONTEND_OK;
}

/* round half away from zero, as TFLite Micro's QUANTIZE (x / scale, not x * (1 / scale)) */
static int8_t kq_q8(float x, float scale, int zero_point) {
    float v = roundf(x / scale) + (float)zero_point;
    if (!(v >= -128.0f)) { /* also NaN */
        v = -128.0f;
    } else if (v > 127.0f) {
        v = 127.0f;
    }
    return (int8_t)v;
}

int kq_frontend_quantize_int8(const float *in, size_t count, float scale, int zero_point,
                              int8_t *out) {
    size_t i;
    int rc;
    if (in == NULL || out == NULL) {
        return KQ_FRONTEND_ERR_NULL;
    }
    if ((rc = kq_check_quant(scale, zero_point)) != KQ_FRONTEND_OK) {
        return rc;
    }
    for (i = 0; i < count; ++i) {
        out[i] = kq_q8(in[i], scale, zero_point);
    }
    return KQ_FRONTEND_OK;
}

int kq_frontend_quaternion_int8(const float *logmel, int frames, float scale, int zero_point,
                                int8_t *out) {
    const long row = KQ_FRONTEND_N_MELS; /* floats per frame of the log-mel */
    int t, m, o, rc;
    if (logmel == NULL || out == NULL) {
        return KQ_FRONTEND_ERR_NULL;
    }
    if ((rc = kq_check_frames(frames)) != KQ_FRONTEND_OK) {
        return rc;
    }
    if ((rc = kq_check_quant(scale, zero_point)) != KQ_FRONTEND_OK) {
        return rc;
    }
    for (t = 0; t < frames; ++t) {
        const float *coef[KQ_FRONTEND_N_DELTA_ORDERS];
        const int first = kq_delta_coefs(t, frames, coef);
        int8_t *dst = out + t * row * 4;
        for (m = 0; m < KQ_FRONTEND_N_MELS; ++m) {
            float acc[KQ_FRONTEND_N_DELTA_ORDERS];
            kq_delta_point(logmel + first * row + m, row, coef, acc);
            dst[4 * m] = kq_q8(logmel[t * row + m], scale, zero_point);
            for (o = 0; o < KQ_FRONTEND_N_DELTA_ORDERS; ++o) {
                dst[4 * m + 1 + o] = kq_q8(acc[o], scale, zero_point);
            }
        }
    }
    return KQ_FRONTEND_OK;
}
