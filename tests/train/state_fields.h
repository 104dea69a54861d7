// Training states whose every field (train/train_state.h) holds a value no other field and no
// other salt gives, for round trips that must carry each field: integers past 2^53 (so a trip
// through a double shows), doubles with fractions, texts with spaces and a newline.
#pragma once

#include <string>
#include <type_traits>
#include <vector>

#include "train/train_state.h"

namespace sx::test {

inline train::TrainState distinct_state(int salt) {
  train::TrainState s;
  int64_t i = 0;
  train::for_each_field(s, [&](const char* name, auto& value, int) {
    using T = std::decay_t<decltype(value)>;
    ++i;
    if constexpr (std::is_same_v<T, int64_t>) value = (int64_t{1} << 60) + 1000 * salt + i;
    if constexpr (std::is_same_v<T, double>) value = 1000.0 * salt + i + 0.25;
    if constexpr (std::is_same_v<T, std::string>)
      value = std::string(name) + " of " + std::to_string(salt) + "\nsecond line";
  });
  return s;
}

// "name=value" for every field, to compare states field by field with readable failures.
inline std::vector<std::string> field_texts(const train::TrainState& s) {
  std::vector<std::string> out;
  train::for_each_field(s, [&](const char* name, const auto& value, int) {
    using T = std::decay_t<decltype(value)>;
    if constexpr (std::is_same_v<T, std::string>)
      out.push_back(std::string(name) + "=" + value);
    else
      out.push_back(std::string(name) + "=" + std::to_string(value));
  });
  return out;
}

}  // namespace sx::test
