// How an exception that ends the program is said: a user's mistake and out of memory in one
// line with exit 2, anything else an internal error without the stack trace libtorch appends.
#include <gtest/gtest.h>

#include <new>
#include <stdexcept>

#include "core/error.h"

namespace sx {
namespace {

TEST(Failure, AUserErrorIsItsMessage) {
  const Failure f = failure_of(UserError("data.train_csv: x.csv does not exist"));
  EXPECT_EQ(f.code, kExitUserError);
  EXPECT_EQ(f.text, "data.train_csv: x.csv does not exist");
}

TEST(Failure, AnInternalErrorLosesLibtorchsStackTraceOnly) {
  // libtorch 1.x: the frames follow the message; 2.x: "Exception raised from ..." first.
  const Failure one = failure_of(std::runtime_error(
      "shape '[2, 3]' is invalid for input of size 5\nframe #0: c10::Error::Error(...) + 0x9c "
      "(0x7f in libc10.so)\nframe #1: at::native::view(...)\n"));
  EXPECT_EQ(one.code, kExitInternal);
  EXPECT_EQ(one.text, "shape '[2, 3]' is invalid for input of size 5");
  const Failure two = failure_of(std::runtime_error(
      "Expected all tensors to be on the same device\nException raised from check at "
      "aten/src/ATen/x.cpp:12 (most recent call first):\nframe #0: ..."));
  EXPECT_EQ(two.text, "Expected all tensors to be on the same device");
  const Failure lines = failure_of(std::runtime_error("first line\nsecond line"));
  EXPECT_EQ(lines.text, "first line\nsecond line");  // no trace: the whole text
}

TEST(Failure, OutOfMemoryIsOneLineNamingTheKeysThatSizeTheWork) {
  const std::string keys =
      ": the work is larger than this machine holds; lower train.pairs_per_rank "
      "(train.accumulation_steps keeps the global batch), export.batch_size or tokenizer.max_len";
  const Failure cpu = failure_of(std::runtime_error(
      "[enforce fail at alloc_cpu.cpp:75] err == 0. DefaultCPUAllocator: can't allocate memory: "
      "you tried to allocate 967852032 bytes. Error code 12 (Cannot allocate memory)\nframe "
      "#0: c10::ThrowEnforceNotMet(...)"));
  EXPECT_EQ(cpu.code, kExitUserError);
  EXPECT_EQ(cpu.text,
            "out of memory (DefaultCPUAllocator: can't allocate memory: you tried to allocate "
            "967852032 bytes. Error code 12 (Cannot allocate memory))" +
                keys);
  const Failure cuda = failure_of(std::runtime_error(
      "CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 79.11 GiB "
      "of which 1.06 GiB is free. Including non-PyTorch memory, this process has 78.04 GiB "
      "memory in use. If reserved but unallocated memory is large try setting "
      "PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True\nException raised from malloc at "
      "c10/cuda/CUDACachingAllocator.cpp:1 (most recent call first):"));
  EXPECT_EQ(cuda.code, kExitUserError);
  EXPECT_EQ(cuda.text, "out of memory (CUDA out of memory. Tried to allocate 2.00 GiB.)" + keys);
  const Failure plain = failure_of(std::bad_alloc());
  EXPECT_EQ(plain.code, kExitUserError);
  EXPECT_EQ(plain.text, "out of memory" + keys);
  // A negative size is a bug, MPI's "out of memory" a locked-memory limit, not the batch.
  EXPECT_EQ(failure_of(std::bad_array_new_length()).code, kExitInternal);
  EXPECT_EQ(
      failure_of(std::runtime_error("MPI_Win_allocate_shared: MPI_ERR_NO_MEM: out of memory")).code,
      kExitInternal);
  // Words about memory in a later line are no verdict.
  EXPECT_EQ(failure_of(std::runtime_error("bad shape\nframe #0: out of memory handler")).code,
            kExitInternal);
}

}  // namespace
}  // namespace sx
