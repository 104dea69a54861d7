#include "encode/encode_texts.h"

#include <algorithm>

#include "core/progress.h"
#include "data/text_batch.h"

namespace sx::encode {

model::PackedIds packed_ids(const data::TextBatch& batch, const torch::Device& device) {
  torch::Tensor ids =
      torch::from_blob(const_cast<int32_t*>(batch.ids.data()), {batch.tokens()}, torch::kInt)
          .to(torch::kLong);
  return model::make_packed(ids, batch.offsets, device);
}

std::vector<float> encode_texts(model::SiameseEncoder& model, const data::XlmrTokenizer& tokenizer,
                                const std::vector<std::string_view>& texts, size_t begin,
                                size_t end, size_t batch_size, bool progress,
                                const std::string& label) {
  torch::NoGradGuard no_grad;
  const bool was_training = model->is_training();
  model->eval();
  const auto device = model->parameters().front().device();
  const int64_t hidden = model->config().hidden_size;
  std::vector<float> out((end - begin) * static_cast<size_t>(hidden));
  Progress bar(label, end - begin, /*interval_seconds=*/0, progress);
  for (size_t start = begin; start < end; start += batch_size) {
    const size_t stop = std::min(end, start + batch_size);
    const data::TextBatch batch = data::make_text_batch(tokenizer, texts, start, stop);
    torch::Tensor e = model->forward(packed_ids(batch, device));
    e = e.to(torch::kFloat).to(torch::kCPU).contiguous();
    std::copy(e.data_ptr<float>(), e.data_ptr<float>() + e.numel(),
              out.begin() + static_cast<ptrdiff_t>((start - begin) * hidden));
    bar.advance(stop - start);
  }
  bar.finish();
  if (was_training) model->train();
  return out;
}

std::vector<float> encode_texts(model::SiameseEncoder& model, const data::XlmrTokenizer& tokenizer,
                                const std::vector<std::string>& texts, size_t begin, size_t end,
                                size_t batch_size, bool progress, const std::string& label) {
  const std::vector<std::string_view> views(texts.begin(), texts.end());
  return encode_texts(model, tokenizer, views, begin, end, batch_size, progress, label);
}

}  // namespace sx::encode
