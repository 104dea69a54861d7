// `bench checkpoint`: how long an XLM-R-base-sized checkpoint takes to write and read back, and
// what its checksum costs with XXH3 (today) against the first release's byte-wise FNV-1a.
#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdio>

#include "app/commands.h"
#include "core/checksum.h"
#include "core/files.h"
#include "core/hash.h"
#include "train/checkpoint.h"

namespace sx::app {
namespace {

template <class F>
double seconds(F&& f) {
  const auto start = std::chrono::steady_clock::now();
  f();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// `params` float32 parameters in 768 x 768 matrices (and a remainder), with Adam's moments.
train::Checkpoint synthetic_checkpoint(int64_t params) {
  train::Checkpoint c;
  const int64_t block = 768 * 768;
  int64_t left = params;
  for (int64_t i = 0; left > 0; ++i) {
    const int64_t n = std::min(block, left);
    c.params["encoder.block." + std::to_string(i) + ".weight"] = torch::rand({n});
    left -= n;
  }
  c.adam_m = torch::rand({params});
  c.adam_v = torch::rand({params});
  for (const auto& item : c.params) c.moment_layout.push_back(item.first);  // as training writes
  c.state.config_hash = "bench";
  return c;
}

std::string hash_sink;

template <class Hash>
double hash_seconds(const train::Checkpoint& c) {
  return seconds([&] {
    Hash h;
    for (const auto& item : c.params) h.update(item.second.data_ptr(), item.second.nbytes());
    h.update(c.adam_m.data_ptr(), c.adam_m.nbytes());
    h.update(c.adam_v.data_ptr(), c.adam_v.nbytes());
    hash_sink = h.hex();  // a use of the result, so the hashing cannot be optimised away
  });
}

}  // namespace

int cmd_bench_checkpoint(const std::string& dir, long long params) {
  files::create_directories(dir);
  const std::string path = files::join(dir, "bench-checkpoint.h5");
  train::Checkpoint c = synthetic_checkpoint(params);
  const double gib = 3.0 * static_cast<double>(params) * 4 / (1 << 30);
  const double write = seconds([&] { train::write_checkpoint(path, c); });
  const double read = seconds([&] { train::read_checkpoint(path); });
  const double xxh3 = hash_seconds<Xxh3>(c);
  const double fnv = hash_seconds<Fnv1a>(c);
  files::remove_all(path);
  std::printf("checkpoint of %lld parameters + Adam moments: %.2f GiB\n", params, gib);
  std::printf("| measure | seconds | GiB/s |\n| --- | --- | --- |\n");
  std::printf("| write (HDF5, XXH3 checksum, fsync, rename) | %.2f | %.2f |\n", write, gib / write);
  std::printf("| read (checksum verified) | %.2f | %.2f |\n", read, gib / read);
  std::printf("| XXH3-128 checksum alone | %.2f | %.2f |\n", xxh3, gib / xxh3);
  std::printf("| FNV-1a checksum alone (first release) | %.2f | %.2f |\n", fnv, gib / fnv);
  std::printf("write with FNV-1a, as before: about %.2f s\n", write - xxh3 + fnv);
  return 0;
}

}  // namespace sx::app
