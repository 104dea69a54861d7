// The notebook's Siamese head: Euclidean distance between the two text embeddings and the
// Distance-Based Logistic (DBL) loss p = (1 + exp(-m)) / (1 + exp(d - m)), binary
// cross-entropy against the label (1 = same class), mean over the batch.
#pragma once

#include <torch/torch.h>

#include "model/xlmr.h"

namespace sx::model {

// The Siamese forward, written once for training, CUDA graphs and validation: the embeddings of
// `packed` (2B sequences, the pairs' left texts first, then their right texts; sequences after
// the first 2B, such as a graph's fillers, are ignored), the distances of the B pairs and their
// mean DBL loss against `labels` [B] (1 = same class).
torch::Tensor pair_loss(SiameseEncoderImpl& model, const PackedIds& packed,
                        const torch::Tensor& labels, double margin);

// sqrt(max(sum((a - b)^2), 1e-7)) per row.
torch::Tensor pair_distance(const torch::Tensor& a, const torch::Tensor& b);

// DBL loss in log space. Equals Keras' binary cross-entropy (p clipped to [1e-7, 1 - 1e-7],
// 1e-7 added inside both logs) wherever that is finite, and stays finite, with finite
// gradients, for distances where the Keras form overflows (exp(d - m) = inf in float32 gives
// NaN gradients there).
torch::Tensor dbl_loss(const torch::Tensor& distance, const torch::Tensor& labels, double margin);

// The notebook's formula written as Keras computes it (reference for tests).
torch::Tensor dbl_loss_keras(const torch::Tensor& distance, const torch::Tensor& labels,
                             double margin);

}  // namespace sx::model
