// Fuzz target behind the checksums: a valid radix tree named in a handover root with
// its deep checksum, damaged page by page, then re-sealed (deep checksum and handover
// checksums recomputed). Validation must refuse it, giving its scratch back, or accept
// a tree that every walk, both restores, the hole finder and claim_pages read safely.
#include <kho/handover.hpp>
#include <kho/hole_finder.hpp>
#include <kho/page_owners.hpp>
#include <kho/preserve_bitmap.hpp>
#include <kho/restore.hpp>

#include "fuzz_pages.hpp"
#include "reseal.hpp"

#include <vector>

namespace {

using namespace kho;
using machine = fuzz::machine<u64{1} << 20>;  // 256 pages: tree, handover root and slack
using source = bump_page_source<flat_memory>;

kho::fuzz::pages<4 << 20> scratch_memory;
kho::fuzz::pages<4 << 20> boot_memory;

// What a forger computes: XXH64 of every node page in pre-order, as
// radix_walker::deep_checksum does, but bounded, since a damaged tree may be a cycle or
// a DAG (those the validator refuses before it ever compares the sum).
void forge_hash(const flat_memory& mem, XXH64_state_t& st, phys_addr pa, unsigned level, u64& budget) {
  const u64* n = static_cast<const u64*>(mem.to_virt(pa, 4096));
  if (n == nullptr || (pa.value & 4095) != 0 || budget == 0) return;
  --budget;
  XXH64_update(&st, n, 4096);
  if (level == 0) return;
  for (u64 i = 0; i < 512; ++i)
    if (n[i] != 0) forge_hash(mem, st, phys_addr{n[i]}, level - 1, budget);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  machine m;
  fuzz::cursor in(data, size);
  const flat_memory mem = m.plain();
  source pages(mem, mem.base(), mem.end());
  // The valid tree: up to 24 blocks of orders 0..19, anywhere below 2^44.
  const bool own = (in.take(1) & 1) != 0;
  auto tree = preserve_bitmap<source>::create(pages, own);
  if (!tree) return 0;
  const unsigned blocks = 1 + static_cast<unsigned>(in.take(1) % 24);
  for (unsigned i = 0; i < blocks; ++i) {
    const unsigned o = static_cast<unsigned>(in.take(1) % 20);
    (void)tree->preserve(phys_addr{(in.take(4) << (12 + o)) & ((u64{1} << 44) - 1)}, order{o});
  }
  auto root = handover_writer<source>::create(pages, 1);
  if (!root || !root->add("preserved-memory-map", radix_compatible, tree->root(), 4096)) return 0;

  // Its pages, from a validation of the intact tree.
  flat_memory smem(phys_addr{u64{1} << 46}, scratch_memory.size, scratch_memory);
  source scratch(smem, smem.base(), smem.end());
  std::vector<u64> nodes(256);
  std::vector<phys_addr> node_pages;
  {
    auto intact = attach_preserve_bitmap(mem, tree->root(), scratch, nodes);
    if (!intact) __builtin_trap();  // the writer's tree is valid
    for (u64 n : intact->nodes()) node_pages.push_back(phys_addr{n});
  }
  while (!in.done()) fuzz::damage(in, node_pages, m);

  // Re-seal as a forger: the deep checksum, then every handover checksum.
  XXH64_state_t st;
  XXH64_reset(&st, 0);
  u64 budget = 4096;  // more than any valid tree of 256 pages visits
  forge_hash(mem, st, tree->root(), radix_geometry<12>::depth - 1, budget);
  if (!root->set_deep_checksum("preserved-memory-map", XXH64_digest(&st)) || !root->seal()) __builtin_trap();

  const fuzz::guarded_memory g = m.guarded();
  auto h = attach_handover_root(g, root->root());
  if (!h) __builtin_trap();  // re-sealed: the root itself is fine
  auto e = h->find_compatible(radix_compatible);
  if (!e) __builtin_trap();
  auto view = attach_preserve_bitmap(g, phys_addr{(*e)->phys.get()}, scratch, nodes);
  if (scratch.pages_in_use() != 0) __builtin_trap();  // scratch given back either way
  if (!view) return 0;
  m.arm();
  if (view->deep_checksum() != (*e)->deep_checksum.get()) __builtin_trap();
  u64 ranges = 0, last_end = 0;
  view->for_each_range([&](phys_addr s, u64 n) {
    if (ranges != 0 && s.value <= last_end) __builtin_trap();  // ascending and coalesced
    last_end = s.value + n;
    ++ranges;
  });
  u64 count = 0;
  view->for_each_block([&](phys_addr, order) { return ++count < (1u << 12); });
  if (count < (1u << 12)) {  // naive restore is quadratic: keep inputs fast
    flat_memory boot(phys_addr{u64{1} << 45}, boot_memory.size, boot_memory);
    source boot_pages(boot, boot.base(), boot.end());
    auto naive = memblock_model<source>::create(boot_pages);
    auto linear = memblock_model<source>::create(boot_pages);
    if (naive && linear && restore_naive(*view, *naive) && restore_linear(*view, *linear)) {
      if (naive->size() != linear->size()) __builtin_trap();
      for (u64 i = 0; i < naive->size(); ++i)
        if ((*naive)[i].base != (*linear)[i].base || (*naive)[i].size != (*linear)[i].size) __builtin_trap();
    }
  }
  const phys_range ram[] = {{phys_addr{0}, phys_addr{u64{1} << 44}}};
  if (auto f = make_hole_finder(*view, ram)) (void)f->largest_hole();
  {
    page_owners<source> owners(scratch);
    if (!view->claim_pages(owners)) __builtin_trap();  // one tree: each page once
    if (owners.size() != view->node_count()) __builtin_trap();
  }
  if (scratch.pages_in_use() != 0) __builtin_trap();
  return 0;
}
