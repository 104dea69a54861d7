#include "data/corpus.h"

#include <algorithm>
#include <cstring>

namespace sx::data {

std::string_view TextArena::copy(std::string_view text) {
  constexpr size_t kBlock = 1u << 20;
  if (capacity_ - used_ < text.size()) {
    capacity_ = std::max(kBlock, text.size());
    blocks_.emplace_back(new char[capacity_]);
    used_ = 0;
  }
  char* out = blocks_.back().get() + used_;
  if (!text.empty()) std::memcpy(out, text.data(), text.size());
  used_ += text.size();
  bytes_ += text.size();
  return {out, text.size()};
}

void TextColumn::push_back(std::string_view text) {
  if (!own_) {
    own_ = std::make_shared<TextArena>();
    storage_.push_back(own_);
  }
  views_.push_back(own_->copy(text));
}

void TextColumn::keep(std::shared_ptr<const void> storage) {
  if (std::find(storage_.begin(), storage_.end(), storage) == storage_.end())
    storage_.push_back(std::move(storage));
}

void TextColumn::keep_all_of(const TextColumn& other) {
  // Called once per row by subset builders: skip the merge when nothing is new.
  const auto& theirs = other.storage_;
  if (kept_memo_.size() == theirs.size() &&
      std::equal(theirs.begin(), theirs.end(), kept_memo_.begin(),
                 [](const std::shared_ptr<const void>& s, const void* p) { return s.get() == p; }))
    return;
  kept_memo_.clear();
  for (const auto& s : theirs) {
    keep(s);
    kept_memo_.push_back(s.get());
  }
}

void TextColumn::push_back_from(const TextColumn& other, size_t i) {
  keep_all_of(other);
  views_.push_back(other.views_[i]);
}

void LabeledCorpus::reserve(size_t n) {
  texts.reserve(n);
  labels.reserve(n);
  langs.reserve(n);
  rows.reserve(n);
}

void LabeledCorpus::push_back_from(const LabeledCorpus& other, size_t i) {
  texts.push_back_from(other.texts, i);
  labels.push_back(other.labels[i]);
  langs.push_back(other.langs[i]);
  rows.push_back(other.rows[i]);
}

std::vector<std::string> LabeledCorpus::languages() const {
  std::vector<std::string> out;
  for (const auto& l : langs)
    if (std::find(out.begin(), out.end(), l) == out.end()) out.push_back(l);
  return out;
}

}  // namespace sx::data
