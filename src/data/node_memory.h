// Memory that the processes of one node share: big read-only arrays of the set-up (token ids)
// built once per node instead of once per rank. The data layer only sees this interface; the
// trainer hands it an MPI shared-memory window (dist/node_memory.h) when several ranks share
// a node, or PrivateMemory (plain heap, this process alone) otherwise.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>

namespace sx::data {

class NodeMemory {
 public:
  virtual ~NodeMemory() = default;
  // Whether this process builds what the node shares (the node's first rank); the others map
  // what it wrote.
  virtual bool builder() const = 0;
  // Every process of the node calls it, in the same order. The builder passes the size in
  // bytes and `fill` writes them; the others' `bytes` and `fill` are ignored. Returns, on
  // every process, the filled bytes (16-byte aligned), readable once it returns and alive as
  // long as the returned pointer or this object lives.
  virtual std::shared_ptr<const void> publish(size_t bytes,
                                              const std::function<void(void* out)>& fill) = 0;
};

// One process: the builder itself, memory from the heap.
class PrivateMemory : public NodeMemory {
 public:
  bool builder() const override { return true; }
  std::shared_ptr<const void> publish(size_t bytes,
                                      const std::function<void(void* out)>& fill) override;
};

}  // namespace sx::data
