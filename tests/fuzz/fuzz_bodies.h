// What the fuzzers run on one input; the regression corpus (tests/fuzz/corpus) runs the
// same bodies as ordinary tests, so every input that once crashed stays covered.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "data/csv_reader.h"
#include "data/text.h"

namespace sx::fuzz {

inline void csv_one_input(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  data::CsvReader reader(data::CsvReader::InMemory{}, input, data::CsvLimits{4096, 64});
  data::CsvRecord record;
  size_t records = 0;
  while (reader.next(record) && records++ < 100000) {
    for (auto& field : record.fields) {
      if (field.size() > 4096) __builtin_trap();  // the bound must hold
      data::sanitize_utf8(field);
      for (auto word : data::wordpunct_tokenize(field))
        if (word.empty() || word.data() < field.data() ||
            word.data() + word.size() > field.data() + field.size())
          __builtin_trap();
    }
  }
}

}  // namespace sx::fuzz
