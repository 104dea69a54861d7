// A column of a corpus or a pair sequence: an array that either owns its values (a vector one
// can append to, as loading builds it) or views values that live elsewhere, kept alive by the
// column (memory the ranks of a node share, node_memory.h). Both read the same way.
#pragma once

#include <algorithm>
#include <memory>
#include <stdexcept>
#include <vector>

namespace sx::data {

template <class T>
class Column {
 public:
  using value_type = T;
  using const_iterator = const T*;
  using iterator = const T*;

  Column() = default;
  Column(std::vector<T> values) : owned_(std::move(values)) {}  // NOLINT: a vector is a column
  // `size` values at `data`, alive as long as `keep` (or a copy of it) lives.
  static Column view(const T* data, size_t size, std::shared_ptr<const void> keep) {
    Column c;
    c.view_ = data;
    c.view_size_ = size;
    c.keep_ = keep ? std::move(keep) : std::make_shared<int>(0);
    return c;
  }

  bool viewed() const { return keep_ != nullptr; }
  size_t size() const { return viewed() ? view_size_ : owned_.size(); }
  bool empty() const { return size() == 0; }
  const T* data() const { return viewed() ? view_ : owned_.data(); }
  const T& operator[](size_t i) const { return data()[i]; }
  const T& back() const { return data()[size() - 1]; }
  const T* begin() const { return data(); }
  const T* end() const { return data() + size(); }
  std::vector<T> to_vector() const { return std::vector<T>(begin(), end()); }

  // Appending: an owned column only.
  void push_back(const T& value) { owned().push_back(value); }
  void reserve(size_t n) {
    if (!viewed()) owned_.reserve(n);
  }

 private:
  std::vector<T>& owned() {
    if (viewed()) throw std::logic_error("a column viewing shared memory is read-only");
    return owned_;
  }

  std::vector<T> owned_;
  const T* view_ = nullptr;
  size_t view_size_ = 0;
  std::shared_ptr<const void> keep_;  // set for a view
};

template <class T>
bool operator==(const Column<T>& a, const Column<T>& b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end());
}
template <class T>
bool operator!=(const Column<T>& a, const Column<T>& b) {
  return !(a == b);
}
template <class T>
bool operator==(const Column<T>& a, const std::vector<T>& b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end());
}

template <class T>
bool operator==(const std::vector<T>& a, const Column<T>& b) {
  return b == a;
}

}  // namespace sx::data
