// Block list, model-based: random push_back/erase/clear/reattach sequences against a
// std::vector oracle (erase moves the last element into the hole, as the list does).
// Reattach maps the arena at a new address, validates the chain there, checks it
// against the oracle and continues writing through an adopted writer.
#include <kho/block_list.hpp>

#include "rc_commands.hpp"
#include "test_arena.hpp"

#include <rapidcheck.h>
#include <rapidcheck/gtest.h>
#include <rapidcheck/state.h>

#include <vector>

namespace kho::test::block_list_model_test {
namespace {

// 200-byte entries: 20 a block, so short sequences cross many block boundaries.
struct wide {
  u64 key;
  u64 fill[24];
};

template <class Entry>
Entry make_entry(u64 key) {
  Entry e{};
  e.key = key;
  if constexpr (sizeof(Entry) > 8) e.fill[0] = ~key;
  return e;
}

struct narrow {
  u64 key;
  u64 fill[1];
};

template <class Entry, unsigned Shift>
struct list_sut {
  using source = typename arena<Shift>::source_type;
  arena<Shift> mem{u64{32} << 20};
  block_list<Entry, source, Shift> list{mem.pages()};
};

template <class Entry, unsigned Shift>
using command = rc::state::Command<std::vector<u64>, list_sut<Entry, Shift>>;

template <class Entry, unsigned Shift>
void check_against(const std::vector<u64>& m, list_sut<Entry, Shift>& s, const flat_memory& mem) {
  auto v = attach_block_list<Entry, Shift>(mem, s.list.head());
  RC_ASSERT(v.has_value());
  RC_ASSERT(v->size() == m.size());
  constexpr u64 cap = block_capacity<Entry, Shift>;
  RC_ASSERT(v->blocks() == (m.size() + cap - 1) / cap);
  u64 i = 0;
  for (const Entry& e : *v) {
    RC_ASSERT(e.key == m[i]);
    if constexpr (sizeof(Entry) > 8) RC_ASSERT(e.fill[0] == ~m[i]);
    ++i;
  }
}

template <class Entry, unsigned Shift>
struct push : command<Entry, Shift> {
  u64 count = *rc::gen::inRange<u64>(1, 120);
  u64 key = *rc::gen::arbitrary<u64>();
  void apply(std::vector<u64>& m) const override {
    for (u64 i = 0; i < count; ++i) m.push_back(key + i);
  }
  void run(const std::vector<u64>&, list_sut<Entry, Shift>& s) const override {
    for (u64 i = 0; i < count; ++i) RC_ASSERT(s.list.push_back(make_entry<Entry>(key + i)).has_value());
  }
  void show(std::ostream& os) const override { os << "push " << count << " from " << key; }
};

template <class Entry, unsigned Shift>
struct erase : command<Entry, Shift> {
  u64 pick = *rc::gen::arbitrary<u64>();
  u64 count = *rc::gen::inRange<u64>(1, 60);
  void apply(std::vector<u64>& m) const override {
    for (u64 k = 0; k < count && !m.empty(); ++k) {
      const u64 i = (pick + k * 7) % m.size();
      m[i] = m.back();
      m.pop_back();
    }
  }
  void run(const std::vector<u64>& m0, list_sut<Entry, Shift>& s) const override {
    u64 size = m0.size();
    for (u64 k = 0; k < count && size > 0; ++k, --size) {
      const u64 i = (pick + k * 7) % size;
      auto it = s.list.begin();
      for (u64 j = 0; j < i; ++j) ++it;
      auto moved = s.list.erase(it.phys());
      RC_ASSERT(moved.has_value());
      RC_ASSERT((*moved == it.phys()) == (i == size - 1));
    }
    if (m0.empty()) RC_ASSERT(s.list.erase(phys_addr{4096}).code() == errc::invalid_argument);
  }
  void show(std::ostream& os) const override { os << "erase " << count << " at " << pick; }
};

template <class Entry, unsigned Shift>
struct clear : command<Entry, Shift> {
  void apply(std::vector<u64>& m) const override { m.clear(); }
  void run(const std::vector<u64>&, list_sut<Entry, Shift>& s) const override {
    s.list.clear();
    RC_ASSERT(s.list.head() == phys_addr{});
  }
  void show(std::ostream& os) const override { os << "clear"; }
};

template <class Entry, unsigned Shift>
struct reattach : command<Entry, Shift> {
  void run(const std::vector<u64>& m, list_sut<Entry, Shift>& s) const override {
    const flat_memory moved = s.mem.remap();
    check_against(m, s, moved);
    auto v = attach_block_list<Entry, Shift>(moved, s.list.head());
    auto w = decltype(s.list)::adopt(s.mem.pages(), *v);
    RC_ASSERT(w.has_value());
    RC_ASSERT(w->state().tail == s.list.state().tail);
    s.list = *w;
  }
  void show(std::ostream& os) const override { os << "reattach"; }
};

template <class Entry, unsigned Shift>
struct verify : command<Entry, Shift> {
  void run(const std::vector<u64>& m, list_sut<Entry, Shift>& s) const override {
    check_against(m, s, s.mem.memory());
  }
  void show(std::ostream& os) const override { os << "verify"; }
};

template <class Entry, unsigned Shift>
void check_list_model() {
  std::vector<u64> m;
  list_sut<Entry, Shift> s;
  rc::state::check(m, s,
                   one_of_commands<push<Entry, Shift>, push<Entry, Shift>,
                                                     erase<Entry, Shift>, erase<Entry, Shift>,
                                                     clear<Entry, Shift>, reattach<Entry, Shift>,
                                                     verify<Entry, Shift>>());
  s.list.clear();
}

RC_GTEST_PROP(BlockListModel, MatchesVectorWide4K, ()) { check_list_model<wide, 12>(); }
RC_GTEST_PROP(BlockListModel, MatchesVectorNarrow4K, ()) { check_list_model<narrow, 12>(); }
RC_GTEST_PROP(BlockListModel, MatchesVectorWide16K, ()) { check_list_model<wide, 14>(); }

}  // namespace
}  // namespace kho::test::block_list_model_test
