// The word embeddings' gradient added into its slot (see embedding_grad.h): tokens sorted by id
// (stable), then one block per run of equal ids sums the run's rows in token order and adds the
// sum to the id's row.
#include "model/kernels/embedding_grad.h"

#include <ATen/ops/sort.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <algorithm>

namespace sx::model::kernels {
namespace {

// Block b looks at sorted positions b, b + gridDim.x, ...: where a run of equal ids starts, it
// adds the run's rows of dout (their sum, in token order) to grad's row of that id.
__global__ void add_runs_kernel(const int64_t* __restrict__ sorted,
                                const int64_t* __restrict__ order, const float* __restrict__ dout,
                                float* __restrict__ grad, int64_t tokens, int64_t cols) {
  for (int64_t start = blockIdx.x; start < tokens; start += gridDim.x) {
    const int64_t id = sorted[start];
    if (start > 0 && sorted[start - 1] == id) continue;  // not the first of its run
    int64_t end = start + 1;
    while (end < tokens && sorted[end] == id) ++end;
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
      float sum = 0.f;
      for (int64_t k = start; k < end; ++k) sum += dout[order[k] * cols + c];
      grad[id * cols + c] += sum;
    }
  }
}

}  // namespace

void embedding_grad_add(at::Tensor& grad, const at::Tensor& ids, const at::Tensor& dout) {
  TORCH_CHECK(
      grad.is_cuda() && grad.scalar_type() == at::kFloat && grad.is_contiguous() && grad.dim() == 2,
      "embedding_grad_add: the gradient must be a contiguous fp32 CUDA matrix");
  TORCH_CHECK(ids.scalar_type() == at::kLong && ids.dim() == 1 && ids.device() == grad.device(),
              "embedding_grad_add: ids must be [T] int64 on the gradient's device");
  TORCH_CHECK(dout.scalar_type() == at::kFloat && dout.dim() == 2 && dout.size(0) == ids.size(0) &&
                  dout.size(1) == grad.size(1) && dout.device() == grad.device(),
              "embedding_grad_add: the output gradient must be fp32 [T, H] on the same device");
  const int64_t tokens = ids.size(0), cols = grad.size(1);
  if (tokens == 0 || cols == 0) return;
  const c10::cuda::CUDAGuard guard(grad.device());
  auto [sorted, order] = at::sort(ids, /*stable=*/true, /*dim=*/0, /*descending=*/false);
  const at::Tensor d = dout.contiguous();
  const unsigned grid = static_cast<unsigned>(std::min<int64_t>(tokens, 1 << 20));
  add_runs_kernel<<<grid, 256, 0, c10::cuda::getCurrentCUDAStream()>>>(
      sorted.data_ptr<int64_t>(), order.data_ptr<int64_t>(), d.data_ptr<float>(),
      grad.data_ptr<float>(), tokens, cols);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

}  // namespace sx::model::kernels
