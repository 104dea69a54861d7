#include "train/train_state.h"

#include <type_traits>
#include <vector>

#include "dist/mpi_env.h"

namespace sx::train {

void broadcast_state(TrainState& state, int root) {
  std::vector<int64_t> ints;
  std::vector<double> doubles;
  for_each_field(state, [&](const char*, const auto& value, int) {
    using T = std::decay_t<decltype(value)>;
    if constexpr (std::is_same_v<T, int64_t>) ints.push_back(value);
    if constexpr (std::is_same_v<T, double>) doubles.push_back(value);
  });
  dist::broadcast(ints, root);
  dist::broadcast(doubles, root);
  size_t next_int = 0, next_double = 0;
  for_each_field(state, [&](const char*, auto& value, int) {
    using T = std::decay_t<decltype(value)>;
    if constexpr (std::is_same_v<T, int64_t>) value = ints.at(next_int++);
    if constexpr (std::is_same_v<T, double>) value = doubles.at(next_double++);
    if constexpr (std::is_same_v<T, std::string>) dist::broadcast(value, root);
  });
}

}  // namespace sx::train
