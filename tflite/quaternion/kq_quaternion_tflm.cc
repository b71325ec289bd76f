/*
 * kq_quaternion_tflm.cc - TFLite Micro adapter around the C kernels of kq_quaternion_ops.c.
 *
 * Init parses the custom options, Prepare checks the tensors and computes the per-channel
 * requantisation exactly as TFLite Micro's CONV_2D / FULLY_CONNECTED do (in persistent arena
 * memory, 8 bytes per real output channel), Eval calls the kernel. Nothing else is allocated.
 */
#include "kq_quaternion_tflm.h"

#include "kq_quaternion_ops.h"
#include "tensorflow/lite/c/common.h"
#include "tensorflow/lite/micro/kernels/kernel_util.h"
#include "tensorflow/lite/micro/micro_context.h"
#include "tensorflow/lite/micro/micro_log.h"

namespace tflite {
namespace {

constexpr int kInput = 0;
constexpr int kFilter = 1;
constexpr int kBias = 2;
constexpr int kCorrections = 3;
constexpr int kOutput = 0;

struct OpData {
  kq_options options;
  kq_requant requant;
  kq_conv_shape conv;  // convolution geometry, fixed at Prepare
  int rows;            // fully connected: input rows
};

void* Init(TfLiteContext* context, const char* buffer, size_t length) {
  OpData* data = static_cast<OpData*>(context->AllocatePersistentBuffer(context, sizeof(OpData)));
  if (data == nullptr) return nullptr;
  if (kq_parse_options(reinterpret_cast<const uint8_t*>(buffer), length, &data->options) !=
      KQ_OK) {
    MicroPrintf("KQ quaternion op: missing or invalid custom options (%d bytes)",
                static_cast<int>(length));
    data->options.kind = 0;
  }
  return data;
}

TfLiteStatus PrepareRequant(TfLiteContext* context, OpData* data, const TfLiteTensor* input,
                            const TfLiteTensor* filter, const TfLiteTensor* output,
                            int channels) {
  TF_LITE_ENSURE_EQ(context, filter->quantization.type, kTfLiteAffineQuantization);
  const auto* quant = static_cast<const TfLiteAffineQuantization*>(filter->quantization.params);
  TF_LITE_ENSURE(context, quant != nullptr && quant->scale != nullptr);
  int32_t* multiplier = static_cast<int32_t*>(
      context->AllocatePersistentBuffer(context, channels * sizeof(int32_t)));
  int32_t* shift = static_cast<int32_t*>(
      context->AllocatePersistentBuffer(context, channels * sizeof(int32_t)));
  TF_LITE_ENSURE(context, multiplier != nullptr && shift != nullptr);
  TF_LITE_ENSURE_EQ(context,
                    kq_channel_multipliers(input->params.scale, quant->scale->data,
                                           quant->scale->size, output->params.scale, channels,
                                           multiplier, shift),
                    KQ_OK);
  kq_requant* rq = &data->requant;
  TF_LITE_ENSURE_EQ(context,
                    kq_activation_range(data->options.activation, output->params.scale,
                                        output->params.zero_point, &rq->act_min, &rq->act_max),
                    KQ_OK);
  rq->input_offset = -input->params.zero_point;
  rq->output_offset = output->params.zero_point;
  rq->rounding = KQ_ROUND_DOUBLE;  // TFLite Micro's reference kernels round twice
  rq->multiplier = multiplier;
  rq->shift = shift;
  return kTfLiteOk;
}

TfLiteStatus PrepareConv(TfLiteContext* context, OpData* data, const TfLiteTensor* input,
                         const TfLiteTensor* filter, const TfLiteTensor* output) {
  TF_LITE_ENSURE(context, input->dims->size == 4 && filter->dims->size == 4 &&
                              output->dims->size == 4);
  kq_conv_shape* s = &data->conv;
  s->batches = input->dims->data[0];
  s->in_h = input->dims->data[1];
  s->in_w = input->dims->data[2];
  s->in_units = filter->dims->data[3];
  s->out_units = filter->dims->data[0] / 4;
  s->filter_h = filter->dims->data[1];
  s->filter_w = filter->dims->data[2];
  s->stride_h = data->options.stride_h;
  s->stride_w = data->options.stride_w;
  s->dilation_h = data->options.dilation_h;
  s->dilation_w = data->options.dilation_w;
  TF_LITE_ENSURE_EQ(context, input->dims->data[3], 4 * s->in_units);
  TF_LITE_ENSURE_EQ(context, filter->dims->data[0], 4 * s->out_units);
  TF_LITE_ENSURE_EQ(context, output->dims->data[3], 4 * s->out_units);
  TF_LITE_ENSURE_EQ(context,
                    kq_output_size(data->options.padding, s->in_h, s->filter_h, s->stride_h,
                                   s->dilation_h, &s->out_h, &s->pad_h),
                    KQ_OK);
  TF_LITE_ENSURE_EQ(context,
                    kq_output_size(data->options.padding, s->in_w, s->filter_w, s->stride_w,
                                   s->dilation_w, &s->out_w, &s->pad_w),
                    KQ_OK);
  TF_LITE_ENSURE_EQ(context, output->dims->data[1], s->out_h);
  TF_LITE_ENSURE_EQ(context, output->dims->data[2], s->out_w);
  return kTfLiteOk;
}

TfLiteStatus PrepareFullyConnected(TfLiteContext* context, OpData* data,
                                   const TfLiteTensor* input, const TfLiteTensor* filter,
                                   const TfLiteTensor* output) {
  TF_LITE_ENSURE_EQ(context, filter->dims->size, 2);
  const int in_units = filter->dims->data[1];
  const int channels = filter->dims->data[0];
  int input_size = 1, output_size = 1;
  for (int i = 0; i < input->dims->size; ++i) input_size *= input->dims->data[i];
  for (int i = 0; i < output->dims->size; ++i) output_size *= output->dims->data[i];
  TF_LITE_ENSURE(context, channels % 4 == 0 && input_size % (4 * in_units) == 0);
  data->rows = input_size / (4 * in_units);
  TF_LITE_ENSURE_EQ(context, output_size, data->rows * channels);
  return kTfLiteOk;
}

TfLiteStatus Prepare(TfLiteContext* context, TfLiteNode* node) {
  OpData* data = static_cast<OpData*>(node->user_data);
  TF_LITE_ENSURE(context, data != nullptr && data->options.kind != 0);
  TF_LITE_ENSURE(context, node->inputs->size >= 2 && node->inputs->size <= 4);
  MicroContext* micro_context = GetMicroContext(context);
  TfLiteTensor* input = micro_context->AllocateTempInputTensor(node, kInput);
  TfLiteTensor* filter = micro_context->AllocateTempInputTensor(node, kFilter);
  TfLiteTensor* output = micro_context->AllocateTempOutputTensor(node, kOutput);
  TF_LITE_ENSURE(context, input != nullptr && filter != nullptr && output != nullptr);
  TF_LITE_ENSURE(context, input->type == kTfLiteInt8 && filter->type == kTfLiteInt8 &&
                              output->type == kTfLiteInt8);
  TfLiteStatus status =
      data->options.kind == KQ_KIND_CONV2D
          ? PrepareConv(context, data, input, filter, output)
          : PrepareFullyConnected(context, data, input, filter, output);
  if (status == kTfLiteOk) {
    status = PrepareRequant(context, data, input, filter, output, filter->dims->data[0]);
  }
  if (status == kTfLiteOk && node->inputs->size > kCorrections &&
      node->inputs->data[kCorrections] >= 0) {
    TfLiteTensor* corrections = micro_context->AllocateTempInputTensor(node, kCorrections);
    TF_LITE_ENSURE(context, corrections != nullptr);
    const bool ok = corrections->type == kTfLiteInt32 && corrections->dims->size == 2 &&
                    corrections->dims->data[1] == 2;
    micro_context->DeallocateTempTfLiteTensor(corrections);
    TF_LITE_ENSURE_MSG(context, ok, "KQ quaternion op: corrections must be int32 [n, 2]");
  }
  micro_context->DeallocateTempTfLiteTensor(input);
  micro_context->DeallocateTempTfLiteTensor(filter);
  micro_context->DeallocateTempTfLiteTensor(output);
  return status;
}

TfLiteStatus Eval(TfLiteContext* context, TfLiteNode* node) {
  const OpData* data = static_cast<const OpData*>(node->user_data);
  const TfLiteEvalTensor* input = micro::GetEvalInput(context, node, kInput);
  const TfLiteEvalTensor* filter = micro::GetEvalInput(context, node, kFilter);
  const TfLiteEvalTensor* bias =
      node->inputs->size > kBias ? micro::GetEvalInput(context, node, kBias) : nullptr;
  const TfLiteEvalTensor* corrections =
      node->inputs->size > kCorrections ? micro::GetEvalInput(context, node, kCorrections)
                                        : nullptr;
  const int32_t* correction_data = micro::GetOptionalTensorData<int32_t>(corrections);
  const int n_corrections = corrections != nullptr ? corrections->dims->data[0] : 0;
  TfLiteEvalTensor* output = micro::GetEvalOutput(context, node, kOutput);
  const int32_t* bias_data = micro::GetOptionalTensorData<int32_t>(bias);
  int status;
  if (data->options.kind == KQ_KIND_CONV2D) {
    status = kq_qconv2d_s8(&data->conv, &data->requant, micro::GetTensorData<int8_t>(input),
                           micro::GetTensorData<int8_t>(filter), bias_data, correction_data,
                           n_corrections, micro::GetTensorData<int8_t>(output));
  } else {
    status = kq_qfully_connected_s8(data->rows, filter->dims->data[1], filter->dims->data[0] / 4,
                                    &data->requant, micro::GetTensorData<int8_t>(input),
                                    micro::GetTensorData<int8_t>(filter), bias_data,
                                    correction_data, n_corrections,
                                    micro::GetTensorData<int8_t>(output));
  }
  if (status != KQ_OK) {
    MicroPrintf("KQ quaternion op: kernel failed with status %d", status);
    return kTfLiteError;
  }
  return kTfLiteOk;
}

}  // namespace

TFLMRegistration* Register_KQ_QCONV2D() {
  static TFLMRegistration registration = micro::RegisterOp(Init, Prepare, Eval);
  return &registration;
}

TFLMRegistration* Register_KQ_QFULLY_CONNECTED() {
  static TFLMRegistration registration = micro::RegisterOp(Init, Prepare, Eval);
  return &registration;
}

}  // namespace tflite
