// Differential fuzz target: a byte stream decoded into xarray operations (store,
// store_range, erase, exchange, set/clear mark, append_ordered one by one and in a
// batch), applied to the writer and to a std::map oracle of whole entries; the full
// ascending iteration must agree.
#include <kho/xarray.hpp>

#include "fuzz_pages.hpp"

#include <cstdint>
#include <iterator>
#include <map>
#include <span>

namespace {

kho::fuzz::pages<64 << 20> arena;

struct model_entry {
  unsigned order;
  kho::u64 value;
  unsigned marks;
  kho::u64 last(kho::u64 index) const { return index + ((kho::u64{1} << order) - 1); }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace kho;
  flat_memory mem(phys_addr{u64{1} << 40}, arena.size, arena);
  bump_page_source<flat_memory> pages(mem, mem.base(), mem.end());
  auto x = make_xarray<u64, 12>(pages);
  if (!x) return 0;
  std::map<u64, model_entry> oracle;  // first index -> entry
  auto holder = [&](u64 i) -> std::map<u64, model_entry>::iterator {
    auto it = oracle.upper_bound(i);
    if (it == oracle.begin()) return oracle.end();
    --it;
    return it->second.last(it->first) >= i ? it : oracle.end();
  };
  for (size_t p = 0; p + 5 <= size && p < 5 * 2000; p += 5) {
    const unsigned op = data[p] % 8;
    const unsigned o = (data[p] >> 3) % 4 == 3 ? 9 : (data[p] >> 3) % 4;
    u64 index = u64{data[p + 1]} | u64{data[p + 2]} << 8;
    if (data[p + 3] & 0x80) index |= static_cast<u64>(data[p + 3] & 0x7f) << 56;  // far, sparse keys
    const u64 value = data[p + 4];  // 0 is refused: the format's "absent"
    const auto m = static_cast<xa_mark>(data[p + 3] % 3);
    auto found = holder(index);
    if (op <= 1) {  // store / store_range
      const u64 start = index & ~((u64{1} << o) - 1);
      const status s = x->store_range(start, order{o}, value);
      if (value == 0) {
        if (s.code() != errc::invalid_argument) __builtin_trap();
        continue;
      }
      if (!s) __builtin_trap();
      unsigned marks = 0;
      const u64 last = start + ((u64{1} << o) - 1);
      for (auto it = oracle.begin(); it != oracle.end();) {
        if (it->first <= last && it->second.last(it->first) >= start) {
          if (it->first == start && it->second.order == o) marks = it->second.marks;
          it = oracle.erase(it);
        } else {
          ++it;
        }
      }
      oracle[start] = model_entry{o, value, marks};
    } else if (op == 2) {
      const status s = x->erase(index);
      if (s.code() != (found != oracle.end() ? errc::ok : errc::not_found)) __builtin_trap();
      if (found != oracle.end()) oracle.erase(found);
    } else if (op == 3) {
      auto r = x->exchange(index, value);
      if (value == 0) {
        if (r.code() != errc::invalid_argument) __builtin_trap();
      } else if (found == oracle.end()) {
        if (r.code() != errc::not_found) __builtin_trap();
      } else {
        if (!r || *r != found->second.value) __builtin_trap();
        found->second.value = value;
      }
    } else if (op >= 6) {  // append_ordered: one entry, or a batch of up to 8 with marks
      const u64 step = u64{1} << o, start = index & ~(step - 1);
      const unsigned n = op == 6 ? 1 : (data[p + 3] & 7) + 1;
      xarray_entry<u64> batch[8];
      for (unsigned i = 0; i < n; ++i)
        batch[i] = xarray_entry<u64>{start + i * step, order{o}, static_cast<u8>(i + 1 == n ? (data[p + 3] >> 3) & 7 : 0),
                                     value == 0 ? 0 : value + i};
      const status s = op == 6 ? x->append_ordered(start, order{o}, value)
                               : x->append_ordered(std::span<const xarray_entry<u64>>(batch, n));
      errc want = errc::ok;
      for (unsigned i = 0; i < n && want == errc::ok; ++i) {
        const bool after_last = oracle.empty() || batch[i].index > oracle.rbegin()->second.last(oracle.rbegin()->first);
        if (batch[i].value == 0 || !after_last) {
          want = errc::invalid_argument;
        } else {
          oracle[batch[i].index] = model_entry{o, batch[i].value, op == 6 ? 0u : batch[i].marks};
        }
      }
      if (s.code() != want) __builtin_trap();
    } else {
      const bool set = op == 4;
      const status s = set ? x->set_mark(index, m) : x->clear_mark(index, m);
      if (s.code() != (found != oracle.end() ? errc::ok : errc::not_found)) __builtin_trap();
      if (found != oracle.end()) {
        const unsigned bit = 1u << static_cast<unsigned>(m);
        found->second.marks = set ? (found->second.marks | bit) : (found->second.marks & ~bit);
      }
    }
  }
  auto want = oracle.begin();
  bool ok = true;
  x->for_each(0, ~u64{0}, [&](const auto& e) {
    if (want == oracle.end() || e.index != want->first || e.span.value != want->second.order ||
        e.value != want->second.value)
      ok = false;
    for (unsigned b = 0; b < 3 && ok; ++b)
      if (e.marked(static_cast<xa_mark>(b)) != (((want->second.marks >> b) & 1) != 0)) ok = false;
    if (ok) ++want;
    return ok;
  });
  if (!ok || want != oracle.end() || x->count() != oracle.size()) __builtin_trap();
  return 0;
}
