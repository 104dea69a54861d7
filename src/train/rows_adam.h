// train.embedding_adam_overlap (issue #23): the word embeddings' part of Keras Adam overlapping
// the next step. Keras Adam moves every row every step (the moments of a row no batch touched
// still decay), so the embeddings' part is the optimizer's largest pass: 192M of XLM-R base's 278M
// values. Only the rows the next step looks up must be updated before it starts; the rest may be
// updated while it runs, as long as nothing reads or writes them in the meantime.
//
//   update(), in place of KerasAdam::step, at the end of step N:
//     compute stream  every value outside the embeddings, then the embedding rows step N+1 looks
//                     up (known from the prefetched batch)
//     side stream     the other rows, after the compute stream's part (CUDA; on the CPU this part
//                     is deferred to join(), so that the tests see the worst order a GPU allows)
//   join(): what follows waits for the side stream's part.
//
// The update consumes the gradient: each row step N wrote (TouchedRows' record) is set to zero
// right after its update, by whichever part updates it, so step N+1 zeroes nothing of the
// embeddings and its backward may add into the rows it looks up while the other rows are updated.
// Where it joins: before step N+1's forward when its backward writes the embeddings' whole
// gradient (autograd's dense gradient, any reducer), or, with one replica whose embedding
// gradient goes straight into the rows it looks up (model.fused_kernels), only before step N+1's
// all-reduce and optimizer: the side stream then overlaps the whole forward and backward (or a
// CUDA graph's replay). A step whose lookups are not all among the rows updated first joins
// before it starts, so a wrong prediction costs the overlap, never a result.
//
// Results: on the CPU bitwise those of KerasAdam::step (every row's update is the same
// expression); on CUDA the rows' kernel rounds as the CPU loop does, where KerasAdam::step uses
// torch's fused kernel: within float rounding, not bitwise, and the same whichever rows go first.
// Anything else that reads the parameters, the moments or the gradients (validation, checkpoints,
// export, a reload) must join() first (train/loop.cpp does).
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "model/keras_adam.h"
#include "train/flat_params.h"
#include "train/touched_rows.h"

namespace sx::train {

class RowsAdamOverlap {
 public:
  // `rows`: the train.touched_rows_only record of the embeddings' entry (it must be on: the
  // dense gradients are zeroed apart from the embeddings); `late_join`: see above.
  RowsAdamOverlap(FlatParameters& flat, TouchedRows& rows, model::KerasAdam& adam, bool late_join);
  ~RowsAdamOverlap();
  RowsAdamOverlap(const RowsAdamOverlap&) = delete;
  RowsAdamOverlap& operator=(const RowsAdamOverlap&) = delete;

  // The step's update with learning rate `lr` (found_inf as KerasAdam::step). `next`: the token
  // ids the next step looks up (a graph's pad row included), or null where they are not known
  // yet: every row is then updated on the compute stream.
  void update(const torch::Tensor& found_inf, double lr, const TokenIdLists* next);
  // Before a step that looks up `ids`: joins unless the join may wait (late_join) and every id's
  // row was updated first.
  void before_step(const TokenIdLists& ids);
  // What follows (on the current stream) sees the whole update. Idempotent.
  void join();
  bool pending() const { return static_cast<bool>(deferred_); }

 private:
  torch::Tensor consumed_rows() const;  // uint8 [rows]: the rows holding the step's gradient
  torch::Tensor first_rows(const TokenIdLists* next);  // uint8 [rows]: the ones updated first
  void defer(const torch::Tensor& found_inf, double alpha, const torch::Tensor& first,
             const torch::Tensor& consume);

  FlatParameters& flat_;
  TouchedRows& rows_;
  model::KerasAdam& adam_;
  model::RowBlock block_;
  bool late_join_ = false;
  std::vector<uint64_t> first_bits_;  // host bitmap of the rows updated first (empty: all)
  // The deferred part: on CUDA a wait for the side stream's event; on the CPU the update itself.
  std::function<void()> deferred_;
  struct Side;
  std::unique_ptr<Side> side_;  // CUDA: the side stream and its event
};

}  // namespace sx::train
