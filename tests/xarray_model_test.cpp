// Xarray, model-based: random store/store_range/erase/exchange/marks/find sequences,
// bulk appends in index order (and out-of-order ones, refused) and cursor scans that
// resume across changes, against a std::map oracle of whole entries, with Reattach (map
// the arena elsewhere, validate, compare everything through the view, cursors included)
// and Adopt (continue writing through a writer adopted from the view). u64 and 16-byte
// values; 4 KiB and 64 KiB pages.
#include <kho/xarray.hpp>

#include "rc_commands.hpp"
#include "rc_shards.hpp"
#include "test_arena.hpp"

#include <rapidcheck.h>
#include <rapidcheck/gtest.h>
#include <rapidcheck/state.h>

#include <map>
#include <memory>
#include <optional>
#include <vector>

namespace kho::test::xarray_model_test {
namespace {

struct wide {
  u64 lo, hi;
  bool operator==(const wide&) const = default;
};

template <class V>
V make_value(u64 seed) {
  if constexpr (std::is_same_v<V, u64>) {
    return seed | 1;  // never the all-zero "absent" value
  } else {
    return V{seed | 1, ~seed};
  }
}

struct model_entry {
  unsigned order;
  u64 seed;
  u8 marks;
};

/// Whole entries keyed by first index: what the xarray must hold.
struct xa_model {
  std::map<u64, model_entry> entries;

  static u64 last_of(u64 first, unsigned o) { return first + ((u64{1} << o) - 1); }
  template <class Map>
  static auto holding_in(Map& map, u64 index) {
    auto it = map.upper_bound(index);
    if (it == map.begin()) return map.end();
    --it;
    return last_of(it->first, it->second.order) >= index ? it : map.end();
  }
  auto holding(u64 index) { return holding_in(entries, index); }
  auto holding(u64 index) const { return holding_in(entries, index); }
  bool holds(u64 index) const { return holding(index) != entries.end(); }
  void store(u64 index, unsigned o, u64 seed) {
    auto it = holding(index);
    if (it != entries.end() && it->first == index && it->second.order == o) {
      it->second.seed = seed;
      return;
    }
    if (it != entries.end() && it->second.order > o) entries.erase(it);
    entries.erase(entries.lower_bound(index), entries.upper_bound(last_of(index, o)));
    entries[index] = model_entry{o, seed, 0};
  }
  /// The first entry that begins at or after `pos` (with mark m when m >= 0): what a
  /// cursor returns after its first step.
  std::optional<std::pair<u64, model_entry>> begins_from(u64 pos, int m = -1) const {
    for (auto it = entries.lower_bound(pos); it != entries.end(); ++it)
      if (m < 0 || ((it->second.marks >> m) & 1)) return *it;
    return std::nullopt;
  }
  /// The last index of the last entry, if any.
  std::optional<u64> last() const {
    if (entries.empty()) return std::nullopt;
    return last_of(entries.rbegin()->first, entries.rbegin()->second.order);
  }
  /// The first entry holding an index >= start (with mark m when m >= 0).
  std::optional<std::pair<u64, model_entry>> find(u64 start, int m = -1) const {
    auto it = holding(start);
    if (it == entries.end()) it = entries.lower_bound(start);
    for (; it != entries.end(); ++it)
      if (m < 0 || ((it->second.marks >> m) & 1)) return *it;
    return std::nullopt;
  }
};

template <class V, unsigned Shift>
struct xa_sut {
  using source_type = typename arena<Shift>::source_type;
  using writer_type = xarray<V, Shift, source_type>;
  arena<Shift> mem{u64{96} << 20};
  arena<Shift> scratch{u64{8} << 20};  // the next kernel's scratch for attach
  std::unique_ptr<writer_type> x;

  xa_sut() {
    auto w = writer_type::create(mem.pages());
    RC_ASSERT(w.has_value());
    x = std::make_unique<writer_type>(std::move(*w));
  }
};

template <class V, unsigned Shift>
using command = rc::state::Command<xa_model, xa_sut<V, Shift>>;

/// Indices that make structure: the edges of the index space, a dense window, clusters
/// at far-apart bases, and anything at all.
rc::Gen<u64> index_gen() {
  return rc::gen::oneOf(
      rc::gen::element<u64>(0, 1, u64{1} << 63, (u64{1} << 63) + 1, ~u64{0}, ~u64{0} - 1),
      rc::gen::inRange<u64>(0, 1500),
      rc::gen::map(rc::gen::pair(rc::gen::element<u64>(u64{1} << 21, u64{3} << 40, u64{5} << 56),
                                 rc::gen::inRange<u64>(0, 1u << 20)),
                   [](std::pair<u64, u64> p) { return p.first + p.second; }),
      rc::gen::arbitrary<u64>());
}

template <class V, unsigned Shift>
void check_entry(const xarray_entry<V>& got, u64 first, const model_entry& want) {
  RC_ASSERT(got.index == first);
  RC_ASSERT(got.span.value == want.order);
  RC_ASSERT(got.marks == want.marks);
  RC_ASSERT(got.value == make_value<V>(want.seed));
}

/// Everything the model holds, through any reader (writer or view).
template <class V, unsigned Shift, class Reader>
void check_all(const xa_model& m, const Reader& r) {
  RC_ASSERT(r.count() == m.entries.size());
  auto it = m.entries.begin();
  r.for_each(0, ~u64{0}, [&](const xarray_entry<V>& e) {
    RC_ASSERT(it != m.entries.end());
    check_entry<V, Shift>(e, it->first, it->second);
    ++it;
  });
  RC_ASSERT(it == m.entries.end());
  for (const auto& [first, e] : m.entries) {
    const u64 last = xa_model::last_of(first, e.order);
    for (u64 probe : {first, last, first + (last - first) / 2}) {
      auto v = r.load(probe);
      RC_ASSERT(v.has_value());
      RC_ASSERT(*v == make_value<V>(e.seed));
    }
    if (first > 0) RC_ASSERT(r.load(first - 1).has_value() == m.holds(first - 1));
  }
  // cursors: every entry, then the entries of each mark
  for (int mark = -1; mark < static_cast<int>(xa_mark_count); ++mark) {
    auto c = mark < 0 ? r.cursor(0) : r.marked_cursor(0, static_cast<xa_mark>(mark));
    for (auto want = m.find(0, mark); want; want = m.begins_from(xa_model::last_of(want->first, want->second.order) + 1, mark)) {
      auto got = c.next();
      RC_ASSERT(got.has_value());
      check_entry<V, Shift>(*got, want->first, want->second);
      if (xa_model::last_of(want->first, want->second.order) == ~u64{0}) break;
    }
    RC_ASSERT(c.next().code() == errc::not_found);
  }
}

template <class V, unsigned Shift>
struct store_cmd : command<V, Shift> {
  u64 index = *index_gen();
  u64 seed = *rc::gen::arbitrary<u64>();
  void apply(xa_model& m) const override { m.store(index, 0, seed); }
  void run(const xa_model&, xa_sut<V, Shift>& s) const override {
    RC_ASSERT(s.x->store(index, make_value<V>(seed)).ok());
    RC_ASSERT(*s.x->load(index) == make_value<V>(seed));
  }
  void show(std::ostream& os) const override { os << "store " << index; }
};

template <class V, unsigned Shift>
struct store_range_cmd : command<V, Shift> {
  unsigned o = *rc::gen::oneOf(rc::gen::inRange(1u, 12u), rc::gen::element(18u, 30u, 62u, 63u));
  u64 index = *index_gen() & ~((u64{1} << o) - 1);
  u64 seed = *rc::gen::arbitrary<u64>();
  void apply(xa_model& m) const override { m.store(index, o, seed); }
  void run(const xa_model&, xa_sut<V, Shift>& s) const override {
    RC_ASSERT(s.x->store_range(index, order{o}, make_value<V>(seed)).ok());
    RC_ASSERT(s.x->store_range(index + 1, order{o}, make_value<V>(seed)).code() == errc::misaligned);
    auto e = s.x->entry_at(index + ((u64{1} << o) - 1));
    RC_ASSERT(e.has_value());
    RC_ASSERT(e->index == index);
    RC_ASSERT(e->span.value == o);
  }
  void show(std::ostream& os) const override { os << "store_range " << index << " order " << o; }
};

/// Enough keys in one leaf's window to turn compact leaves dense (and back on erase).
template <class V, unsigned Shift>
struct fill_cmd : command<V, Shift> {
  static constexpr u64 window = page_geometry<Shift>::size / sizeof(V);
  u64 base = *rc::gen::element<u64>(0, window * 3, u64{7} << 33) ;
  u64 stride = *rc::gen::element<u64>(1, 1, 2, 3);
  u64 n = *rc::gen::inRange<u64>(window / 3, window / 2 + 8);
  u64 seed = *rc::gen::arbitrary<u64>();
  void apply(xa_model& m) const override {
    for (u64 i = 0; i < n; ++i) m.store(base + (i * stride) % window, 0, seed + i);
  }
  void run(const xa_model&, xa_sut<V, Shift>& s) const override {
    for (u64 i = 0; i < n; ++i) RC_ASSERT(s.x->store(base + (i * stride) % window, make_value<V>(seed + i)).ok());
  }
  void show(std::ostream& os) const override { os << "fill " << n << " at " << base << " stride " << stride; }
};

template <class V, unsigned Shift>
struct erase_cmd : command<V, Shift> {
  u64 index = *index_gen();
  void apply(xa_model& m) const override {
    if (auto it = m.holding(index); it != m.entries.end()) m.entries.erase(it);
  }
  void run(const xa_model& m, xa_sut<V, Shift>& s) const override {
    const bool present = m.holds(index);
    RC_ASSERT(s.x->erase(index).code() == (present ? errc::ok : errc::not_found));
    RC_ASSERT(s.x->load(index).code() == errc::not_found);
  }
  void show(std::ostream& os) const override { os << "erase " << index; }
};

/// Erases a run of the dense window, so leaves empty, shrink and come back compact.
template <class V, unsigned Shift>
struct erase_window_cmd : command<V, Shift> {
  u64 first = *rc::gen::inRange<u64>(0, 4 * fill_cmd<V, Shift>::window);
  u64 n = *rc::gen::inRange<u64>(1, fill_cmd<V, Shift>::window);
  void apply(xa_model& m) const override {
    for (u64 i = first; i < first + n; ++i)
      if (auto it = m.holding(i); it != m.entries.end()) m.entries.erase(it);
  }
  void run(const xa_model&, xa_sut<V, Shift>& s) const override {
    for (u64 i = first; i < first + n; ++i) (void)s.x->erase(i);
  }
  void show(std::ostream& os) const override { os << "erase " << n << " from " << first; }
};

template <class V, unsigned Shift>
struct exchange_cmd : command<V, Shift> {
  u64 index = *index_gen();
  u64 seed = *rc::gen::arbitrary<u64>();
  void apply(xa_model& m) const override {
    if (auto it = m.holding(index); it != m.entries.end()) it->second.seed = seed;
  }
  void run(const xa_model& m, xa_sut<V, Shift>& s) const override {
    auto it = m.holding(index);
    auto old = s.x->exchange(index, make_value<V>(seed));
    if (it == m.entries.end()) {
      RC_ASSERT(old.code() == errc::not_found);
    } else {
      RC_ASSERT(old.has_value());
      RC_ASSERT(*old == make_value<V>(it->second.seed));
    }
  }
  void show(std::ostream& os) const override { os << "exchange " << index; }
};

template <class V, unsigned Shift>
struct mark_cmd : command<V, Shift> {
  u64 index = *index_gen();
  unsigned mark = *rc::gen::inRange(0u, 3u);
  bool set = *rc::gen::arbitrary<bool>();
  void apply(xa_model& m) const override {
    if (auto it = m.holding(index); it != m.entries.end())
      it->second.marks = static_cast<u8>(set ? it->second.marks | (1u << mark) : it->second.marks & ~(1u << mark));
  }
  void run(const xa_model& m, xa_sut<V, Shift>& s) const override {
    const bool present = m.holds(index);
    const auto mk = static_cast<xa_mark>(mark);
    const status st = set ? s.x->set_mark(index, mk) : s.x->clear_mark(index, mk);
    RC_ASSERT(st.code() == (present ? errc::ok : errc::not_found));
    RC_ASSERT(s.x->get_mark(index, mk) == (present && set));
  }
  void show(std::ostream& os) const override { os << (set ? "set" : "clear") << " mark " << mark << " at " << index; }
};

/// Marks many entries of the dense window (side nodes of dense leaves).
template <class V, unsigned Shift>
struct mark_window_cmd : command<V, Shift> {
  u64 first = *rc::gen::inRange<u64>(0, 4 * fill_cmd<V, Shift>::window);
  u64 n = *rc::gen::inRange<u64>(1, 300);
  unsigned mark = *rc::gen::inRange(0u, 3u);
  bool set = *rc::gen::arbitrary<bool>();
  void apply(xa_model& m) const override {
    for (u64 i = first; i < first + n; ++i)
      if (auto it = m.holding(i); it != m.entries.end())
        it->second.marks = static_cast<u8>(set ? it->second.marks | (1u << mark) : it->second.marks & ~(1u << mark));
  }
  void run(const xa_model&, xa_sut<V, Shift>& s) const override {
    for (u64 i = first; i < first + n; ++i)
      (void)(set ? s.x->set_mark(i, static_cast<xa_mark>(mark)) : s.x->clear_mark(i, static_cast<xa_mark>(mark)));
  }
  void show(std::ostream& os) const override { os << "mark window " << mark << " " << first << "+" << n; }
};

template <class V, unsigned Shift>
struct find_cmd : command<V, Shift> {
  u64 start = *index_gen();
  int mark = *rc::gen::inRange(-1, 3);
  void run(const xa_model& m, xa_sut<V, Shift>& s) const override {
    auto want = m.find(start, mark);
    auto got = mark < 0 ? s.x->find(start) : s.x->find_marked(start, static_cast<xa_mark>(mark));
    RC_ASSERT(got.has_value() == want.has_value());
    if (want) check_entry<V, Shift>(*got, want->first, want->second);
    auto after = s.x->find_after(start);
    auto want_after = m.entries.upper_bound(start);
    RC_ASSERT(after.has_value() == (want_after != m.entries.end()));
    if (after) check_entry<V, Shift>(*after, want_after->first, want_after->second);
  }
  void show(std::ostream& os) const override { os << "find " << start << " mark " << mark; }
};

template <class V, unsigned Shift>
struct for_each_cmd : command<V, Shift> {
  u64 first = *index_gen();
  u64 len = *rc::gen::inRange<u64>(0, 5000);
  void run(const xa_model& m, xa_sut<V, Shift>& s) const override {
    const u64 last = first + len < first ? ~u64{0} : first + len;
    std::vector<u64> want;
    auto it = m.holding(first);
    if (it == m.entries.end()) it = m.entries.lower_bound(first);
    for (; it != m.entries.end() && it->first <= last; ++it) want.push_back(it->first);
    std::vector<u64> got;
    s.x->for_each(first, last, [&](const xarray_entry<V>& e) { got.push_back(e.index); });
    RC_ASSERT(got == want);
  }
  void show(std::ostream& os) const override { os << "for_each " << first << "+" << len; }
};

/// A run of entries in index order after the last one, through append_ordered: dense
/// runs (that fill dense leaves directly), strided and sparse ones, some multi-order; and
/// one out-of-order append that must be refused without a change.
template <class V, unsigned Shift>
struct append_cmd : command<V, Shift> {
  static constexpr u64 window = page_geometry<Shift>::size / sizeof(V);
  u64 gap = *rc::gen::oneOf(rc::gen::element<u64>(0, 1, window - 1, window), rc::gen::inRange<u64>(0, 3 * window),
                            rc::gen::element<u64>(u64{1} << 40, u64{1} << 62));
  u64 stride = *rc::gen::element<u64>(1, 1, 1, 2, 3, 1000, u64{1} << 30);
  u64 n = *rc::gen::oneOf(rc::gen::inRange<u64>(1, 40), rc::gen::inRange<u64>(window / 2, 3 * window));
  unsigned every_order = *rc::gen::element(0u, 0u, 3u, 7u);  // every k-th entry is multi-order
  u64 seed = *rc::gen::arbitrary<u64>();
  u64 back = *rc::gen::inRange<u64>(0, 3000);
  bool batch = *rc::gen::arbitrary<bool>();  // through append_ordered(span), marks included
  unsigned mark_every = *rc::gen::element(0u, 0u, 5u);

  /// The marks of the k-th entry appended (only a batch carries marks).
  u8 marks_of(u64 k) const {
    return batch && mark_every != 0 && k % mark_every == 0 ? static_cast<u8>(1u << (k % 3)) : u8{0};
  }

  /// The entries this command appends to a model whose last index is `last`.
  std::vector<std::pair<u64, unsigned>> plan(std::optional<u64> last) const {
    std::vector<std::pair<u64, unsigned>> out;
    u64 next = 0;
    if (last) {
      if (*last == ~u64{0} || *last + 1 + gap < *last) return out;
      next = *last + 1 + gap;
    } else {
      next = gap;
    }
    for (u64 i = 0; i < n; ++i) {
      unsigned o = (every_order != 0 && i % every_order == every_order - 1) ? 1 + static_cast<unsigned>(i % 5) : 0;
      const u64 aligned = (next + ((u64{1} << o) - 1)) & ~((u64{1} << o) - 1);
      if (aligned < next) break;
      const u64 lastidx = aligned + ((u64{1} << o) - 1);
      if (lastidx < aligned) break;
      out.emplace_back(aligned, o);
      if (lastidx == ~u64{0} || lastidx + stride < lastidx) break;
      next = lastidx + stride;
    }
    return out;
  }
  void apply(xa_model& m) const override {
    u64 k = 0;
    for (auto [index, o] : plan(m.last())) {
      m.entries[index] = model_entry{o, seed + k, marks_of(k)};
      ++k;
    }
  }
  void run(const xa_model& m, xa_sut<V, Shift>& s) const override {
    if (auto last = m.last()) {
      // out of order: at or before the last index, refused, nothing changed
      const u64 bad = *last >= back ? *last - back : 0;
      RC_ASSERT(s.x->append_ordered(bad, make_value<V>(seed)).code() == errc::invalid_argument);
      RC_ASSERT(s.x->count() == m.entries.size());
    }
    u64 k = 0;
    if (batch) {
      std::vector<xarray_entry<V>> entries;
      for (auto [index, o] : plan(m.last())) {
        entries.push_back(xarray_entry<V>{index, order{o}, marks_of(k), make_value<V>(seed + k)});
        ++k;
      }
      RC_ASSERT(s.x->append_ordered(std::span<const xarray_entry<V>>(entries)).ok());
    } else {
      for (auto [index, o] : plan(m.last())) RC_ASSERT(s.x->append_ordered(index, order{o}, make_value<V>(seed + k++)).ok());
    }
    xa_model after = m;
    apply(after);
    RC_ASSERT(s.x->count() == after.entries.size());
    if (auto last = after.last()) RC_ASSERT(s.x->load(*last).has_value());
  }
  void show(std::ostream& os) const override {
    os << (batch ? "append batch " : "append ") << n << " marks every " << mark_every << " gap " << gap << " stride " << stride << " orders every " << every_order;
  }
};

/// A cursor scan (of every entry or of one mark) interleaved with changes at chosen
/// steps; each next() must return the first entry that begins after the last one
/// returned, in the map as it is at that moment.
template <class V, unsigned Shift>
struct cursor_cmd : command<V, Shift> {
  enum op_kind : int { st, er, set_m, clear_m, xchg, app };
  struct change {
    int kind;
    u64 index;
    unsigned mark;
  };
  u64 start = *index_gen();
  int mark = *rc::gen::inRange(-1, 3);
  // (step, change): the change runs after `step` calls of next()
  std::vector<std::pair<u64, change>> changes = *rc::gen::container<std::vector<std::pair<u64, change>>>(
      rc::gen::pair(rc::gen::inRange<u64>(0, 40),
                    rc::gen::construct<change>(rc::gen::inRange(0, 6), index_gen(), rc::gen::inRange(0u, 3u))));
  u64 steps = *rc::gen::inRange<u64>(1, 400);

  /// Applies change c to the model (and, with s, to the writer).
  static void change_model(xa_model& m, const change& c, u64 seed) {
    auto it = m.holding(c.index);
    switch (c.kind) {
      case st: m.store(c.index, 0, seed); break;
      case er: if (it != m.entries.end()) m.entries.erase(it); break;
      case set_m: if (it != m.entries.end()) it->second.marks |= static_cast<u8>(1u << c.mark); break;
      case clear_m: if (it != m.entries.end()) it->second.marks &= static_cast<u8>(~(1u << c.mark)); break;
      case xchg: if (it != m.entries.end()) it->second.seed = seed; break;
      case app: {
        auto last = m.last();
        if (!last || (*last != ~u64{0} && c.index > *last)) m.entries[c.index] = model_entry{0, seed, 0};
        break;
      }
    }
  }
  static void change_sut(xa_sut<V, Shift>& s, const change& c, u64 seed) {
    const V v = make_value<V>(seed);
    switch (c.kind) {
      case st: RC_ASSERT(s.x->store(c.index, v).ok()); break;
      case er: (void)s.x->erase(c.index); break;
      case set_m: (void)s.x->set_mark(c.index, static_cast<xa_mark>(c.mark)); break;
      case clear_m: (void)s.x->clear_mark(c.index, static_cast<xa_mark>(c.mark)); break;
      case xchg: (void)s.x->exchange(c.index, v); break;
      case app: (void)s.x->append_ordered(c.index, v); break;
    }
  }
  /// The changes in the order run() makes them: by step, then the ones past the end.
  std::vector<u64> sequence() const {
    std::vector<u64> out;
    for (u64 step = 0; step <= steps; ++step)
      for (u64 k = 0; k < changes.size(); ++k)
        if (changes[k].first == step) out.push_back(k);
    for (u64 k = 0; k < changes.size(); ++k)
      if (changes[k].first > steps) out.push_back(k);
    return out;
  }
  void apply(xa_model& m) const override {
    for (u64 k : sequence()) change_model(m, changes[k].second, 1000 + k);
  }
  void run(const xa_model& m0, xa_sut<V, Shift>& s) const override {
    xa_model m = m0;
    auto c = mark < 0 ? s.x->cursor(start) : s.x->marked_cursor(start, static_cast<xa_mark>(mark));
    std::vector<bool> done(changes.size(), false);
    std::optional<u64> pos;  // nullopt before the first step; then the next index
    bool over = false;
    for (u64 step = 0; step <= steps; ++step) {
      for (u64 k = 0; k < changes.size(); ++k)
        if (!done[k] && changes[k].first == step) {
          change_model(m, changes[k].second, 1000 + k);
          change_sut(s, changes[k].second, 1000 + k);
          done[k] = true;
        }
      if (step == steps || over) continue;
      auto want = pos ? m.begins_from(*pos, mark) : m.find(start, mark);
      auto got = c.next();
      RC_ASSERT(got.has_value() == want.has_value());
      if (!want) {
        over = true;
        continue;
      }
      check_entry<V, Shift>(*got, want->first, want->second);
      const u64 last = xa_model::last_of(want->first, want->second.order);
      if (last == ~u64{0}) {
        over = true;
        RC_ASSERT(c.next().code() == errc::not_found);
        continue;
      }
      pos = last + 1;
    }
    for (u64 k : sequence())
      if (!done[k]) {
        change_model(m, changes[k].second, 1000 + k);
        change_sut(s, changes[k].second, 1000 + k);
      }
    RC_ASSERT(s.x->count() == m.entries.size());
  }
  void show(std::ostream& os) const override {
    os << "cursor from " << start << " mark " << mark << " steps " << steps << " changes";
    for (auto& [k, c] : changes) os << " [" << k << ": " << c.kind << " " << c.index << " m" << c.mark << "]";
  }
};

template <class V, unsigned Shift>
struct reattach_cmd : command<V, Shift> {
  void run(const xa_model& m, xa_sut<V, Shift>& s) const override {
    s.x->seal();
    auto v = xarray_view<V, Shift, flat_memory>::attach(s.mem.remap(), s.x->root(), s.scratch.pages());
    RC_ASSERT(v.has_value());
    RC_ASSERT(v->height() == s.x->height());
    check_all<V, Shift>(m, *v);
    const u64 pages = s.mem.pages().pages_in_use();
    RC_ASSERT(pages == s.x->nodes() + 1);  // the writer's pages are exactly its nodes
  }
  void show(std::ostream& os) const override { os << "reattach"; }
};

template <class V, unsigned Shift>
struct adopt_cmd : command<V, Shift> {
  void run(const xa_model& m, xa_sut<V, Shift>& s) const override {
    s.x->seal();
    auto v = xarray_view<V, Shift, flat_memory>::attach(s.mem.remap(), s.x->root(), s.scratch.pages());
    RC_ASSERT(v.has_value());
    auto w = xa_sut<V, Shift>::writer_type::adopt(*v, s.mem.pages());
    RC_ASSERT(w.has_value());
    s.x = std::make_unique<typename xa_sut<V, Shift>::writer_type>(std::move(*w));
    check_all<V, Shift>(m, *s.x);
  }
  void show(std::ostream& os) const override { os << "adopt"; }
};

template <class V, unsigned Shift>
void check_xarray_model() {
  xa_model m;
  xa_sut<V, Shift> s;
  rc::state::check(
      m, s,
      one_of_commands<
          store_cmd<V, Shift>, store_cmd<V, Shift>, store_cmd<V, Shift>, store_range_cmd<V, Shift>,
          fill_cmd<V, Shift>, erase_cmd<V, Shift>, erase_cmd<V, Shift>, erase_window_cmd<V, Shift>,
          exchange_cmd<V, Shift>, mark_cmd<V, Shift>, mark_cmd<V, Shift>, mark_window_cmd<V, Shift>,
          find_cmd<V, Shift>, for_each_cmd<V, Shift>, append_cmd<V, Shift>, append_cmd<V, Shift>,
          cursor_cmd<V, Shift>, cursor_cmd<V, Shift>, reattach_cmd<V, Shift>, adopt_cmd<V, Shift>>());
}

// The slowest properties of the suite: each runs as shards (tests/rc_shards.hpp).
constexpr unsigned xarray_model_shards = 4;

class XarrayModel : public ::testing::TestWithParam<unsigned> {};

TEST_P(XarrayModel, U64Pages4K) {
  check_property_shard([] { check_xarray_model<u64, 12>(); }, GetParam(), xarray_model_shards);
}
TEST_P(XarrayModel, U64Pages64K) {
  check_property_shard([] { check_xarray_model<u64, 16>(); }, GetParam(), xarray_model_shards);
}
TEST_P(XarrayModel, Wide16BytePages4K) {
  check_property_shard([] { check_xarray_model<wide, 12>(); }, GetParam(), xarray_model_shards);
}
TEST_P(XarrayModel, Wide16BytePages64K) {
  check_property_shard([] { check_xarray_model<wide, 16>(); }, GetParam(), xarray_model_shards);
}

INSTANTIATE_TEST_SUITE_P(Shards, XarrayModel, ::testing::Range(0u, xarray_model_shards));

}  // namespace
}  // namespace kho::test::xarray_model_test
