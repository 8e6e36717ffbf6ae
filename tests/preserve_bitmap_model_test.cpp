// Radix preservation bitmaps, model-based: random preserve/unpreserve/query/walk
// sequences against a std::set<(pa, order)> oracle, with reattach at a new address
// and writing continued on the adopted tree; page shifts 12, 14 and 16.
#include <kho/preserve_bitmap.hpp>

#include "rc_commands.hpp"
#include "test_arena.hpp"

#include <rapidcheck.h>
#include <rapidcheck/gtest.h>
#include <rapidcheck/state.h>

#include <algorithm>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <utility>
#include <vector>

namespace kho::test::preserve_bitmap_model_test {
namespace {

using block = std::pair<u64, unsigned>;  // (pa, order)
using ranges = std::vector<std::pair<u64, u64>>;

struct radix_model {
  std::set<block> blocks;
};

template <unsigned S>
struct radix_sut {
  using source = typename arena<S>::source_type;
  using tree_type = preserve_bitmap<source, S>;
  arena<S> mem{u64{64} << 20};
  std::optional<tree_type> tree;
  std::vector<u64> scratch = std::vector<u64>(4096);

  radix_sut() {
    auto t = tree_type::create(mem.pages());
    RC_ASSERT(t.has_value());
    tree.emplace(std::move(*t));
  }
  auto attach(const flat_memory& m) { return attach_tree<S>(m, tree->root(), scratch); }
};

/// Sorted, coalesced ranges covering every block and every extra page.
template <unsigned S>
ranges coalesce(const std::set<block>& blocks, std::span<const u64> pages) {
  std::vector<std::pair<u64, u64>> spans;
  for (auto [pa, o] : blocks) spans.emplace_back(pa, pa + page_geometry<S>::block_bytes(order{o}));
  for (u64 p : pages) spans.emplace_back(p, p + page_geometry<S>::size);
  std::sort(spans.begin(), spans.end());
  ranges out;
  for (auto [s, e] : spans) {
    if (!out.empty() && s <= out.back().first + out.back().second)
      out.back().second = std::max(out.back().first + out.back().second, e) - out.back().first;
    else
      out.emplace_back(s, e - s);
  }
  return out;
}

template <class Tree>
ranges walk(const Tree& t) {
  ranges out;
  t.for_each_range([&](phys_addr s, u64 n) { out.emplace_back(s.value, n); });
  return out;
}

template <unsigned S>
using command = rc::state::Command<radix_model, radix_sut<S>>;

// Blocks fall in [0, 2 GiB); the tree's own pages are in the arena at 4 GiB.
template <unsigned S>
block random_block() {
  const unsigned o = *rc::gen::element(0u, 1u, 2u, 9u, 10u, 13u);
  const u64 span = u64{1} << (S + o);
  const u64 slots = std::max<u64>(1, (u64{1} << 31) / span);
  const u64 idx = *rc::gen::oneOf(rc::gen::inRange<u64>(0, std::min<u64>(slots, 48)),
                                  rc::gen::inRange<u64>(0, slots));
  return {idx * span, o};
}

template <unsigned S>
struct preserve_cmd : command<S> {
  block b = random_block<S>();
  void apply(radix_model& m) const override { m.blocks.insert(b); }
  void run(const radix_model& m, radix_sut<S>& s) const override {
    const status st = s.tree->preserve(phys_addr{b.first}, order{b.second});
    RC_ASSERT(st.code() == (m.blocks.count(b) ? errc::already_exists : errc::ok));
    RC_ASSERT(s.tree->contains(phys_addr{b.first}, order{b.second}));
  }
  void show(std::ostream& os) const override { os << "preserve " << std::hex << b.first << " o" << std::dec << b.second; }
};

template <unsigned S>
struct unpreserve_cmd : command<S> {
  block b = random_block<S>();
  void apply(radix_model& m) const override { m.blocks.erase(b); }
  void run(const radix_model& m, radix_sut<S>& s) const override {
    const status st = s.tree->unpreserve(phys_addr{b.first}, order{b.second});
    RC_ASSERT(st.code() == (m.blocks.count(b) ? errc::ok : errc::not_found));
    RC_ASSERT(!s.tree->contains(phys_addr{b.first}, order{b.second}));
  }
  void show(std::ostream& os) const override { os << "unpreserve " << std::hex << b.first << " o" << std::dec << b.second; }
};

template <unsigned S>
struct query_cmd : command<S> {
  u64 pa = *rc::gen::oneOf(rc::gen::inRange<u64>(0, u64{1} << 31),
                           rc::gen::map(rc::gen::inRange<u64>(0, 64), [](u64 i) { return i << S; }));
  void run(const radix_model& m, radix_sut<S>& s) const override {
    bool covered = false;
    for (auto [start, o] : m.blocks)
      covered |= pa >= start && pa - start < page_geometry<S>::block_bytes(order{o});
    RC_ASSERT(s.tree->is_preserved(phys_addr{pa}) == covered);
  }
  void show(std::ostream& os) const override { os << "query " << std::hex << pa; }
};

template <unsigned S>
struct walk_cmd : command<S> {
  void run(const radix_model& m, radix_sut<S>& s) const override {
    auto view = s.attach(s.mem.memory());
    RC_ASSERT(view.has_value());
    RC_ASSERT(walk(*s.tree) == coalesce<S>(m.blocks, view->nodes()));
    RC_ASSERT(walk(*view) == walk(*s.tree));
    for (unsigned o : {0u, 1u, 2u, 9u, 10u, 13u}) {
      const u64 want = static_cast<u64>(std::count_if(m.blocks.begin(), m.blocks.end(),
                                                      [o](const block& b) { return b.second == o; }));
      RC_ASSERT(s.tree->count(order{o}) == want + (o == 0 ? view->node_count() : 0));
      RC_ASSERT(view->count(order{o}) == s.tree->count(order{o}));
    }
    RC_ASSERT(view->node_count() == s.tree->node_count());
  }
  void show(std::ostream& os) const override { os << "walk"; }
};

template <unsigned S>
struct reattach_cmd : command<S> {
  void run(const radix_model& m, radix_sut<S>& s) const override {
    const ranges before = walk(*s.tree);
    s.mem.remap();
    auto view = s.attach(s.mem.memory());
    RC_ASSERT(view.has_value());
    RC_ASSERT(walk(*view) == before);
    for (auto [pa, o] : m.blocks) RC_ASSERT(view->contains(phys_addr{pa}, order{o}));
    // The next kernel continues writing the same tree in place.
    s.tree.emplace(radix_sut<S>::tree_type::adopt(*view, s.mem.pages()));
    RC_ASSERT(walk(*s.tree) == before);
  }
  void show(std::ostream& os) const override { os << "reattach+adopt"; }
};

template <unsigned S>
void check_radix_model() {
  radix_sut<S> s;
  rc::state::check(radix_model{}, s,
                   one_of_commands<preserve_cmd<S>, preserve_cmd<S>, preserve_cmd<S>,
                                                     unpreserve_cmd<S>, unpreserve_cmd<S>, query_cmd<S>,
                                                     walk_cmd<S>, reattach_cmd<S>>());
}

RC_GTEST_PROP(PreserveBitmapModel, MatchesSetOracle4K, ()) { check_radix_model<12>(); }
RC_GTEST_PROP(PreserveBitmapModel, MatchesSetOracle16K, ()) { check_radix_model<14>(); }
RC_GTEST_PROP(PreserveBitmapModel, MatchesSetOracle64K, ()) { check_radix_model<16>(); }

}  // namespace
}  // namespace kho::test::preserve_bitmap_model_test
