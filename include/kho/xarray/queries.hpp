// kho/xarray/queries.hpp: the const queries, written once for the writer and the view.
#pragma once

#include <kho/xarray/cursor.hpp>

#include <type_traits>

namespace kho {

namespace detail {

/// The const queries, written once for the writer and the view. Derived provides
/// memory(), root_ref(), root_height() and count().
template <class Derived, class Value, unsigned PageShift>
class xa_queries {
  using read = xa_read<Value, PageShift>;

 public:
  using entry = xarray_entry<Value>;

  /// The value at `index` (a multi-order entry answers for every index it covers).
  /// Complexity: O(H + log compact_capacity). Errors: not_found.
  result<Value> load(u64 index) const {
    const unsigned char* v = read::lookup(self().memory(), self().root_ref(), self().root_height(), index);
    if (v == nullptr) return errc::not_found;
    Value out;
    std::memcpy(&out, v, sizeof out);
    return out;
  }

  /// The whole entry holding `index`: its first index, order, marks and value.
  /// Complexity: O(H + log compact_capacity). Errors: not_found.
  result<entry> entry_at(u64 index) const {
    return read::first_in(self().memory(), self().root_ref(), self().root_height(), index, index, -1);
  }

  /// The first entry holding an index >= `start`. Complexity: O(H * fanout) worst case,
  /// O(H) when entries are near. Errors: not_found.
  result<entry> find(u64 start) const {
    return read::first_from(self().memory(), self().root_ref(), self().root_height(), start, -1);
  }

  /// The first entry that begins after `index`. Errors: not_found.
  result<entry> find_after(u64 index) const {
    if (index == ~u64{0}) return errc::not_found;
    auto e = find(index + 1);
    if (!e || e->index > index) return e;
    if (e->last() == ~u64{0}) return errc::not_found;
    return find(e->last() + 1);
  }

  /// The first entry holding an index >= `start` that carries `m`; subtrees whose
  /// summary bit is clear are skipped without being read. Errors: not_found, invalid_argument.
  result<entry> find_marked(u64 start, xa_mark m) const {
    if (static_cast<unsigned>(m) >= xa_mark_count) return errc::invalid_argument;
    return read::first_from(self().memory(), self().root_ref(), self().root_height(), start,
                            static_cast<int>(m));
  }

  /// True if the entry holding `index` carries `m`. Complexity: O(H + log compact_capacity).
  bool get_mark(u64 index, xa_mark m) const {
    auto e = entry_at(index);
    return e && static_cast<unsigned>(m) < xa_mark_count && e->marked(m);
  }

  /// Calls f(entry) for each entry overlapping [first, last], in ascending order; f may
  /// return bool (false stops). Complexity: O(entries visited + nodes touched).
  template <class F>
  void for_each(u64 first, u64 last, F&& f) const {
    each(first, last, -1, f);
  }
  /// As for_each, only entries carrying `m`, skipping unmarked subtrees.
  template <class F>
  void for_each_marked(u64 first, u64 last, xa_mark m, F&& f) const {
    if (static_cast<unsigned>(m) < xa_mark_count) each(first, last, static_cast<int>(m), f);
  }

  using cursor_type = xa_cursor<Derived, Value, PageShift>;
  /// A scan of every entry from `start` that resumes where it stopped (see xa_cursor).
  /// Complexity: O(1) amortised per entry. Errors: none (next() says not_found at the end).
  cursor_type cursor(u64 start = 0) const { return cursor_type(self(), start, -1); }
  /// A scan of the entries carrying `m` from `start`: each next() continues from the
  /// last hit, skipping subtrees whose summary bit is clear, where find_marked descends
  /// from the root every time. Complexity: O(1) amortised per hit plus the summaries
  /// skipped. An invalid mark yields an empty scan.
  cursor_type marked_cursor(u64 start, xa_mark m) const {
    return cursor_type(self(), start, static_cast<int>(m));
  }

  bool empty() const { return self().count() == 0; }

 private:
  const Derived& self() const { return static_cast<const Derived&>(*this); }

  template <class F>
  void each(u64 first, u64 last, int mark, F& f) const {
    if (first > last) return;
    auto call = [&](const entry& e) {
      if constexpr (std::is_same_v<decltype(f(e)), bool>) {
        return f(e);
      } else {
        f(e);
        return true;
      }
    };
    read::walk(self().memory(), self().root_ref(), self().root_height(), first, last, mark, call);
  }
};

}  // namespace detail

}  // namespace kho
