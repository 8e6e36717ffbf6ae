// kho/model/scratch_pages.hpp: scratch pages for readers, in a sparse memfd (hosted only).
//
// Validation keeps its bookkeeping (visited sets, duplicate indexes) in pages a
// PageSource lends, never in the memory being read. In the model those pages come
// from a sparse memfd standing for a physical range of its own, far from any modelled
// RAM: only what a reader touches is ever backed, so the size below is a ceiling, not
// a cost.
#pragma once

#include <kho/memory.hpp>
#include <kho/model/physical_memory.hpp>

#include <memory>

namespace kho::model {

/// Scratch in pages of 2^PageShift bytes (the reader's page size) for reading `reading`: the readers' indexes take about 64 bytes per entry
/// (or per node page) at most and entries take at least 80 bytes of memory, so twice
/// the memory being read (plus slack) always suffices.
template <unsigned PageShift = 12>
class scratch_pages {
 public:
  using source_type = bump_page_source<flat_memory, PageShift>;
  static constexpr u64 base = u64{1} << 46;  // far from any modelled RAM

  explicit scratch_pages(const flat_memory& reading)
      : pm_(std::make_unique<physical_memory>(
            physical_memory::create(base, 2 * reading.size() + (u64{64} << 20)))),
        pages_(pm_->memory(), pm_->base(), pm_->base() + pm_->size()) {}

  source_type& pages() { return pages_; }

 private:
  std::unique_ptr<physical_memory> pm_;
  source_type pages_;
};

}  // namespace kho::model
