// dropout + residual add + LayerNorm, forward and backward (see dropout_add_norm.h). One block
// per row at a time (grid-stride over rows); each thread owns columns 4t .. 4t+3 of every
// block-wide stride, so a thread reads back from shared memory only what it wrote itself and the
// weight and bias gradients accumulate per block without atomics (deterministic), then one sum
// over the blocks.
#include "model/kernels/dropout_add_norm.h"

#include <ATen/cuda/CUDAContextLight.h>
#include <ATen/cuda/CUDAGeneratorImpl.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/sum.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_bf16.h>
#include <curand_kernel.h>
#include <ATen/cuda/PhiloxUtils.cuh>

#include <algorithm>
#include <mutex>

namespace sx::model::kernels {
namespace {

using bf16 = __nv_bfloat16;

// Sum over the block (blockDim.x a multiple of 32, at most 1024), the same on every thread.
__device__ float block_sum(float v, float* scratch) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  if (threadIdx.x % 32 == 0) scratch[threadIdx.x / 32] = v;
  __syncthreads();
  float total = 0.f;
  for (unsigned w = 0; w < blockDim.x / 32; ++w) total += scratch[w];
  __syncthreads();  // scratch is reused by the next call
  return total;
}

// Dropout's multipliers (0 or scale) of columns col4 .. col4 + 3 of `row` (col4 % 4 == 0).
__device__ float4 keep4(uint64_t seed, uint64_t offset, int64_t row, int col4, float keep_prob,
                        float scale) {
  curandStatePhilox4_32_10_t state;
  curand_init(seed, static_cast<unsigned long long>(row), offset + static_cast<uint64_t>(col4),
              &state);
  const float4 u = curand_uniform4(&state);
  return make_float4(u.x < keep_prob ? scale : 0.f, u.y < keep_prob ? scale : 0.f,
                     u.z < keep_prob ? scale : 0.f, u.w < keep_prob ? scale : 0.f);
}

__device__ float component(const float4& v, int j) {
  return j == 0 ? v.x : j == 1 ? v.y : j == 2 ? v.z : v.w;
}

struct Shape {
  int64_t rows;
  int cols;
};

template <bool kDropout>
__global__ void forward_kernel(const bf16* __restrict__ x, const float* __restrict__ r,
                               const float* __restrict__ w, const float* __restrict__ b,
                               float* __restrict__ y, bf16* __restrict__ y16,
                               float* __restrict__ mean_out, float* __restrict__ rstd_out,
                               Shape shape, float keep_prob, float eps, at::PhiloxCudaState philox,
                               int64_t* __restrict__ rng_out) {
  extern __shared__ float v[];  // one row of r + dropout(x)
  __shared__ float scratch[32];
  uint64_t seed = 0, offset = 0;
  if (kDropout) {
    const auto drawn = at::cuda::philox::unpack(philox);
    seed = std::get<0>(drawn);
    offset = std::get<1>(drawn);
    if (blockIdx.x == 0 && threadIdx.x == 0) {
      rng_out[0] = static_cast<int64_t>(seed);
      rng_out[1] = static_cast<int64_t>(offset);
    }
  }
  const float scale = 1.f / keep_prob;
  const int cols = shape.cols, stride = 4 * static_cast<int>(blockDim.x);
  for (int64_t row = blockIdx.x; row < shape.rows; row += gridDim.x) {
    const int64_t base = row * cols;
    float sum = 0.f;
    for (int c4 = 4 * static_cast<int>(threadIdx.x); c4 < cols; c4 += stride) {
      const float4 keep =
          kDropout ? keep4(seed, offset, row, c4, keep_prob, scale) : make_float4(1, 1, 1, 1);
      for (int j = 0; j < 4 && c4 + j < cols; ++j) {
        const int c = c4 + j;
        v[c] = __bfloat162float(x[base + c]) * component(keep, j) + r[base + c];
        sum += v[c];
      }
    }
    const float mean = block_sum(sum, scratch) / cols;
    float squares = 0.f;
    for (int c4 = 4 * static_cast<int>(threadIdx.x); c4 < cols; c4 += stride)
      for (int c = c4; c < c4 + 4 && c < cols; ++c) squares += (v[c] - mean) * (v[c] - mean);
    const float rstd = rsqrtf(block_sum(squares, scratch) / cols + eps);
    for (int c4 = 4 * static_cast<int>(threadIdx.x); c4 < cols; c4 += stride)
      for (int c = c4; c < c4 + 4 && c < cols; ++c) {
        const float out = (v[c] - mean) * rstd * w[c] + b[c];
        y[base + c] = out;
        y16[base + c] = __float2bfloat16(out);
      }
    if (threadIdx.x == 0) {
      mean_out[row] = mean;
      rstd_out[row] = rstd;
    }
  }
}

struct BackwardOut {
  bf16* dx;
  float* dr;
  float* dw_part;  // [gridDim.x, cols]: each block's sums
  float* db_part;
};

// dv = rstd (g w - mean(g w) - xhat mean(g w xhat)), dr = dv, dx = dv * keep multiplier;
// dw += g xhat, db += g. Shared memory: xhat, g w, the keep multipliers, dw and db of a row.
template <bool kDropout>
__global__ void backward_kernel(const float* __restrict__ dy, const bf16* __restrict__ dy16,
                                const bf16* __restrict__ x, const float* __restrict__ r,
                                const float* __restrict__ w, const float* __restrict__ mean,
                                const float* __restrict__ rstd, const int64_t* __restrict__ rng,
                                Shape shape, float keep_prob, BackwardOut out) {
  extern __shared__ float smem[];
  __shared__ float scratch[32];
  const int cols = shape.cols, stride = 4 * static_cast<int>(blockDim.x);
  float *xhat = smem, *gw = smem + cols, *keep = smem + 2 * cols, *dw = smem + 3 * cols,
        *db = smem + 4 * cols;
  for (int c4 = 4 * static_cast<int>(threadIdx.x); c4 < cols; c4 += stride)
    for (int c = c4; c < c4 + 4 && c < cols; ++c) dw[c] = db[c] = 0.f;
  const uint64_t seed = kDropout ? static_cast<uint64_t>(rng[0]) : 0;
  const uint64_t offset = kDropout ? static_cast<uint64_t>(rng[1]) : 0;
  const float scale = 1.f / keep_prob;
  for (int64_t row = blockIdx.x; row < shape.rows; row += gridDim.x) {
    const int64_t base = row * cols;
    const float mu = mean[row], rs = rstd[row];
    float sum_gw = 0.f, sum_gw_xhat = 0.f;
    for (int c4 = 4 * static_cast<int>(threadIdx.x); c4 < cols; c4 += stride) {
      const float4 k =
          kDropout ? keep4(seed, offset, row, c4, keep_prob, scale) : make_float4(1, 1, 1, 1);
      for (int j = 0; j < 4 && c4 + j < cols; ++j) {
        const int c = c4 + j;
        const int64_t i = base + c;
        const float g = (dy ? dy[i] : 0.f) + (dy16 ? __bfloat162float(dy16[i]) : 0.f);
        keep[c] = component(k, j);
        xhat[c] = (__bfloat162float(x[i]) * keep[c] + r[i] - mu) * rs;
        gw[c] = g * w[c];
        dw[c] += g * xhat[c];
        db[c] += g;
        sum_gw += gw[c];
        sum_gw_xhat += gw[c] * xhat[c];
      }
    }
    const float mean_gw = block_sum(sum_gw, scratch) / cols;
    const float mean_gw_xhat = block_sum(sum_gw_xhat, scratch) / cols;
    for (int c4 = 4 * static_cast<int>(threadIdx.x); c4 < cols; c4 += stride)
      for (int c = c4; c < c4 + 4 && c < cols; ++c) {
        const float dv = rs * (gw[c] - mean_gw - xhat[c] * mean_gw_xhat);
        out.dr[base + c] = dv;
        out.dx[base + c] = __float2bfloat16(dv * keep[c]);
      }
  }
  for (int c4 = 4 * static_cast<int>(threadIdx.x); c4 < cols; c4 += stride)
    for (int c = c4; c < c4 + 4 && c < cols; ++c) {
      out.dw_part[blockIdx.x * static_cast<int64_t>(cols) + c] = dw[c];
      out.db_part[blockIdx.x * static_cast<int64_t>(cols) + c] = db[c];
    }
}

__global__ void keep_mask_kernel(const int64_t* __restrict__ rng, Shape shape, float keep_prob,
                                 bool* __restrict__ out) {
  const int64_t groups = (shape.cols + 3) / 4;
  const int64_t n = shape.rows * groups;
  for (int64_t g = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; g < n;
       g += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t row = g / groups;
    const int c4 = static_cast<int>(4 * (g % groups));
    const float4 k = keep4(static_cast<uint64_t>(rng[0]), static_cast<uint64_t>(rng[1]), row, c4,
                           keep_prob, 1.f);
    for (int j = 0; j < 4 && c4 + j < shape.cols; ++j)
      out[row * shape.cols + c4 + j] = component(k, j) != 0.f;
  }
}

// Threads per block: a multiple of 32 covering a row in groups of 4, at most 256.
unsigned threads_for(int64_t cols) {
  const int64_t groups = (cols + 3) / 4;
  return static_cast<unsigned>(std::min<int64_t>(256, (groups + 31) / 32 * 32));
}

Shape shape_of(const at::Tensor& x) {
  const int64_t cols = x.size(-1);
  return {cols == 0 ? 0 : x.numel() / cols, static_cast<int>(cols)};
}

void check_inputs(const at::Tensor& x, const at::Tensor& r, const at::Tensor& weight, double p) {
  TORCH_CHECK(x.is_cuda() && x.scalar_type() == at::kBFloat16 && x.is_contiguous() && x.dim() >= 1,
              "dropout_add_norm: x must be a contiguous bf16 CUDA tensor");
  TORCH_CHECK(r.scalar_type() == at::kFloat && r.is_contiguous() && r.sizes() == x.sizes() &&
                  r.device() == x.device(),
              "dropout_add_norm: the residual must be contiguous fp32 of x's shape and device");
  const int64_t cols = x.size(-1);
  TORCH_CHECK(cols > 0 && cols <= kMaxNormCols, "dropout_add_norm: rows of 1 to ", kMaxNormCols,
              " values, not ", cols);
  TORCH_CHECK(weight.scalar_type() == at::kFloat && weight.is_contiguous() && weight.dim() == 1 &&
                  weight.size(0) == cols && weight.device() == x.device(),
              "dropout_add_norm: LayerNorm parameters must be fp32 [", cols, "] on x's device");
  TORCH_CHECK(p >= 0 && p < 1, "dropout_add_norm: dropout probability ", p, " not in [0, 1)");
}

unsigned grid_for(int64_t rows, int64_t cap) {
  return static_cast<unsigned>(std::max<int64_t>(1, std::min(rows, cap)));
}

}  // namespace

DropoutAddNormForward dropout_add_norm_forward(const at::Tensor& x, const at::Tensor& r,
                                               const at::Tensor& weight, const at::Tensor& bias,
                                               double p, double eps) {
  check_inputs(x, r, weight, p);
  check_inputs(x, r, bias, p);
  const c10::cuda::CUDAGuard guard(x.device());
  const Shape shape = shape_of(x);
  DropoutAddNormForward out;
  out.y = at::empty(x.sizes(), r.options());
  out.y_bf16 = at::empty(x.sizes(), x.options());
  out.mean = at::empty({shape.rows}, r.options());
  out.rstd = at::empty({shape.rows}, r.options());
  out.rng = at::empty({p > 0 ? 2 : 0}, x.options().dtype(at::kLong));
  if (shape.rows == 0) return out;
  const unsigned threads = threads_for(shape.cols), grid = grid_for(shape.rows, 1 << 20);
  const size_t smem = sizeof(float) * static_cast<size_t>(shape.cols);
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  auto* xp = reinterpret_cast<const bf16*>(x.data_ptr<at::BFloat16>());
  auto* y16 = reinterpret_cast<bf16*>(out.y_bf16.data_ptr<at::BFloat16>());
  const float keep_prob = static_cast<float>(1.0 - p);
  if (p > 0) {
    auto* gen = at::get_generator_or_default<at::CUDAGeneratorImpl>(
        std::nullopt, at::cuda::detail::getDefaultCUDAGenerator());
    at::PhiloxCudaState philox;
    {
      std::lock_guard<std::mutex> lock(gen->mutex_);
      philox = gen->philox_cuda_state(static_cast<uint64_t>((shape.cols + 3) / 4 * 4));
    }
    forward_kernel<true><<<grid, threads, smem, stream>>>(
        xp, r.data_ptr<float>(), weight.data_ptr<float>(), bias.data_ptr<float>(),
        out.y.data_ptr<float>(), y16, out.mean.data_ptr<float>(), out.rstd.data_ptr<float>(), shape,
        keep_prob, static_cast<float>(eps), philox, out.rng.data_ptr<int64_t>());
  } else {
    forward_kernel<false><<<grid, threads, smem, stream>>>(
        xp, r.data_ptr<float>(), weight.data_ptr<float>(), bias.data_ptr<float>(),
        out.y.data_ptr<float>(), y16, out.mean.data_ptr<float>(), out.rstd.data_ptr<float>(), shape,
        1.f, static_cast<float>(eps), at::PhiloxCudaState(), nullptr);
  }
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

DropoutAddNormGrads dropout_add_norm_backward(const at::Tensor& dy, const at::Tensor& dy_bf16,
                                              const at::Tensor& x, const at::Tensor& r,
                                              const at::Tensor& weight, const at::Tensor& mean,
                                              const at::Tensor& rstd, const at::Tensor& rng,
                                              double p) {
  check_inputs(x, r, weight, p);
  TORCH_CHECK(dy.defined() || dy_bf16.defined(), "dropout_add_norm: no gradient to propagate");
  TORCH_CHECK(!dy.defined() || (dy.scalar_type() == at::kFloat && dy.sizes() == x.sizes()),
              "dropout_add_norm: the gradient of y must be fp32 of x's shape");
  TORCH_CHECK(!dy_bf16.defined() ||
                  (dy_bf16.scalar_type() == at::kBFloat16 && dy_bf16.sizes() == x.sizes()),
              "dropout_add_norm: the gradient of y_bf16 must be bf16 of x's shape");
  TORCH_CHECK(p == 0 || rng.numel() == 2, "dropout_add_norm: dropout without its rng state");
  const c10::cuda::CUDAGuard guard(x.device());
  const Shape shape = shape_of(x);
  const at::Tensor g = dy.defined() ? dy.contiguous() : dy;
  const at::Tensor g16 = dy_bf16.defined() ? dy_bf16.contiguous() : dy_bf16;
  const unsigned threads = threads_for(shape.cols);
  const unsigned grid = grid_for(
      shape.rows,
      2 * static_cast<int64_t>(at::cuda::getCurrentDeviceProperties()->multiProcessorCount));
  DropoutAddNormGrads grads;
  grads.x = at::empty(x.sizes(), x.options());
  grads.r = at::empty(x.sizes(), r.options());
  at::Tensor dw_part = at::empty({grid, shape.cols}, r.options());
  at::Tensor db_part = at::empty({grid, shape.cols}, r.options());
  if (shape.rows > 0) {
    const size_t smem = 5 * sizeof(float) * static_cast<size_t>(shape.cols);
    const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
    const BackwardOut out{reinterpret_cast<bf16*>(grads.x.data_ptr<at::BFloat16>()),
                          grads.r.data_ptr<float>(), dw_part.data_ptr<float>(),
                          db_part.data_ptr<float>()};
    const float* gp = g.defined() ? g.data_ptr<float>() : nullptr;
    const bf16* g16p =
        g16.defined() ? reinterpret_cast<const bf16*>(g16.data_ptr<at::BFloat16>()) : nullptr;
    const bf16* xp = reinterpret_cast<const bf16*>(x.data_ptr<at::BFloat16>());
    if (p > 0)
      backward_kernel<true><<<grid, threads, smem, stream>>>(
          gp, g16p, xp, r.data_ptr<float>(), weight.data_ptr<float>(), mean.data_ptr<float>(),
          rstd.data_ptr<float>(), rng.data_ptr<int64_t>(), shape, static_cast<float>(1.0 - p), out);
    else
      backward_kernel<false><<<grid, threads, smem, stream>>>(
          gp, g16p, xp, r.data_ptr<float>(), weight.data_ptr<float>(), mean.data_ptr<float>(),
          rstd.data_ptr<float>(), nullptr, shape, 1.f, out);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  } else {
    dw_part.zero_();
    db_part.zero_();
  }
  grads.weight = at::sum(dw_part, 0);
  grads.bias = at::sum(db_part, 0);
  return grads;
}

at::Tensor dropout_keep_mask(const at::Tensor& rng, int64_t rows, int64_t cols, double p) {
  TORCH_CHECK(rng.is_cuda() && rng.scalar_type() == at::kLong && rng.numel() == 2,
              "dropout_keep_mask: rng must be the [2] int64 CUDA state a forward returned");
  TORCH_CHECK(p > 0 && p < 1 && cols > 0 && cols <= kMaxNormCols && rows >= 0,
              "dropout_keep_mask: bad arguments");
  const c10::cuda::CUDAGuard guard(rng.device());
  at::Tensor out = at::empty({rows, cols}, rng.options().dtype(at::kBool));
  const Shape shape{rows, static_cast<int>(cols)};
  const int64_t groups = rows * ((cols + 3) / 4);
  if (groups == 0) return out;
  keep_mask_kernel<<<grid_for((groups + 255) / 256, 4096), 256, 0,
                     c10::cuda::getCurrentCUDAStream()>>>(
      rng.data_ptr<int64_t>(), shape, static_cast<float>(1.0 - p), out.data_ptr<bool>());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

}  // namespace sx::model::kernels
