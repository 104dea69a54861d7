// Keras Adam over chosen rows (see adam_rows.h): one block per row (a grid-stride loop over rows),
// the block's threads over its columns; a row that is not selected costs one byte's read.
#include "model/kernels/adam_rows.h"

#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <algorithm>

namespace sx::model::kernels {
namespace {

// The CPU loop's expression, operation by operation, each rounded to nearest (the __f*_rn
// intrinsics are never contracted into an FMA).
__global__ void keras_adam_rows_kernel(float* __restrict__ p, float* __restrict__ m,
                                       float* __restrict__ v, float* __restrict__ g,
                                       const uint8_t* __restrict__ now,
                                       const uint8_t* __restrict__ consume,
                                       const float* __restrict__ found_inf, int64_t rows,
                                       int64_t width, AdamRowsArgs a) {
  const bool skip = found_inf != nullptr && *found_inf != 0.f;
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    if ((now[row] != 0) != a.selected) continue;
    const bool clear = consume[row] != 0;
    if (skip && !clear) continue;
    for (int64_t c = threadIdx.x; c < width; c += blockDim.x) {
      const int64_t i = row * width + c;
      const float gi = g[i];
      if (!skip) {
        const float mi = __fadd_rn(__fmul_rn(a.beta1, m[i]), __fmul_rn(a.one_minus_beta1, gi));
        const float vi =
            __fadd_rn(__fmul_rn(a.beta2, v[i]), __fmul_rn(a.one_minus_beta2, __fmul_rn(gi, gi)));
        m[i] = mi;
        v[i] = vi;
        p[i] = __fsub_rn(p[i],
                         __fdiv_rn(__fmul_rn(a.alpha, mi), __fadd_rn(__fsqrt_rn(vi), a.epsilon)));
      }
      if (clear) g[i] = 0.f;
    }
  }
}

void check_block(const at::Tensor& t, const at::Tensor& like, const char* what) {
  TORCH_CHECK(t.is_cuda() && t.scalar_type() == at::kFloat && t.is_contiguous() &&
                  t.sizes() == like.sizes() && t.device() == like.device(),
              "keras_adam_rows: ", what, " must be a contiguous fp32 CUDA [rows, width] block");
}

}  // namespace

void keras_adam_rows(at::Tensor& params, at::Tensor& m, at::Tensor& v, at::Tensor& grads,
                     const at::Tensor& now, const at::Tensor& consume, const at::Tensor& found_inf,
                     const AdamRowsArgs& args) {
  TORCH_CHECK(params.dim() == 2, "keras_adam_rows: the parameters must be a matrix");
  check_block(params, params, "params");
  check_block(m, params, "m");
  check_block(v, params, "v");
  check_block(grads, params, "grads");
  for (const at::Tensor* mask : {&now, &consume})
    TORCH_CHECK(mask->scalar_type() == at::kByte && mask->dim() == 1 && mask->is_contiguous() &&
                    mask->size(0) == params.size(0) && mask->device() == params.device(),
                "keras_adam_rows: the row masks must be [rows] uint8 on the parameters' device");
  TORCH_CHECK(
      !found_inf.defined() || (found_inf.scalar_type() == at::kFloat && found_inf.numel() == 1 &&
                               found_inf.device() == params.device()),
      "keras_adam_rows: found_inf must be a [1] float on the parameters' device");
  const int64_t rows = params.size(0), width = params.size(1);
  if (rows == 0 || width == 0) return;
  const c10::cuda::CUDAGuard guard(params.device());
  const unsigned grid = static_cast<unsigned>(std::min<int64_t>(rows, 1 << 20));
  keras_adam_rows_kernel<<<grid, 256, 0, c10::cuda::getCurrentCUDAStream()>>>(
      params.data_ptr<float>(), m.data_ptr<float>(), v.data_ptr<float>(), grads.data_ptr<float>(),
      now.data_ptr<uint8_t>(), consume.data_ptr<uint8_t>(),
      found_inf.defined() ? found_inf.data_ptr<float>() : nullptr, rows, width, args);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

}  // namespace sx::model::kernels
