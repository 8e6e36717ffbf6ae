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

/// Scratch for reading `reading` (any Memory with a size() in bytes): the readers'
/// indexes take about 64 bytes per entry (or per node page) at most and entries take at
/// least 80 bytes of memory, so twice the memory being read (plus slack) always
/// suffices. Pages are 2^PageShift bytes, the handover's: a reader's scratch tables
/// are sized in its pages, so the slack is counted in them: 16384 (64 MiB at 4 KiB).
template <unsigned PageShift = 12>
class scratch_pages {
 public:
  using source_type = bump_page_source<flat_memory, PageShift>;
  static constexpr u64 base = u64{1} << 46;  // far from any modelled RAM
  static constexpr u64 slack = u64{16384} << PageShift;

  template <Memory M>
  explicit scratch_pages(const M& reading)
      : pm_(std::make_unique<physical_memory>(physical_memory::create(base, 2 * reading.size() + slack))),
        pages_(pm_->memory(), pm_->base(), pm_->base() + pm_->size()) {}

  source_type& pages() { return pages_; }

 private:
  std::unique_ptr<physical_memory> pm_;
  source_type pages_;
};

}  // namespace kho::model
