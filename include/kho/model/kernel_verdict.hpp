// kho/model/kernel_verdict.hpp: what a stock Linux kernel would do with a handover (hosted only).
//
// kho's readers are stricter than the kernel in places and, before these checks, laxer
// in others. A verdict of kho's alone cannot tell an operator whether the next kernel
// will keep the data, so every report carries a second one, derived from the kernel's
// reading rules at the commits shared/LINUX-FORMATS.md pins (root kho-v4, LUO luo-v5,
// one file handler: memfd-v2):
//
//   accepts     reads it and keeps everything
//   ignores     drops an optional structure and boots on (kexec-metadata, memblock)
//   loses_data  boots and reads it, but loses something: sessions, a file, a folio's
//               dirtiness (shmem may drop the page), or the structure the kernel never
//               reaches
//   refuses     fails a step: the whole handover (a cold boot), LUO (every session) or
//               one file, as each finding says
//   hangs       never finishes a walk
//   not_modelled  kho refused for a reason whose kernel verdict is not derived here
//
// Three sources: a refusal of kho's, mapped by its error and place and, where the
// kernel's reading depends on them, the refused bytes (kernel_on_refusal); a scan of
// the root and LUO through kho's readers (kernel_scan); and the preserved blocks no
// structure reaches (kernel_on_orphans). Findings are kept in order, at most
// max_findings, and all are counted.
#pragma once

#include <kho/linux/kho_fdt.hpp>
#include <kho/linux/kho_fdt_check.hpp>
#include <kho/linux/luo_versions.hpp>
#include <kho/linux/memfd.hpp>
#include <kho/linux/x86_boot.hpp>
#include <kho/model/report.hpp>
#include <kho/model/scratch_pages.hpp>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace kho::model {

enum class kernel_outcome : u8 { accepts, ignores, loses_data, refuses, hangs, not_modelled };

constexpr const char* to_string(kernel_outcome o) {
  switch (o) {
    case kernel_outcome::accepts: return "accepts";
    case kernel_outcome::ignores: return "ignores";
    case kernel_outcome::loses_data: return "loses data";
    case kernel_outcome::refuses: return "refuses";
    case kernel_outcome::hangs: return "hangs";
    case kernel_outcome::not_modelled: return "not modelled";
  }
  return "?";
}

/// The kernel whose rules the verdicts follow.
inline constexpr const char* stock_kernel = "linux (kho-v4, luo-v5, memfd-v2; shared/LINUX-FORMATS.md)";
/// The LUO file handlers that kernel has (strcmp on the record's compatible).
inline constexpr const char* stock_file_handlers[] = {upstream::memfd_v2_compatible};
inline constexpr std::size_t max_findings = 32;

struct kernel_finding {
  kernel_outcome outcome;
  std::string structure;
  u64 at;
  std::string what;
};

/// The kernel's verdict on one handover: its findings, the worst of them deciding.
class kernel_verdict {
 public:
  void add(kernel_outcome o, std::string structure, u64 at, std::string what) {
    ++count_;
    if (findings_.size() < max_findings) findings_.push_back({o, std::move(structure), at, std::move(what)});
    if (rank(o) > rank(worst_)) worst_ = o;
  }
  /// The verdict: the worst finding's outcome, or accepts.
  kernel_outcome outcome() const { return worst_; }
  /// Whether the kernel would keep everything kho's reader keeps.
  bool keeps_everything() const { return worst_ == kernel_outcome::accepts; }

  nlohmann::json json() const {
    nlohmann::json list = nlohmann::json::array();
    for (const kernel_finding& f : findings_)
      list.push_back({{"outcome", to_string(f.outcome)}, {"structure", f.structure}, {"at", hex(f.at)}, {"what", f.what}});
    return {{"kernel", stock_kernel},
            {"verdict", to_string(worst_)},
            {"findings", std::move(list)},
            {"finding_count", count_}};
  }
 private:
  // not_modelled ranks below the outcomes that are known to lose something, above
  // accepts: an unknown verdict is never reported as a clean one.
  static int rank(kernel_outcome o) {
    switch (o) {
      case kernel_outcome::accepts: return 0;
      case kernel_outcome::ignores: return 1;
      case kernel_outcome::not_modelled: return 2;
      case kernel_outcome::loses_data: return 3;
      case kernel_outcome::refuses: return 4;
      case kernel_outcome::hangs: return 5;
    }
    return 5;
  }

  std::vector<kernel_finding> findings_;
  u64 count_ = 0;
  kernel_outcome worst_ = kernel_outcome::accepts;
};

/// A verdict's JSON (kernel_verdict::json) as lines for people.
inline std::string kernel_verdict_text(const nlohmann::json& j) {
  std::string s = fmt::format("stock kernel, {}: {}\n", j["kernel"].get<std::string>(), j["verdict"].get<std::string>());
  for (const auto& f : j["findings"])
    s += fmt::format("  {}: {} at {}: {}\n", f["outcome"].get<std::string>(), f["structure"].get<std::string>(),
                     f["at"].get<std::string>(), f["what"].get<std::string>());
  if (const u64 n = j["finding_count"].get<u64>(); n > j["findings"].size())
    s += fmt::format("  ... {} more findings\n", n - j["findings"].size());
  return s;
}

/// The kernel's verdict where kho refused with `e`: the cases whose kernel reading is
/// derived (each names the kernel's step); anything else is not_modelled, never a guess.
inline void kernel_on_refusal(kernel_verdict& v, const error& e) {
  const std::string_view s = e.loc.structure;
  const u64 at = e.loc.at.value;
  auto say = [&](kernel_outcome o, const char* what) { v.add(o, std::string(s), at, what); };
  switch (e.code) {
    case errc::cycle:
      if (s == "setup_data") return say(kernel_outcome::hangs, "parse_setup_data follows `next` for ever: the boot never ends");
      break;
    case errc::misaligned:
      if (s == "memfd" && e.loc.depth == 1)
        return say(kernel_outcome::refuses,
                   "a large folio at an index not aligned to its order: shmem_add_to_page_cache's VM_BUG_ON (a "
                   "crash with CONFIG_DEBUG_VM; otherwise the folio is cached at the wrong offsets)");
      break;
    case errc::already_exists:
      if (s == "memfd")
        return say(kernel_outcome::refuses,
                   "two folios over one file page: shmem_add_to_page_cache -EEXIST fails memfd_luo_retrieve, the "
                   "file is lost");
      break;
    case errc::not_preserved:
      if (s == "memfd" && e.loc.depth == 1)
        return say(kernel_outcome::refuses, "kho_restore_folio finds no preserved block there: -EIO, the file is lost");
      if (s == "mshv")
        return say(kernel_outcome::refuses,
                   "a kernel with the MSHV RFC restores every MSHV page as one page and panics when that fails; "
                   "the stock kernel has no MSHV and never reads the subtree");
      if (s == "luo-v5")
        return say(kernel_outcome::loses_data,
                   "LUO reads its pages (luo_ser, and session and file blocks through kho_block_set_restore) "
                   "without asking whether they were preserved: the page was not reserved, so the buddy "
                   "allocator may have reused it before LUO reads it, and freeing it after the read frees a page "
                   "the allocator already owns");
      break;
    case errc::out_of_range:
      // LINUX-FORMATS-NEXT.md: kernels that have these handlers (not the stock one).
      if (s == "hugetlb-v1" && e.loc.depth == 0)
        return say(kernel_outcome::accepts,
                   "a kernel with hugetlb-v1 scans nr_hstates entries without a bound: past the fourth it reads "
                   "the rest of the FLB's page (zero: no order matches), so it counts no pages from them "
                   "(kho is stricter)");
      if (s == "guest_memfd_luo_v1" && e.loc.depth == 1)
        return say(kernel_outcome::accepts,
                   "a kernel with guest_memfd_luo_v1 checks neither a folio's index against size nor the order of "
                   "indices: a folio past the end is added beyond i_size, one out of order at its index all the "
                   "same (kho is stricter; a pfn whose address overflows, possible only with pages over 4 KiB, "
                   "would instead fail kho_restore_folio)");
      break;
    case errc::reserved_nonzero:
      if (s == "kho_vmalloc")
        return say(kernel_outcome::accepts,
                   "kho_flags_to_vmalloc keeps bits 0x1 and 0x2 and ignores the rest (kho is stricter)");
      break;
    case errc::bad_version:
      if (s == "kho-fdt")
        return say(kernel_outcome::refuses,
                   "kho_populate wants root kho-v4 and disables KHO revival: a cold boot loses everything preserved");
      [[fallthrough]];
    case errc::bad_count:
      if (s == "kexec-metadata" || s == "memblock")
        return say(kernel_outcome::ignores, "the kernel skips this subtree and boots on without it (kho is stricter)");
      if (s == "mshv" && e.loc.depth == 1)
        return say(kernel_outcome::refuses,
                   "root_table not 8 bytes: a kernel with the MSHV RFC panics; the stock kernel has no MSHV");
      break;
    case errc::duplicate:
      if (s == "kho-fdt")
        return say(kernel_outcome::loses_data,
                   "two subtrees alike before their unit addresses: kho_retrieve_subtree takes the first for "
                   "both, and the other structure is never read");
      if (s == "luo-v5-sessions")
        return say(kernel_outcome::refuses,
                   "a session name twice: -EEXIST when the sessions are inserted at the first open of "
                   "/dev/liveupdate, and the failure is not unwound");
      if (s == "luo-v5-files")
        return say(kernel_outcome::accepts, "tokens are not checked again on the incoming side (kho is stricter)");
      if (s == "luo-v5-flbs")
        return say(kernel_outcome::loses_data, "FLBs are looked up by name: the first wins, the other is never retrieved");
      if (s == "memfd" && e.loc.depth == 1)
        return say(kernel_outcome::refuses,
                   "two records at one index: shmem_add_to_page_cache -EEXIST fails memfd_luo_retrieve, the file "
                   "is lost");
      break;
    case errc::bad_string:
      if (s == "luo-v5-sessions")
        return say(kernel_outcome::accepts,
                   "session names are compared with strncmp over their 64 bytes: one without its NUL is read as "
                   "64 bytes (kho is stricter)");
      break;
    case errc::aliased:
      if (s == "kho_scratch" && kho::detail::same_string(e.other.structure, "radix"))
        return say(kernel_outcome::loses_data,
                   e.other.depth == 0
                       ? "scratch over a preserved page: the kernel allocates from scratch at once and overwrites it"
                       : "scratch over a page of the preserved-memory map: the kernel allocates from scratch before "
                         "it walks the map");
      break;
    case errc::bad_compatible:
    case errc::not_found:
      if (s == "mshv")
        return say(kernel_outcome::refuses,
                   "a kernel with the MSHV RFC panics (mshv_preserve_init: compatible not mshv_kho-v1, or no 8-byte "
                   "root_table); the stock kernel has no MSHV and never reads the subtree");
      break;
    case errc::bad_checksum:
    case errc::not_sealed:
    case errc::torn:
      return say(kernel_outcome::not_modelled,
                 "the kernel checks no kho seal: it reads the bytes as they are, with consequences not derived here");
    default: break;
  }
  say(kernel_outcome::not_modelled, "the kernel's verdict on this refusal is not derived");
}

/// Preserved blocks no structure reaches (check_kho_fdt's orphan_blocks) as JSON.
inline nlohmann::json orphans_json(const upstream::orphan_blocks& o) {
  nlohmann::json first = nlohmann::json::array();
  for (u64 i = 0; i < o.count && i < upstream::orphan_blocks::listed; ++i)
    first.push_back({hex(o.first[i].value), o.first_order[i].value});
  return {{"count", o.count}, {"pages", o.pages}, {"first", std::move(first)}};
}

/// The kernel's verdict on orphans: it reserves every preserved block at boot and only
/// a structure's reader gives one back, so these stay reserved for good.
inline void kernel_on_orphans(kernel_verdict& v, const upstream::orphan_blocks& o) {
  if (o.count == 0) return;
  v.add(kernel_outcome::loses_data, "preserved-memory-map", o.first[0].value,
        fmt::format("{} preserved blocks ({} pages) that no structure reaches, the first at {} (order {}): the "
                    "kernel keeps them reserved, leaked on every live update",
                    o.count, o.pages, hex(o.first[0].value), o.first_order[0].value));
}

/// As kernel_on_refusal, reading the refused bytes where the kernel's reading depends
/// on them: a memfd folio record (pfn 0 is skipped, unknown flag bits are not tested)
/// and a SETUP_KEXEC_KHO node's len (the kernel reads 32 bytes whatever it says).
template <Memory M>
void kernel_on_refusal(kernel_verdict& v, const error& e, const M& mem) {
  const std::string_view s = e.loc.structure;
  const u64 at = e.loc.at.value;
  auto say = [&](kernel_outcome o, const char* what) { v.add(o, std::string(s), at, what); };
  if (s == "memfd" && e.loc.depth == 1 && (e.code == errc::out_of_range || e.code == errc::reserved_nonzero)) {
    const void* record = mem.to_virt(e.loc.at, sizeof(upstream::memfd_luo_folio_ser));
    if (record != nullptr) {
      upstream::memfd_luo_folio_ser r;
      std::memcpy(&r, record, sizeof r);
      if (e.code == errc::reserved_nonzero)
        return say(kernel_outcome::accepts,
                   "folio flag bits beyond DIRTY and UPTODATE: the kernel tests those two only (kho is stricter)");
      if ((r.pfn_flags.get() & upstream::memfd_pfn_mask) == 0)
        return say(kernel_outcome::accepts, "memfd_luo_retrieve skips a record with pfn 0 (kho is stricter)");
    }
  }
  if (s == "setup_data" && e.code == errc::bad_count) {
    upstream::setup_data_header h;
    if (const void* p = mem.to_virt(e.loc.at, sizeof h)) {
      std::memcpy(&h, p, sizeof h);
      if (h.len.get() > sizeof(upstream::kho_data))
        return say(kernel_outcome::accepts,
                   "add_kho reads kho_data's 32 bytes and ignores the rest of a longer node (kho is stricter)");
    }
  }
  kernel_on_refusal(v, e);
}

namespace detail_verdict {

inline bool stock_handler(const char* compatible) {
  for (const char* h : stock_file_handlers)
    if (kho::detail::same_string(compatible, h)) return true;
  return false;
}

// One memfd a stock kernel would read: folios written clean lose their dirtiness.
template <unsigned PageShift, Memory M>
void scan_memfd(kernel_verdict& v, const M& mem, const upstream::luo_file_ser& f) {
  const auto version = upstream::memfd_version_of(f);
  if (!version || f.data.get() == 0) return;
  auto m = upstream::attach_memfd<PageShift>(mem, phys_addr{f.data.get()}, *version);
  if (!m) return;  // kho's check read it already; nothing new to say
  u64 clean = 0, first = 0;
  m->for_each_folio([&](const upstream::memfd_folio& folio) {
    if (folio.flags == upstream::memfd_folio_uptodate && clean++ == 0) first = folio.index;
  });
  if (clean != 0)
    v.add(kernel_outcome::loses_data, "memfd", f.data.get(),
          fmt::format("{} folios UPTODATE without DIRTY (the first at index {}): retrieved clean, shmem may "
                      "drop them and their data",
                      clean, first));
}

// LUO as the kernel reads it: luo-v5 only, then every file's handler by name.
template <unsigned PageShift, Memory M>
void scan_luo(kernel_verdict& v, const M& mem, const upstream::kho_subtree& t) {
  using namespace upstream;
  auto version = detect_luo_version(mem, t.phys, t.size);
  if (!version) return;
  if (*version != luo_version::v5) {
    // LINUX-FORMATS-NEXT.md 1.8: the luo-v5 reader strncmps its 8 bytes and panics
    // through luo_restore_fail on anything else (an FDT, another number, a longer field).
    v.add(kernel_outcome::refuses, "LUO", t.phys.value,
          fmt::format("written as {}; the kernel reads luo-v5 only and {}: every session is lost",
                      luo_version_name(*version), luo_stock_words(luo_stock_reading(luo_version::v5, *version))));
    return;
  }
  scratch_pages<PageShift> scratch(mem);
  auto luo = attach_luo_v5<PageShift>(mem, t.phys, scratch.pages(), t.size, {}, *version);
  if (!luo) return;
  for (const luo_session_ser& s : luo->sessions())
    for (const luo_file_ser& f : luo->files(s)) {
      if (!stock_handler(f.compatible)) {
        v.add(kernel_outcome::refuses, "luo-v5-file", f.data.get(),
              fmt::format("file handler \"{}\" (token {}) is not one the kernel has: luo_file_deserialize -ENOENT "
                          "fails luo_session_deserialize, every session is lost",
                          std::string(f.compatible, kho::detail::bounded_length(f.compatible, sizeof f.compatible)),
                          f.token.get()));
        continue;
      }
      scan_memfd<PageShift>(v, mem, f);
    }
  luo->release();
}

}  // namespace detail_verdict

/// What the kernel makes of a handover's root and, with `read_structures` (kho's check
/// accepted them), of LUO: the root's version, LUO's layout, each LUO file's handler
/// and each memfd's folio flags. A handover kho refused has only its root judged here
/// (nothing behind a refusal is read; the refusal itself is kernel_on_refusal's), so a
/// verdict of "accepts" beside kho's refusal speaks for the refused structure and the
/// root, not for structures kho never read.
/// Complexity: O(LUO's entries + the memfds' folio records).
template <unsigned PageShift, Memory M>
void kernel_scan(kernel_verdict& v, const upstream::kho_fdt_view<M, PageShift>& view, bool read_structures) {
  using namespace upstream;
  if (view.version() != kho_root_version::v4 || view.compat().granular)
    v.add(kernel_outcome::refuses, "kho-fdt", view.address().value,
          fmt::format("root {}: kho_populate wants kho-v4 and disables KHO revival, a cold boot loses everything "
                      "preserved",
                      kho_root_compatible(view.compat())));
  if (!read_structures) return;
  // The kernel retrieves subtrees by name (kho_retrieve_subtree): LUO, kexec-metadata
  // and memblock; nothing asks for any other. (upstream::impl spelled out: a unit that
  // also includes qualify.hpp has a kho::model::impl, which would hide it.)
  view.for_each([&](const kho_subtree& t) {
    if (upstream::impl::answers_to(t.name, luo_v5_subtree)) {
      detail_verdict::scan_luo<PageShift>(v, view.memory(), t);
    } else if (!upstream::impl::answers_to(t.name, kexec_metadata_subtree) &&
               !upstream::impl::answers_to(t.name, memblock_subtree)) {
      v.add(kernel_outcome::loses_data, "kho-fdt", t.phys.value,
            fmt::format("subtree \"{}\" ({}): no reader in the kernel asks for it, so its pages and all it "
                        "reaches stay reserved, leaked",
                        t.name, t.compatible != nullptr ? t.compatible : "an opaque blob"));
    }
  });
}

}  // namespace kho::model
