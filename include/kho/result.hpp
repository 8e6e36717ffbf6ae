// kho/result.hpp: errors as values.
//
// Nothing under include/kho/ throws: a kernel-shim build has no exceptions. Every
// fallible operation returns result<T> (or status, which carries no value). A failure
// is an errc plus, for validation of untrusted memory, *where* it failed: the
// structure being read, the physical address of the offending node and its depth
// from the root. to_string(errc) is the one place that words an error for people.
#pragma once

#include <kho/phys.hpp>

#include <new>
#include <type_traits>
#include <utility>

namespace kho {

enum class errc : u16 {
  ok = 0,
  invalid_argument,   // caller passed something outside the contract
  out_of_memory,      // the page source is exhausted
  not_found,          // no such name / index / token
  already_exists,     // insert of something present (double preserve, duplicate name)
  misaligned,         // address not aligned as its role requires
  out_of_range,       // index, order or key outside what the format can express
  out_of_bounds,      // an address (or a range) lies outside the memory policy
  bad_magic,          // not the structure it claims to be
  bad_version,        // a major version this reader does not understand
  bad_compatible,     // compatible string differs from what the reader expects
  page_size_mismatch, // written with another page size
  not_sealed,         // the writer never sealed (crashed before seal)
  torn,               // sealing began but did not finish, or the state word is garbage
  bad_checksum,       // bytes changed after sealing
  bad_string,         // a fixed-size string without its NUL, or empty
  duplicate,          // two entries with the same key where keys must be unique
  cycle,              // a node reached twice
  too_deep,           // more levels than the format allows
  bad_count,          // a count disagrees with capacity or with the contents
  budget_exceeded,    // more nodes or entries than the validation budget allows
  table_full,         // a fixed-capacity table has no free slot
  bad_level,          // a node's level disagrees with its position
  already_retrieved,  // the next kernel asked for the same object twice
  busy,               // still referenced, cannot be removed
  missing_dependency, // refers to an object that does not exist
  no_hole,            // no free range satisfies the query
  stale,              // generation counters disagree: left over from an older handover
  aliased,            // a page claimed by two structures (or twice by one); see page_owners
  not_preserved,      // a page a structure reaches is not in the preserved-memory map
  reserved_nonzero,   // a field documented as zero at this major version is not zero
  bad_fdt,            // a flattened device tree libfdt refuses (fdt_check_full)
};

/// Words for people; the only such table.
constexpr const char* to_string(errc e) {
  switch (e) {
    case errc::ok: return "ok";
    case errc::invalid_argument: return "invalid argument";
    case errc::out_of_memory: return "out of memory";
    case errc::not_found: return "not found";
    case errc::already_exists: return "already exists";
    case errc::misaligned: return "misaligned address";
    case errc::out_of_range: return "index or order out of range";
    case errc::out_of_bounds: return "address outside memory";
    case errc::bad_magic: return "bad magic";
    case errc::bad_version: return "unsupported version";
    case errc::bad_compatible: return "incompatible format";
    case errc::page_size_mismatch: return "page size mismatch";
    case errc::not_sealed: return "handover not sealed";
    case errc::torn: return "torn handover";
    case errc::bad_checksum: return "checksum mismatch";
    case errc::bad_string: return "malformed string";
    case errc::duplicate: return "duplicate entry";
    case errc::cycle: return "cycle";
    case errc::too_deep: return "structure too deep";
    case errc::bad_count: return "bad count";
    case errc::budget_exceeded: return "validation budget exceeded";
    case errc::table_full: return "table full";
    case errc::bad_level: return "bad node level";
    case errc::already_retrieved: return "already retrieved";
    case errc::busy: return "still referenced";
    case errc::missing_dependency: return "missing dependency";
    case errc::no_hole: return "no suitable hole";
    case errc::stale: return "stale handover";
    case errc::aliased: return "page has two owners";
    case errc::not_preserved: return "reachable page not preserved";
    case errc::reserved_nonzero: return "reserved field not zero";
    case errc::bad_fdt: return "malformed device tree";
  }
  return "unknown error";
}

/// Where validation failed: structure name (a string literal), node address, depth.
struct where {
  const char* structure = "";
  phys_addr at{};
  u32 depth = 0;
};

/// A failure. For errc::aliased, `other` names the page's first owner (its structure
/// and root) while `loc` names the claim that collided with it.
struct error {
  errc code = errc::ok;
  where loc{};
  where other{};
};

constexpr error make_error(errc code, const char* structure = "", phys_addr at = phys_addr{},
                           u32 depth = 0) {
  return error{code, where{structure, at, depth}};
}

/// What err() answers for a result that holds a value.
inline constexpr error no_error{};

namespace detail {

/// result's storage: the value and the error share it. For a trivially copyable T the
/// union is copied as bytes, so a result returned per call (a cursor's next()) stays in
/// registers; otherwise copies, moves and the destructor construct or destroy whichever
/// member is live. (A base chosen by the trait, not constrained special members: Clang
/// before 16 does not implement conditionally trivial special members.)
template <class T, bool = std::is_trivially_copyable_v<T>>
struct result_storage {
  constexpr result_storage(const T& v) : value_(v), ok_(true) {}
  constexpr result_storage(T&& v) : value_(std::move(v)), ok_(true) {}
  constexpr result_storage(error e) : err_(e), ok_(false) {}
  union {
    T value_;
    error err_;
  };
  bool ok_;
};

template <class T>
struct result_storage<T, false> {
  constexpr result_storage(const T& v) : value_(v), ok_(true) {}
  constexpr result_storage(T&& v) : value_(std::move(v)), ok_(true) {}
  constexpr result_storage(error e) : err_(e), ok_(false) {}
  result_storage(const result_storage& o) : ok_(o.ok_) {
    if (ok_) {
      ::new (&value_) T(o.value_);
    } else {
      ::new (&err_) error(o.err_);
    }
  }
  result_storage(result_storage&& o) noexcept : ok_(o.ok_) {
    if (ok_) {
      ::new (&value_) T(std::move(o.value_));
    } else {
      ::new (&err_) error(o.err_);
    }
  }
  result_storage& operator=(const result_storage& o) {
    if (this != &o) {
      this->~result_storage();
      ::new (this) result_storage(o);
    }
    return *this;
  }
  result_storage& operator=(result_storage&& o) noexcept {
    if (this != &o) {
      this->~result_storage();
      ::new (this) result_storage(std::move(o));
    }
    return *this;
  }
  ~result_storage() {
    if (ok_) value_.~T();
  }
  union {
    T value_;
    error err_;
  };
  bool ok_;
};

}  // namespace detail

/// A value or an error. T need not be default-constructible. The two share storage, so
/// returning a value writes only the value and the flag (a scan returning an entry per
/// call pays for nothing else); trivially copyable when T is.
template <class T>
class [[nodiscard]] result : private detail::result_storage<T> {
  using storage = detail::result_storage<T>;
  using storage::value_;
  using storage::err_;
  using storage::ok_;

 public:
  constexpr result(const T& v) : storage(v) {}
  constexpr result(T&& v) : storage(std::move(v)) {}
  constexpr result(error e) : storage(e) {}
  constexpr result(errc c) : storage(error{c, {}, {}}) {}

  constexpr bool has_value() const { return ok_; }
  constexpr explicit operator bool() const { return ok_; }

  T& value() & { return value_; }
  const T& value() const& { return value_; }
  T&& value() && { return std::move(value_); }
  T* operator->() { return &value_; }
  const T* operator->() const { return &value_; }
  T& operator*() & { return value_; }
  const T& operator*() const& { return value_; }

  constexpr errc code() const { return ok_ ? errc::ok : err_.code; }
  constexpr const error& err() const { return ok_ ? no_error : err_; }
};

/// Success or an error, with no value.
class [[nodiscard]] status {
 public:
  constexpr status() = default;
  constexpr status(error e) : err_(e) {}
  constexpr status(errc c) : err_{c, {}} {}

  constexpr bool ok() const { return err_.code == errc::ok; }
  constexpr explicit operator bool() const { return ok(); }
  constexpr errc code() const { return err_.code; }
  constexpr const error& err() const { return err_; }

 private:
  error err_{};
};

}  // namespace kho

/// Propagate a failed status or result from the current function.
#define KHO_TRY(expr)                              \
  do {                                             \
    auto&& kho_try_r_ = (expr);                    \
    if (!kho_try_r_) return kho_try_r_.err();      \
  } while (0)
