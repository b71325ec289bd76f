/*
 * kq_quaternion_ops.c - int8 quaternion convolution and fully connected kernels (C99).
 * See kq_quaternion_ops.h for the layouts and the arithmetic contract.
 */
#include "kq_quaternion_ops.h"

#include <math.h>

static const uint8_t kMagic[4] = {'K', 'Q', 'H', '1'};

static int32_t read_le32(const uint8_t* p) {
  uint32_t v = (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
               ((uint32_t)p[3] << 24);
  return (int32_t)v;
}

static void write_le32(int32_t value, uint8_t* p) {
  uint32_t v = (uint32_t)value;
  p[0] = (uint8_t)(v & 0xff);
  p[1] = (uint8_t)((v >> 8) & 0xff);
  p[2] = (uint8_t)((v >> 16) & 0xff);
  p[3] = (uint8_t)((v >> 24) & 0xff);
}

int kq_parse_options(const uint8_t* buffer, size_t length, kq_options* options) {
  int i;
  if (buffer == NULL || options == NULL || length < KQ_OPTIONS_BYTES) return KQ_ERR_OPTIONS;
  for (i = 0; i < 4; ++i) {
    if (buffer[i] != kMagic[i]) return KQ_ERR_OPTIONS;
  }
  options->kind = read_le32(buffer + 4);
  options->padding = read_le32(buffer + 8);
  options->stride_h = read_le32(buffer + 12);
  options->stride_w = read_le32(buffer + 16);
  options->dilation_h = read_le32(buffer + 20);
  options->dilation_w = read_le32(buffer + 24);
  options->activation = read_le32(buffer + 28);
  if (options->kind != KQ_KIND_CONV2D && options->kind != KQ_KIND_FULLY_CONNECTED) {
    return KQ_ERR_OPTIONS;
  }
  if (options->stride_h < 1 || options->stride_w < 1 || options->dilation_h < 1 ||
      options->dilation_w < 1) {
    return KQ_ERR_OPTIONS;
  }
  return KQ_OK;
}

void kq_write_options(const kq_options* options, uint8_t* buffer) {
  int i;
  for (i = 0; i < 4; ++i) buffer[i] = kMagic[i];
  write_le32(options->kind, buffer + 4);
  write_le32(options->padding, buffer + 8);
  write_le32(options->stride_h, buffer + 12);
  write_le32(options->stride_w, buffer + 16);
  write_le32(options->dilation_h, buffer + 20);
  write_le32(options->dilation_w, buffer + 24);
  write_le32(options->activation, buffer + 28);
}

void kq_quantize_multiplier(double real, int32_t* multiplier, int* shift) {
  double q;
  int64_t fixed;
  if (real == 0.0) {
    *multiplier = 0;
    *shift = 0;
    return;
  }
  q = frexp(real, shift);
  fixed = (int64_t)round(q * (double)(1LL << 31));
  if (fixed == (1LL << 31)) {
    fixed /= 2;
    ++*shift;
  }
  if (*shift < -31) {
    *shift = 0;
    fixed = 0;
  }
  *multiplier = (int32_t)fixed;
}

/* gemmlowp's SaturatingRoundingDoublingHighMul. */
static int32_t doubling_high_mul(int32_t a, int32_t b) {
  int64_t ab;
  int64_t nudge;
  if (a == b && a == INT32_MIN) return INT32_MAX;
  ab = (int64_t)a * (int64_t)b;
  nudge = ab >= 0 ? (1LL << 30) : (1 - (1LL << 30));
  return (int32_t)((ab + nudge) / (1LL << 31)); /* C99 division truncates, as in C++ */
}

/* gemmlowp's RoundingDivideByPOT. */
static int32_t rounding_divide_by_pot(int32_t x, int exponent) {
  const int32_t mask = (int32_t)((1LL << exponent) - 1);
  const int32_t remainder = x & mask;
  const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
  return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

int32_t kq_requantize(int32_t acc, int32_t multiplier, int shift, kq_rounding rounding) {
  if (rounding == KQ_ROUND_SINGLE) {
    const int total = 31 - shift;
    const int64_t result = ((int64_t)acc * multiplier + (1LL << (total - 1))) >> total;
    return (int32_t)result;
  } else {
    const int left = shift > 0 ? shift : 0;
    const int right = shift > 0 ? 0 : -shift;
    const int32_t scaled = (int32_t)(uint32_t)((int64_t)acc * (1LL << left));
    return rounding_divide_by_pot(doubling_high_mul(scaled, multiplier), right);
  }
}

int kq_channel_multipliers(float input_scale, const float* filter_scales, int n_scales,
                           float output_scale, int channels, int32_t* multiplier,
                           int32_t* shift) {
  int o;
  if (filter_scales == NULL || multiplier == NULL || shift == NULL) return KQ_ERR_ARG;
  if (channels < 1 || (n_scales != 1 && n_scales != channels)) return KQ_ERR_SHAPE;
  for (o = 0; o < channels; ++o) {
    const double filter_scale = (double)filter_scales[n_scales == 1 ? 0 : o];
    const double real = (double)input_scale * filter_scale / (double)output_scale;
    int s;
    kq_quantize_multiplier(real, &multiplier[o], &s);
    shift[o] = s;
  }
  return KQ_OK;
}

static int32_t quantize_activation(float value, float scale, int32_t zero_point) {
  return zero_point + (int32_t)roundf(value / scale);
}

static int32_t max32(int32_t a, int32_t b) { return a > b ? a : b; }
static int32_t min32(int32_t a, int32_t b) { return a < b ? a : b; }

int kq_activation_range(int activation, float output_scale, int32_t output_zero_point,
                        int32_t* act_min, int32_t* act_max) {
  int32_t lo = -128, hi = 127;
  if (act_min == NULL || act_max == NULL) return KQ_ERR_ARG;
  switch (activation) {
    case KQ_ACT_NONE:
      break;
    case KQ_ACT_RELU:
      lo = max32(lo, quantize_activation(0.0f, output_scale, output_zero_point));
      break;
    case KQ_ACT_RELU6:
      lo = max32(lo, quantize_activation(0.0f, output_scale, output_zero_point));
      hi = min32(hi, quantize_activation(6.0f, output_scale, output_zero_point));
      break;
    case KQ_ACT_RELU_N1_TO_1:
      lo = max32(lo, quantize_activation(-1.0f, output_scale, output_zero_point));
      hi = min32(hi, quantize_activation(1.0f, output_scale, output_zero_point));
      break;
    default:
      return KQ_ERR_ARG;
  }
  *act_min = lo;
  *act_max = hi;
  return KQ_OK;
}

int kq_output_size(int padding, int in_size, int filter_size, int stride, int dilation,
                   int* out_size, int* pad_before) {
  const int effective = (filter_size - 1) * dilation + 1;
  int total;
  if (out_size == NULL || pad_before == NULL || stride < 1 || dilation < 1) return KQ_ERR_ARG;
  if (padding == KQ_PADDING_SAME) {
    *out_size = (in_size + stride - 1) / stride;
  } else if (padding == KQ_PADDING_VALID) {
    *out_size = (in_size + stride - effective) / stride;
  } else {
    return KQ_ERR_ARG;
  }
  total = (*out_size - 1) * stride + effective - in_size;
  *pad_before = total > 0 ? total / 2 : 0;
  return *out_size > 0 ? KQ_OK : KQ_ERR_SHAPE;
}

/* The four real outputs of one quaternion filter, requantised and clamped. */
static void store_quaternion(const int32_t acc[4], const kq_requant* rq, const int32_t* bias,
                             int units, int f, int8_t* out) {
  int b;
  for (b = 0; b < 4; ++b) {
    const int o = b * units + f;
    int32_t v = acc[b] + (bias != NULL ? bias[o] : 0);
    v = kq_requantize(v, rq->multiplier[o], rq->shift[o], rq->rounding) + rq->output_offset;
    v = max32(v, rq->act_min);
    v = min32(v, rq->act_max);
    out[o] = (int8_t)v;
  }
}

/* acc += W (x) x over `n` components: x holds 4 blocks of `x_stride` values, w 4 blocks of
 * `w_stride` values, both starting at the first of the `n`. */
static void hamilton_accumulate(const int8_t* x, int x_stride, int32_t offset, const int8_t* w,
                                int w_stride, int n, int32_t acc[4]) {
  int c;
  for (c = 0; c < n; ++c) {
    const int32_t p = x[c] + offset, q = x[x_stride + c] + offset;
    const int32_t r = x[2 * x_stride + c] + offset, s = x[3 * x_stride + c] + offset;
    const int32_t a = w[c], b = w[w_stride + c], cc = w[2 * w_stride + c];
    const int32_t d = w[3 * w_stride + c];
    acc[0] += a * p - b * q - cc * r - d * s;
    acc[1] += a * q + b * p + cc * s - d * r;
    acc[2] += a * r - b * s + cc * p + d * q;
    acc[3] += a * s + b * r - cc * q + d * p;
  }
}

/* Corrections must index the expanded kernel of `size` values. */
static int check_corrections(const int32_t* corrections, int n, int64_t size) {
  int k;
  if (n < 0 || (n > 0 && corrections == NULL)) return KQ_ERR_ARG;
  for (k = 0; k < n; ++k) {
    if (corrections[2 * k] < 0 || corrections[2 * k] >= size) return KQ_ERR_ARG;
  }
  return KQ_OK;
}

static int check_requant(const kq_requant* rq) {
  if (rq == NULL || rq->multiplier == NULL || rq->shift == NULL) return KQ_ERR_ARG;
  if (rq->rounding != KQ_ROUND_DOUBLE && rq->rounding != KQ_ROUND_SINGLE) return KQ_ERR_ARG;
  return KQ_OK;
}

static int check_conv_shape(const kq_conv_shape* s) {
  if (s->batches < 1 || s->in_h < 1 || s->in_w < 1 || s->in_units < 1 || s->out_h < 1 ||
      s->out_w < 1 || s->out_units < 1 || s->filter_h < 1 || s->filter_w < 1 ||
      s->stride_h < 1 || s->stride_w < 1 || s->dilation_h < 1 || s->dilation_w < 1 ||
      s->pad_h < 0 || s->pad_w < 0) {
    return KQ_ERR_SHAPE;
  }
  return KQ_OK;
}

/* One output pixel of one quaternion filter: the sum over the filter taps inside the image. */
static void conv_pixel(const kq_conv_shape* s, const kq_requant* rq, const int8_t* image,
                       const int8_t* filter, int y0, int x0, int f, int32_t acc[4]) {
  const int C = s->in_units;
  const int w_stride = s->out_units * s->filter_h * s->filter_w * C; /* one component block */
  int fy, fx;
  acc[0] = acc[1] = acc[2] = acc[3] = 0;
  for (fy = 0; fy < s->filter_h; ++fy) {
    const int iy = y0 + s->dilation_h * fy;
    if (iy < 0 || iy >= s->in_h) continue;
    for (fx = 0; fx < s->filter_w; ++fx) {
      const int ix = x0 + s->dilation_w * fx;
      const int8_t* x;
      const int8_t* w;
      if (ix < 0 || ix >= s->in_w) continue;
      x = image + ((size_t)iy * s->in_w + ix) * 4 * C;
      w = filter + (((size_t)f * s->filter_h + fy) * s->filter_w + fx) * C;
      hamilton_accumulate(x, C, rq->input_offset, w, w_stride, C, acc);
    }
  }
}

/* Adds the corrections of filter f at one output pixel (taps outside the image add nothing). */
static void conv_corrections(const kq_conv_shape* s, const kq_requant* rq, const int8_t* image,
                             const int32_t* corrections, int n, int y0, int x0, int f,
                             int32_t acc[4]) {
  const int in4 = 4 * s->in_units;
  const int32_t per_output = s->filter_h * s->filter_w * in4;
  int k;
  for (k = 0; k < n; ++k) {
    const int32_t index = corrections[2 * k];
    const int32_t o = index / per_output;
    const int32_t rest = index % per_output;
    const int iy = y0 + s->dilation_h * (rest / (s->filter_w * in4));
    const int ix = x0 + s->dilation_w * ((rest / in4) % s->filter_w);
    if (o % s->out_units != f || iy < 0 || iy >= s->in_h || ix < 0 || ix >= s->in_w) continue;
    acc[o / s->out_units] +=
        corrections[2 * k + 1] * (image[((size_t)iy * s->in_w + ix) * in4 + rest % in4] +
                                  rq->input_offset);
  }
}

int kq_qconv2d_s8(const kq_conv_shape* shape, const kq_requant* requant, const int8_t* input,
                  const int8_t* filter, const int32_t* bias, const int32_t* corrections,
                  int n_corrections, int8_t* output) {
  int n, oy, ox, f, status;
  int32_t acc[4];
  if (shape == NULL || input == NULL || filter == NULL || output == NULL) return KQ_ERR_ARG;
  if ((status = check_requant(requant)) != KQ_OK) return status;
  if ((status = check_conv_shape(shape)) != KQ_OK) return status;
  status = check_corrections(corrections, n_corrections,
                             (int64_t)16 * shape->out_units * shape->filter_h * shape->filter_w *
                                 shape->in_units);
  if (status != KQ_OK) return status;
  for (n = 0; n < shape->batches; ++n) {
    const int8_t* image = input + (size_t)n * shape->in_h * shape->in_w * 4 * shape->in_units;
    for (oy = 0; oy < shape->out_h; ++oy) {
      const int y0 = oy * shape->stride_h - shape->pad_h;
      for (ox = 0; ox < shape->out_w; ++ox) {
        const int x0 = ox * shape->stride_w - shape->pad_w;
        int8_t* out = output + (((size_t)n * shape->out_h + oy) * shape->out_w + ox) * 4 *
                                   shape->out_units;
        for (f = 0; f < shape->out_units; ++f) {
          conv_pixel(shape, requant, image, filter, y0, x0, f, acc);
          conv_corrections(shape, requant, image, corrections, n_corrections, y0, x0, f, acc);
          store_quaternion(acc, requant, bias, shape->out_units, f, out);
        }
      }
    }
  }
  return KQ_OK;
}

int kq_qfully_connected_s8(int rows, int in_units, int out_units, const kq_requant* requant,
                           const int8_t* input, const int8_t* filter, const int32_t* bias,
                           const int32_t* corrections, int n_corrections, int8_t* output) {
  int row, f, k, status;
  int32_t acc[4];
  const int w_stride = out_units * in_units;
  if (input == NULL || filter == NULL || output == NULL) return KQ_ERR_ARG;
  if ((status = check_requant(requant)) != KQ_OK) return status;
  if (rows < 1 || in_units < 1 || out_units < 1) return KQ_ERR_SHAPE;
  status = check_corrections(corrections, n_corrections, (int64_t)16 * out_units * in_units);
  if (status != KQ_OK) return status;
  for (row = 0; row < rows; ++row) {
    const int8_t* x = input + (size_t)row * 4 * in_units;
    int8_t* out = output + (size_t)row * 4 * out_units;
    for (f = 0; f < out_units; ++f) {
      acc[0] = acc[1] = acc[2] = acc[3] = 0;
      hamilton_accumulate(x, in_units, requant->input_offset, filter + (size_t)f * in_units,
                          w_stride, in_units, acc);
      for (k = 0; k < n_corrections; ++k) {
        const int32_t o = corrections[2 * k] / (4 * in_units);
        if (o % out_units != f) continue;
        acc[o / out_units] += corrections[2 * k + 1] *
                              (x[corrections[2 * k] % (4 * in_units)] + requant->input_offset);
      }
      store_quaternion(acc, requant, bias, out_units, f, out);
    }
  }
  return KQ_OK;
}
