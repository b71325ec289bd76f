/*
 * kq_quaternion_ops.h - int8 quaternion convolution and fully connected kernels (C99).
 *
 * keras-quaternion's "compact" export keeps every quaternion layer quaternion in the .tflite
 * flatbuffer: one CUSTOM operator whose int8 weight tensor holds the four components of each
 * quaternion weight (a quarter of the real kernel). These kernels compute, from those
 * components, exactly what TFLite's reference int8 CONV_2D / FULLY_CONNECTED compute on the
 * expanded real kernel: the same integer sums, the same per-channel requantisation and rounding,
 * the same padding, strides, dilation and activation clamps. They never build the expanded
 * kernel and allocate nothing.
 *
 * Layouts (channels last, as TFLite):
 *   input   [batches][in_h][in_w][4 * in_units]       real channels in blocks [r | i | j | k]
 *   filter  [4 * out_units][filter_h][filter_w][in_units]
 *           row p * out_units + f holds component p (0 = r, 1 = i, 2 = j, 3 = k) of the
 *           quaternion filter f; the fully connected filter is [4 * out_units][in_units]
 *   bias    [4 * out_units] int32, or NULL
 *   output  [batches][out_h][out_w][4 * out_units]
 * The quantisation arrays (multiplier, shift) are per real output channel o = b * out_units + f.
 *   corrections  [n][2] int32 pairs (index, delta), or NULL with n = 0: where full-integer
 *           conversion rounded one copy of a weight differently from its three other copies
 *           (a value within float rounding of k + 0.5), the expanded int8 kernel differs from
 *           the one the components give by `delta` at the flat `index` into the expanded kernel
 *           [4 * out_units][filter_h][filter_w][4 * in_units] (fully connected:
 *           [4 * out_units][4 * in_units]). The kernels add these terms, so that they compute
 *           exactly what the expanded kernel computes.
 *
 * Output block b of filter f is the Hamilton product W_f (x) x with the weight on the left:
 *   r = a p - b q - c r - d s     i = a q + b p + c s - d r
 *   j = a r - b s + c p + d q     k = a s + b r - c q + d p
 * for weight components (a, b, c, d) and input components (p, q, r, s).
 */
#ifndef KQ_QUATERNION_OPS_H_
#define KQ_QUATERNION_OPS_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Operator names in the flatbuffer (CUSTOM operator codes). */
#define KQ_QCONV2D_NAME "KQ_QCONV2D"
#define KQ_QFC_NAME "KQ_QFULLY_CONNECTED"

/* Custom options: 4 magic bytes "KQH1", then 7 little-endian int32 fields. */
#define KQ_OPTIONS_BYTES 32

/* Return codes. */
enum {
  KQ_OK = 0,
  KQ_ERR_OPTIONS = 1, /* custom options missing, too short or with the wrong magic */
  KQ_ERR_SHAPE = 2,   /* a dimension is not positive or channels are not a multiple of 4 */
  KQ_ERR_ARG = 3      /* a NULL pointer or an unknown enumerator */
};

/* Kinds, paddings and activations (the values of the TFLite schema where one exists). */
enum { KQ_KIND_FULLY_CONNECTED = 1, KQ_KIND_CONV2D = 2 };
enum { KQ_PADDING_SAME = 0, KQ_PADDING_VALID = 1 };
enum { KQ_ACT_NONE = 0, KQ_ACT_RELU = 1, KQ_ACT_RELU_N1_TO_1 = 2, KQ_ACT_RELU6 = 3 };

/* Requantisation: TFLite Micro's reference kernels round twice
 * (SaturatingRoundingDoublingHighMul, then RoundingDivideByPOT); LiteRT's int8
 * FULLY_CONNECTED rounds once (TFLITE_SINGLE_ROUNDING). Devices use KQ_ROUND_DOUBLE. */
typedef enum { KQ_ROUND_DOUBLE = 0, KQ_ROUND_SINGLE = 1 } kq_rounding;

/* What the custom options of one operator say. */
typedef struct {
  int32_t kind;       /* KQ_KIND_* */
  int32_t padding;    /* KQ_PADDING_* (convolution only) */
  int32_t stride_h, stride_w;
  int32_t dilation_h, dilation_w;
  int32_t activation; /* KQ_ACT_* */
} kq_options;

/* Quantisation of one operator. */
typedef struct {
  int32_t input_offset;      /* minus the input zero point */
  int32_t output_offset;     /* the output zero point */
  int32_t act_min, act_max;  /* clamp of the int8 output */
  kq_rounding rounding;
  const int32_t* multiplier; /* [4 * out_units] */
  const int32_t* shift;      /* [4 * out_units] */
} kq_requant;

/* Geometry of one convolution. */
typedef struct {
  int batches, in_h, in_w, in_units;
  int out_h, out_w, out_units;
  int filter_h, filter_w;
  int stride_h, stride_w, dilation_h, dilation_w;
  int pad_h, pad_w; /* padding before the first row / column */
} kq_conv_shape;

/* Parses the custom options written by keras-quaternion's export. */
int kq_parse_options(const uint8_t* buffer, size_t length, kq_options* options);

/* Writes the custom options (KQ_OPTIONS_BYTES bytes) for `options`. */
void kq_write_options(const kq_options* options, uint8_t* buffer);

/* TFLite's QuantizeMultiplier: real = multiplier * 2^(shift - 31). */
void kq_quantize_multiplier(double real, int32_t* multiplier, int* shift);

/* TFLite's MultiplyByQuantizedMultiplier with the given rounding. */
int32_t kq_requantize(int32_t acc, int32_t multiplier, int shift, kq_rounding rounding);

/* Per-channel multipliers and shifts as TFLite computes them:
 * input_scale * filter_scale[o] / output_scale (in double), for `channels` real outputs;
 * filter_scales has `n_scales` entries (1: per tensor, else one per real output). */
int kq_channel_multipliers(float input_scale, const float* filter_scales, int n_scales,
                           float output_scale, int channels, int32_t* multiplier,
                           int32_t* shift);

/* TFLite's CalculateActivationRangeQuantized for an int8 output. */
int kq_activation_range(int activation, float output_scale, int32_t output_zero_point,
                        int32_t* act_min, int32_t* act_max);

/* TFLite's padding: output size and padding before, for one spatial axis. */
int kq_output_size(int padding, int in_size, int filter_size, int stride, int dilation,
                   int* out_size, int* pad_before);

/* The quaternion convolution (see the layouts above). */
int kq_qconv2d_s8(const kq_conv_shape* shape, const kq_requant* requant, const int8_t* input,
                  const int8_t* filter, const int32_t* bias, const int32_t* corrections,
                  int n_corrections, int8_t* output);

/* The quaternion fully connected layer on `rows` input rows of 4 * in_units values. */
int kq_qfully_connected_s8(int rows, int in_units, int out_units, const kq_requant* requant,
                           const int8_t* input, const int8_t* filter, const int32_t* bias,
                           const int32_t* corrections, int n_corrections, int8_t* output);

#ifdef __cplusplus
}
#endif

#endif /* KQ_QUATERNION_OPS_H_ */
