// Texts to embeddings: tokenized into the packed text batch (data/text_batch.h) and encoded by
// the model's one encode path (SiameseEncoderImpl::forward). What export, the epoch score,
// embed and predict use; knows data and model, nothing of MPI or training.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "data/text_batch.h"
#include "data/tokenizer.h"
#include "model/xlmr.h"

namespace sx::encode {

// Embeddings of texts [begin, end) of `texts` [n x hidden], row-major, in eval mode without
// gradients (the model's training mode comes back after), `batch_size` texts per forward pass.
// `progress`: a progress bar or lines named `label`.
std::vector<float> encode_texts(model::SiameseEncoder& model, const data::XlmrTokenizer& tokenizer,
                                const std::vector<std::string_view>& texts, size_t begin,
                                size_t end, size_t batch_size, bool progress,
                                const std::string& label);
std::vector<float> encode_texts(model::SiameseEncoder& model, const data::XlmrTokenizer& tokenizer,
                                const std::vector<std::string>& texts, size_t begin, size_t end,
                                size_t batch_size, bool progress, const std::string& label);

// `batch` on `device` as the encoder's packed input (ids widened to int64 there).
model::PackedIds packed_ids(const data::TextBatch& batch, const torch::Device& device);

}  // namespace sx::encode
