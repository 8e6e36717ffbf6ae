// Hole finder against a brute-force oracle: a page map of a small memory in which the
// tree itself lives. Random RAM layouts (gaps, touching ranges), random mixed-order
// preservations, tree pages recorded by the tree or not (as Linux writes it), random
// byte-granular reserved ranges and windows; every query is checked, before and after
// the memory is mapped at another address. Page shifts 12, 14 and 16.
#include <kho/hole_finder.hpp>
#include <kho/preserve_bitmap.hpp>

#include "test_arena.hpp"

#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include <algorithm>
#include <optional>
#include <utility>
#include <vector>

namespace kho::test::hole_finder_model_test {
namespace {

using holes = std::vector<std::pair<u64, u64>>;  // (start, size)
constexpr u64 base = u64{1} << 32;               // aligned beyond every block order used

/// What the oracle expects of a query: an error, or a value.
template <class T>
struct expected {
  errc code = errc::ok;
  T value{};
};

/// Page map of [base, base + pages*P): a page is free if it is RAM and nothing busy
/// touches it. Every answer is found by trying every candidate, not by merging.
template <unsigned S>
struct oracle {
  static constexpr u64 P = page_geometry<S>::size;
  u64 pages;
  std::vector<char> ram, busy, free;  // one entry per page of [base, base + pages*P)
  u64 ram_bytes = 0;

  explicit oracle(u64 n) : pages(n), ram(n, 0), busy(n, 0), free(n, 0) {}

  /// Sets every page of `map` that [start, end) (absolute bytes) touches.
  void mark(std::vector<char>& map, u64 start, u64 end) const {
    if (end <= start || end <= base) return;
    const u64 first = start <= base ? 0 : (start - base) / P;
    const u64 last = std::min(pages, (end - base + P - 1) / P);
    for (u64 p = first; p < last; ++p) map[p] = 1;
  }
  void finish() {
    for (u64 p = 0; p < pages; ++p) free[p] = ram[p] && !busy[p];
  }

  // The window as pages [lo, hi) relative to base, or its error.
  errc window(phys_range w, u64& lo, u64& hi) const {
    if (w.end < w.start) return errc::invalid_argument;
    const u64 a = w.start.value / P + (w.start.value % P != 0), b = w.end.value / P;
    if (a >= b) return errc::invalid_argument;
    lo = std::clamp(a, base / P, base / P + pages) - base / P;
    hi = std::clamp(b, base / P, base / P + pages) - base / P;
    for (u64 p = lo; p < hi; ++p)
      if (ram[p]) return errc::ok;
    return errc::out_of_bounds;
  }

  expected<holes> all(phys_range w, u64 min_size) const {
    u64 lo = 0, hi = 0;
    if (errc e = window(w, lo, hi); e != errc::ok) return {e, {}};
    holes out;
    for (u64 p = lo; p < hi;) {
      if (!free[p]) {
        ++p;
        continue;
      }
      u64 q = p;
      while (q < hi && free[q]) ++q;
      if ((q - p) * P >= min_size) out.emplace_back(base + p * P, (q - p) * P);
      p = q;
    }
    return {errc::ok, out};
  }

  // True if every page [a, a+size) touches is free and inside [lo, hi).
  bool fits(u64 a, u64 size, u64 lo, u64 hi) const {
    if (a < base + lo * P || a + size > base + hi * P) return false;
    for (u64 p = (a - base) / P; p * P < a + size - base; ++p)
      if (!free[p]) return false;
    return true;
  }

  errc fit_args(u64 size, u64 align) const {
    if (size == 0 || align == 0 || (align & (align - 1)) != 0) return errc::invalid_argument;
    if (size > ram_bytes) return errc::out_of_range;
    return errc::ok;
  }

  // Lowest: a fit can always slide down to a page boundary or an aligned address above
  // one, so trying align_up(every page boundary) finds it.
  expected<phys_range> first_fit(u64 size, u64 align, phys_range w) const {
    u64 lo = 0, hi = 0;
    if (errc e = fit_args(size, align); e != errc::ok) return {e, {}};
    if (errc e = window(w, lo, hi); e != errc::ok) return {e, {}};
    for (u64 p = lo; p < hi; ++p) {
      const u64 b = base + p * P;
      const u64 a = (b + align - 1) & ~(align - 1);
      if (a >= b && fits(a, size, lo, hi)) return {errc::ok, {phys_addr{a}, phys_addr{a + size}}};
    }
    return {errc::no_hole, {}};
  }

  // Highest: a fit can slide up until its end meets a page boundary, then align down.
  expected<phys_range> last_fit(u64 size, u64 align, phys_range w) const {
    u64 lo = 0, hi = 0;
    if (errc e = fit_args(size, align); e != errc::ok) return {e, {}};
    if (errc e = window(w, lo, hi); e != errc::ok) return {e, {}};
    for (u64 p = hi; p > lo; --p) {
      const u64 end = base + p * P;
      if (end < size) break;
      const u64 a = (end - size) & ~(align - 1);
      if (fits(a, size, lo, hi)) return {errc::ok, {phys_addr{a}, phys_addr{a + size}}};
    }
    return {errc::no_hole, {}};
  }

  expected<phys_range> largest(phys_range w) const {
    auto h = all(w, 0);
    if (h.code != errc::ok) return {h.code, {}};
    std::pair<u64, u64> best{0, 0};
    for (auto x : h.value)
      if (x.second > best.second) best = x;
    if (best.second == 0) return {errc::no_hole, {}};
    return {errc::ok, {phys_addr{best.first}, phys_addr{best.first + best.second}}};
  }

  // Fewest pieces: the largest holes (lowest first among equals), the last trimmed.
  expected<std::vector<phys_range>> grow(u64 need, u64 max_pieces, phys_range w) const {
    if (need == 0 || max_pieces == 0) return {errc::invalid_argument, {}};
    if (need > ram_bytes) return {errc::out_of_range, {}};
    auto h = all(w, 0);
    if (h.code != errc::ok) return {h.code, {}};
    std::stable_sort(h.value.begin(), h.value.end(), [](auto a, auto b) { return a.second > b.second; });
    std::vector<phys_range> out;
    u64 covered = 0;
    for (auto [s, n] : h.value) {
      if (covered >= need || out.size() == max_pieces) break;
      const u64 take = std::min(n, (need - covered + P - 1) / P * P);
      out.push_back({phys_addr{s}, phys_addr{s + take}});
      covered += take;
    }
    if (covered < need) return {errc::no_hole, {}};
    return {errc::ok, out};
  }
};

/// A random machine: memory, tree, RAM, reserved ranges, and the oracle's view of them.
template <unsigned S>
struct machine {
  static constexpr u64 P = page_geometry<S>::size;
  using source = typename arena<S>::source_type;
  using tree_type = preserve_bitmap<source, S>;

  u64 pages;
  arena<S> mem;
  std::optional<tree_type> tree;
  std::vector<u64> scratch = std::vector<u64>(1024);
  std::vector<phys_range> ram, reserved;
  oracle<S> o;

  explicit machine(u64 n) : pages(n), mem(n * P, base), o(n) {}
};

template <class T>
void same(const result<T>& got, const expected<T>& want) {
  RC_ASSERT(got.code() == want.code);
  if (want.code == errc::ok) RC_ASSERT(*got == want.value);
}

template <class Finder, unsigned S>
holes listed(const Finder& f, phys_range w, u64 min_size, errc& code) {
  holes out;
  code = f.for_each_hole(w, min_size, [&](phys_addr s, u64 n) { out.emplace_back(s.value, n); }).code();
  return out;
}

/// Every query on `f` against the oracle, with random arguments.
template <unsigned S, class Finder>
void check_queries(const Finder& f, const oracle<S>& o) {
  constexpr u64 P = page_geometry<S>::size;
  const u64 span = o.pages * P;
  const auto window_gen = rc::gen::weightedOneOf<phys_range>({
      {2, rc::gen::just(f.ram_window())},
      {1, rc::gen::map(rc::gen::pair(rc::gen::inRange<u64>(0, span + 2 * P), rc::gen::inRange<u64>(0, span + 2 * P)),
                       [](std::pair<u64, u64> p) {  // unaligned bytes, sometimes inverted
                         return phys_range{phys_addr{base - P + p.first}, phys_addr{base - P + p.second}};
                       })},
      {2, rc::gen::map(rc::gen::pair(rc::gen::inRange<u64>(0, o.pages), rc::gen::inRange<u64>(1, o.pages + 1)),
                       [](std::pair<u64, u64> p) {  // whole pages, in order
                         const u64 a = std::min(p.first, p.second), b = std::max(p.first + 1, p.second);
                         return phys_range{phys_addr{base + a * P}, phys_addr{base + b * P}};
                       })}});
  const auto size_gen = rc::gen::weightedOneOf<u64>({
      {4, rc::gen::map(rc::gen::inRange<u64>(1, 9), [](u64 n) { return n * P; })},
      {2, rc::gen::map(rc::gen::inRange<u64>(9, 64), [](u64 n) { return n * P; })},
      {2, rc::gen::inRange<u64>(0, 3 * P)},
      {1, rc::gen::element(o.ram_bytes, o.ram_bytes + 1)}});
  const auto align_gen = rc::gen::weightedOneOf<u64>({
      {6, rc::gen::map(rc::gen::inRange(0u, S + 7), [](unsigned b) { return u64{1} << b; })},
      {1, rc::gen::element<u64>(0, 3, 3 * P, P + P / 2, u64{1} << 63)}});

  for (int q = 0; q < 4; ++q) {
    const phys_range w = *window_gen;
    const u64 min_size = *rc::gen::oneOf(rc::gen::just(u64{0}), rc::gen::inRange<u64>(1, 6 * P),
                                         rc::gen::map(rc::gen::inRange<u64>(1, 6), [](u64 n) { return n * P; }));
    errc code{};
    const holes got = listed<Finder, S>(f, w, min_size, code);
    const auto want = o.all(w, min_size);
    RC_ASSERT(code == want.code);
    RC_ASSERT(got == want.value);
    // Early exit: stopping after k holes lists exactly the first k.
    if (!want.value.empty()) {
      const size_t k = *rc::gen::inRange<size_t>(1, want.value.size() + 1);
      holes prefix;
      RC_ASSERT(f.for_each_hole(w, min_size, [&](phys_addr s, u64 n) {
                   prefix.emplace_back(s.value, n);
                   return prefix.size() < k;
                 }).ok());
      RC_ASSERT(prefix == holes(want.value.begin(), want.value.begin() + static_cast<long>(k)));
    }
    same(f.largest_hole(w), o.largest(w));

    const u64 size = *size_gen, align = *align_gen;
    same(f.first_fit(size, align, w), o.first_fit(size, align, w));
    same(f.last_fit(size, align, w), o.last_fit(size, align, w));

    const u64 need = *rc::gen::oneOf(rc::gen::inRange<u64>(0, 4 * P), rc::gen::inRange<u64>(0, o.ram_bytes + 2));
    const u64 m = *rc::gen::inRange<u64>(0, 6);
    std::vector<phys_range> out(m);
    auto plan = f.grow_scratch(need, out, w);
    const auto want_plan = o.grow(need, m, w);
    RC_ASSERT(plan.code() == want_plan.code);
    if (plan) {
      RC_ASSERT(plan->pieces == want_plan.value.size());
      RC_ASSERT(std::vector<phys_range>(out.begin(), out.begin() + static_cast<long>(plan->pieces)) ==
                want_plan.value);
      u64 bytes = 0;
      for (const phys_range& r : want_plan.value) bytes += r.size();
      RC_ASSERT(plan->bytes == bytes);
      RC_ASSERT(bytes >= need && bytes - need < P);
    }
  }
}

template <unsigned S>
void check_against_oracle() {
  constexpr u64 P = page_geometry<S>::size;
  const u64 n = *rc::gen::inRange<u64>(64, 385);
  const bool own_pages = *rc::gen::arbitrary<bool>();
  machine<S> m(n);
  auto created = machine<S>::tree_type::create(m.mem.pages(), own_pages);
  RC_ASSERT(created.has_value());
  m.tree.emplace(std::move(*created));

  // Preservations of mixed orders anywhere in memory (some past its end), with the
  // page source skipping pages now and then so the tree's pages spread out.
  const auto blocks = *rc::gen::container<std::vector<std::tuple<u64, unsigned, u64>>>(
      *rc::gen::inRange<size_t>(0, n / 8),
      rc::gen::tuple(rc::gen::inRange<u64>(0, n + 16), rc::gen::element(0u, 0u, 0u, 0u, 1u, 1u, 2u, 3u, 6u),
                     rc::gen::oneOf(rc::gen::just(u64{0}), rc::gen::inRange<u64>(0, 3))));
  u64 skipped = 0;
  for (auto [page, ord, skip] : blocks) {
    for (; skip > 0 && skipped + 48 < n; --skip, ++skipped) RC_ASSERT(m.mem.pages().alloc(order{0}).has_value());
    const u64 first = page >> ord << ord;
    const status s = m.tree->preserve(phys_addr{base + first * P}, order{ord});
    RC_ASSERT(s.ok() || s.code() == errc::already_exists);  // a tree page, or a repeat
    m.o.mark(m.o.busy, base + first * P, base + (first + (u64{1} << ord)) * P);
  }

  // RAM: ranges between sorted cut points, some touching, some absent.
  auto cuts = *rc::gen::container<std::vector<u64>>(*rc::gen::inRange<size_t>(0, 8), rc::gen::inRange<u64>(0, n + 1));
  cuts.push_back(*rc::gen::inRange<u64>(0, n));
  cuts.push_back(n);
  std::sort(cuts.begin(), cuts.end());
  for (size_t i = 0; i + 1 < cuts.size(); i += 2)
    if (cuts[i] < cuts[i + 1]) m.ram.push_back({phys_addr{base + cuts[i] * P}, phys_addr{base + cuts[i + 1] * P}});
  if (m.ram.empty()) m.ram.push_back({phys_addr{base}, phys_addr{base + n * P}});

  // Reserved: byte ranges sorted by start, overlapping and empty ones allowed.
  for (auto [start, len] : *rc::gen::container<std::vector<std::pair<u64, u64>>>(
           *rc::gen::inRange<size_t>(0, 5), rc::gen::pair(rc::gen::inRange<u64>(0, n * P), rc::gen::oneOf(rc::gen::just(u64{0}), rc::gen::inRange<u64>(1, 4 * P)))))
    m.reserved.push_back({phys_addr{base + start}, phys_addr{base + start + len}});
  std::sort(m.reserved.begin(), m.reserved.end(), [](auto a, auto b) { return a.start < b.start; });

  auto view = attach_tree<S>(m.mem.memory(), m.tree->root(), m.scratch);
  RC_ASSERT(view.has_value());

  // The oracle: RAM pages free unless a block, a tree page or a reserved range touches them.
  for (const phys_range& r : m.ram) {
    m.o.mark(m.o.ram, r.start.value, r.end.value);
    m.o.ram_bytes += r.size();
  }
  for (u64 node : view->nodes()) m.o.mark(m.o.busy, node, node + P);
  for (const phys_range& r : m.reserved) m.o.mark(m.o.busy, r.start.value, r.end.value);
  m.o.finish();

  // last_fit's chunks: small ones so that holes cross chunk boundaries here too.
  const u64 chunk = *rc::gen::oneOf(rc::gen::just(u64{0}), rc::gen::inRange<u64>(1, 20 * P));
  auto f = make_hole_finder(*view, m.ram, m.reserved);
  RC_ASSERT(f.has_value());
  if (chunk != 0) f->set_last_fit_chunk(chunk);
  check_queries<S>(*f, m.o);
  if (own_pages) {  // a writer that records its pages needs no node list
    auto w = make_hole_finder(*m.tree, m.ram, m.reserved);
    RC_ASSERT(w.has_value());
    if (chunk != 0) w->set_last_fit_chunk(chunk);
    check_queries<S>(*w, m.o);
  }

  // The next kernel maps the same memory elsewhere: same answers.
  const flat_memory moved = m.mem.remap();
  auto again = attach_tree<S>(moved, m.tree->root(), m.scratch);
  RC_ASSERT(again.has_value());
  auto g = make_hole_finder(*again, m.ram, m.reserved);
  RC_ASSERT(g.has_value());
  g->set_last_fit_chunk(*rc::gen::inRange<u64>(0, 3 * P));
  check_queries<S>(*g, m.o);
}

RC_GTEST_PROP(HoleFinderModel, MatchesPageMapOracle4K, ()) { check_against_oracle<12>(); }
RC_GTEST_PROP(HoleFinderModel, MatchesPageMapOracle16K, ()) { check_against_oracle<14>(); }
RC_GTEST_PROP(HoleFinderModel, MatchesPageMapOracle64K, ()) { check_against_oracle<16>(); }

/// Bad RAM lists are refused with the error the contract names, never used.
RC_GTEST_PROP(HoleFinderModel, RefusesBadRamLists, ()) {
  constexpr u64 P = 4096;
  arena<12> mem(64 * P, base);
  auto tree = preserve_bitmap<arena<12>::source_type>::create(mem.pages());
  RC_ASSERT(tree.has_value());
  const auto bound = rc::gen::oneOf(rc::gen::map(rc::gen::inRange<u64>(0, 64), [](u64 p) { return p * P; }),
                                    rc::gen::inRange<u64>(0, 64 * P));
  const auto ranges = *rc::gen::container<std::vector<std::pair<u64, u64>>>(rc::gen::pair(bound, bound));
  std::vector<phys_range> ram;
  for (auto [a, b] : ranges) ram.push_back({phys_addr{a}, phys_addr{b}});
  errc want = ram.empty() ? errc::invalid_argument : errc::ok;
  for (size_t i = 0; i < ram.size() && want == errc::ok; ++i) {
    if (ram[i].start.value % P != 0 || ram[i].end.value % P != 0)
      want = errc::misaligned;
    else if (ram[i].end <= ram[i].start || (i > 0 && ram[i].start < ram[i - 1].end))
      want = errc::invalid_argument;
  }
  auto f = make_hole_finder(*tree, ram);
  RC_ASSERT(f.code() == want);
  if (f) {  // a valid list: the holes are exactly the RAM, touching ranges joined
    u64 bytes = 0;
    RC_ASSERT(f->for_each_hole([&](phys_addr, u64 size) { bytes += size; }).ok());
    RC_ASSERT(bytes == f->ram_bytes());
  }
}

}  // namespace
}  // namespace kho::test::hole_finder_model_test
