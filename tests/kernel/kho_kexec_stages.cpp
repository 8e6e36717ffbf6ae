// tests/kernel/kho_kexec_stages.cpp: kho's writers and readers in kernel context, built
// by kbuild with the kernel's own flags (tests/kernel/Kbuild).
//
// The region memmap= keeps from both kernels (16 MiB by default):
//
//   [R, R + 4 KiB)          boot page: magic, the root's address, the expected counts
//   [R + 4 KiB, R + 3/4)    the old kernel's pages: everything the handover holds
//   [R + 3/4, R + size)     the next kernel's scratch: readers' tables, fresh pages
//
// Stage 1 (the old kernel) writes, with kho's own root (kho-root-v1: no libfdt in the
// module) naming Linux's structures: the preserved-memory map in Linux's radix layout
// (every page the handover takes is preserved as it is handed out), LUO luo-v5 with two
// sessions, memfd-v2 files (kho_vmalloc folio arrays, folios of orders 0, 2 and 9 whose
// every byte holds a known pattern) and an FLB, a kho xarray of one file's folios as
// multi-order entries, a blob; then seals. Stage 2 (the next kernel) attaches at the same
// physical address with every check (seal, bounds, one owner per page, every reached page
// preserved), reads every structure and every folio byte back, restores the map into
// the memblock model, finds the holes, hands memory over word by word to the buddy
// model, and adopts the xarray to grow it. Each prints one JSON line.
#include <kho/bitmap_buddy.hpp>
#include <kho/handover.hpp>
#include <kho/handover_check.hpp>
#include <kho/holes_memblock.hpp>
#include <kho/linux/kho_fdt_check.hpp>
#include <kho/linux/luo_v5.hpp>
#include <kho/linux/memfd.hpp>
#include <kho/page_owners.hpp>
#include <kho/preserve_bitmap.hpp>
#include <kho/preserving_page_source.hpp>
#include <kho/restore.hpp>
#include <kho/xarray.hpp>

#include "kho_kexec.h"

#include <new>

namespace {

using namespace kho;
using source = bump_page_source<flat_memory>;
using map_type = preserve_bitmap<source>;
using tracked_source = preserving_page_source<source, map_type>;
using geo = page_geometry<>;
using upstream::memfd_file;
using upstream::memfd_folio;

constexpr u64 boot_magic = 0x4345584b4f484bULL;  // "KHOKEXC"

/// The boot page: where stage 2 finds the root, and what it must find there.
struct boot_page {
  detail::le64 magic;
  detail::le64 root;
  detail::le64 preserved_pages;  // pages the map preserves
};

// The memfd files and their folios: stage 1 writes them, stage 2 expects them.
struct folio_plan {
  u64 index;
  unsigned order;
};
constexpr folio_plan vm_folios[] = {{0, 0}, {1, 0}, {4, 2}, {512, 9}, {1024, 0}};
constexpr folio_plan db_folios[] = {{0, 0}, {2, 0}, {3, 0}, {8, 2}, {16, 0}, {17, 0}};
struct file_plan {
  const char* session;
  u64 token;
  const folio_plan* folios;
  u64 count;
  u64 pages;  // the file's size in pages
};
constexpr file_plan files[] = {{"vm-alpha", 3, vm_folios, 5, 1025}, {"database", 7, db_folios, 6, 20}};
constexpr u64 added_by_stage2 = 64;  // xarray entries the next kernel adds

/// Pages the map preserves: its blocks, each 2^order pages.
template <class Map>
u64 preserved_pages(const Map& map) {
  u64 n = 0;
  for (unsigned o = 0; o < 64; ++o) n += map.count(order{o}) << o;
  return n;
}

// The pattern of a folio byte: from its physical address, so a page read at the wrong
// address or a byte moved within one fails.
u64 pattern(u64 pa) { return detail::mix64(pa ^ 0x6b686f2d6b657865ULL); }

// ---- one JSON line -------------------------------------------------------------

class line {
 public:
  line(char* out, u64 size) : out_(out), size_(size) { put("{"); }
  line& put(const char* s) {
    while (*s) put_char(*s++);
    return *this;
  }
  line& key(const char* k) {
    if (!first_) put(", ");
    first_ = false;
    return put("\"").put(k).put("\": ");
  }
  line& str(const char* k, const char* v) { return key(k).put("\"").put(v).put("\""); }
  line& num(const char* k, u64 v) {
    key(k);
    char digits[20];
    int n = 0;
    do digits[n++] = static_cast<char>('0' + v % 10); while ((v /= 10) != 0);
    while (n) put_char(digits[--n]);
    return *this;
  }
  line& hex(const char* k, u64 v) {
    key(k).put("\"0x");
    int shift = 60;
    while (shift > 0 && ((v >> shift) & 0xf) == 0) shift -= 4;
    for (; shift >= 0; shift -= 4) put_char("0123456789abcdef"[(v >> shift) & 0xf]);
    return put("\"");
  }
  void finish() {
    put("}");
    out_[len_ < size_ ? len_ : size_ - 1] = '\0';
  }

 private:
  void put_char(char c) {
    if (len_ + 2 < size_) out_[len_++] = c;
  }
  char* out_;
  u64 size_, len_ = 0;
  bool first_ = true;
};

/// Step timings in microseconds, as "name_us" keys.
struct stopwatch {
  u64 t = kho_shim_now_ns();
  u64 lap() {
    const u64 now = kho_shim_now_ns(), us = (now - t) / 1000;
    t = now;
    return us;
  }
};

/// Room for one object outside the stack: kho's map writer is 1.5 KiB and a kernel
/// frame has 2 KiB, so the stages keep their big objects here, as the kernel keeps its
/// KHO state in static structures.
template <class T>
class static_slot {
 public:
  T& emplace(T&& v) { return *new (bytes_) T(static_cast<T&&>(v)); }
  /// Constructs the object `make()` returns in place, never on this frame.
  template <class F>
  T& emplace_from(F&& make) {
    return *new (bytes_) T(make());
  }

 private:
  alignas(T) unsigned char bytes_[sizeof(T)];
};

int fail(line& out, const char* step, const error& e) {
  out.str("status", to_string(e.code)).str("step", step).str("structure", e.loc.structure).hex("at", e.loc.at.value);
  if (e.other.structure[0] != '\0') out.str("other", e.other.structure).hex("other_at", e.other.at.value);
  out.finish();
  return -static_cast<int>(e.code);
}
int fail(line& out, const char* step, errc c) { return fail(out, step, make_error(c)); }

struct region {
  flat_memory mem;
  phys_addr base, pages_lo, scratch_lo, end;
  explicit region(const kho_kexec_args& a)
      : mem(phys_addr{a.phys}, a.size, a.virt),
        base{a.phys},
        pages_lo{a.phys + geo::size},
        scratch_lo{a.phys + a.size / 4 * 3},
        end{a.phys + a.size} {}
  boot_page& boot() const { return *static_cast<boot_page*>(mem.to_virt(base, sizeof(boot_page))); }
};

// ---- stage 1 -------------------------------------------------------------------

// A memfd-v2 file of `plan`: folios from `pages`, each byte its pattern; its xarray
// entries (index -> first frame, one multi-order entry a folio) in `xa` if given.
template <class Xarray>
result<phys_addr> write_file(tracked_source& pages, const flat_memory& mem, const file_plan& plan, Xarray* xa) {
  memfd_folio folios[8];
  for (u64 i = 0; i < plan.count; ++i) {
    const order o{plan.folios[i].order};
    auto pa = pages.alloc(o);
    if (!pa) return pa.err();
    auto* words = static_cast<u64*>(mem.to_virt(*pa, geo::size << o.value));
    for (u64 w = 0; w < (geo::size << o.value) / 8; ++w) words[w] = pattern(pa->value + 8 * w);
    folios[i] = memfd_folio{pfn{pa->value >> geo::shift}, plan.folios[i].index};
    if (xa != nullptr) KHO_TRY(xa->store_range(plan.folios[i].index, o, pa->value >> geo::shift));
  }
  return upstream::write_memfd(pages, memfd_file{0, plan.pages << geo::shift, upstream::memfd_seal_seal | upstream::memfd_seal_grow, folios,
                                       plan.count});
}

// Leaves the root page as a crash at `step` would have: a copy taken when seal()
// reached it is put back once seal() is done (seal writes nothing but the root page).
status seal(handover_writer<tracked_source>& root, const flat_memory& mem, const char* crash_at) {
  static unsigned char at_crash[geo::size];
  bool taken = false;
  KHO_TRY(root.seal([&](seal_step s) {
    if (detail::same_string(seal_step_name(s), crash_at)) {
      __builtin_memcpy(at_crash, mem.to_virt(root.root(), geo::size), geo::size);
      taken = true;
    }
  }));
  if (crash_at[0] != '\0' && !taken) return errc::invalid_argument;
  if (taken) __builtin_memcpy(mem.to_virt(root.root(), geo::size), at_crash, geo::size);
  return {};
}

int stage1(const kho_kexec_args& a) {
  line out(a.out, a.out_size);
  out.num("stage", 1);
  const region r(a);
  stopwatch clock;
  source raw(r.mem, r.pages_lo, r.scratch_lo);
  static static_slot<result<map_type>> map_slot;  // 1.5 KiB: its pending-record lists
  auto& created = map_slot.emplace_from([&]() __attribute__((noinline)) { return map_type::create(raw); });
  if (!created) return fail(out, "map", created.err());
  map_type* map = &*created;
  tracked_source pages(raw, *map);
  auto root = handover_writer<tracked_source>::create(pages);
  if (!root) return fail(out, "root", root.err());

  static static_slot<result<xarray<u64, geo::shift, tracked_source>>> xa_slot;
  auto& made = xa_slot.emplace_from([&]() __attribute__((noinline)) { return make_xarray<u64>(pages); });
  if (!made) return fail(out, "xarray", made.err());
  auto* xa = &*made;
  auto luo = upstream::luo_v5_writer<tracked_source>::create(pages, 1);
  if (!luo) return fail(out, "luo", luo.err());
  for (const char* session : {"vm-alpha", "database"})
    if (status s = luo->create_session(session); !s) return fail(out, "session", s.err());
  u64 folios = 0;
  for (const file_plan& f : files) {
    auto ser = write_file(pages, r.mem, f, f.token == 3 ? xa : nullptr);
    if (!ser) return fail(out, "memfd", ser.err());
    if (status s = luo->preserve_file(f.session, upstream::memfd_v2_compatible, ser->value, f.token); !s)
      return fail(out, "file", s.err());
    folios += f.count;
  }
  if (status s = luo->add_flb("iommufd-v1", 0x5a5a, 1); !s) return fail(out, "flb", s.err());
  auto blob = alloc_zeroed(pages, order{0}, geo::size);
  if (!blob) return fail(out, "blob", blob.err());
  const char state[] = "state that crossed a real kexec";
  __builtin_memcpy(r.mem.to_virt(*blob, sizeof state), state, sizeof state);
  const u64 write_us = clock.lap();

  xa->seal();  // the xarray's own checksums, before the root's
  status s = root->add("blob", "kho-blob-v1", *blob, sizeof state);
  if (s) s = root->add("LUO", upstream::luo_v5_compatible, luo->blob().phys, luo->blob().size);
  if (s) s = root->add("memfd-folios", xarray_compatible, xa->root(), xarray<u64, geo::shift, tracked_source>::root_size);
  if (s) s = root->add("preserved-memory-map", radix_compatible, map->root(), geo::size);
  if (s) s = root->set_deep_checksum("preserved-memory-map", map->deep_checksum());
  if (!s) return fail(out, "entries", s.err());
  boot_page& boot = r.boot();
  boot.magic.set(boot_magic);
  boot.root.set(root->root().value);
  boot.preserved_pages.set(preserved_pages(*map));
  if (status sealed = seal(*root, r.mem, a.crash_at); !sealed) return fail(out, "seal", sealed.err());
  const u64 seal_us = clock.lap();

  u64 stale_at = 0;
  if (a.stale_seed != 0) {  // one byte of the root page, which the seal covers whole
    const u64 x = detail::mix64(a.stale_seed);
    stale_at = root->root().value + x % geo::size;
    auto* byte = static_cast<unsigned char*>(r.mem.to_virt(phys_addr{stale_at}, 1));
    *byte = static_cast<unsigned char>(*byte ^ (1u << (x >> 32) % 8));
  }
  out.str("status", "ok").hex("root", root->root().value).num("entries", root->count());
  out.num("folios", folios).num("preserved_pages", preserved_pages(*map)).num("map_nodes", map->node_count());
  out.num("xarray_entries", xa->count());
  if (a.crash_at[0] != '\0') out.str("crash_at", a.crash_at);
  if (stale_at != 0) out.hex("stale_byte", stale_at);
  out.num("write_us", write_us).num("seal_us", seal_us);
  out.finish();
  return 0;
}

// ---- stage 2 -------------------------------------------------------------------

u64 node_list[8192];      // the map's node pages, as attach lists them
u64 zone_words[(64u << 20) / geo::size / 64];  // a buddy zone over up to 64 MiB

// One owner per page over the whole handover, every reached page preserved: kho's
// check of its own structures (check_handover's), with Linux's LUO claimed as the
// kho-v4 check claims it (files, memfd state, folio arrays, folios by radix order;
// upstream::impl::claim_luo_v5, without the FDT readers: Debian's kernel has no libfdt).
template <class Scratch>
status check_ownership(const handover_view<flat_memory>& root, const preserve_bitmap_view<flat_memory>& map,
                       Scratch& scratch) {
  page_owners<Scratch> owners(scratch);
  KHO_TRY(owners.claim(root.root(), 1, page_owner{"kho-root", root.root()}));
  KHO_TRY(map.claim_pages(owners));
  for (const handover_entry& e : root) {
    if (detail::same_string(e.compatible, radix_compatible)) continue;
    const phys_addr at{e.phys.get()};
    if (!detail::same_string(e.compatible, upstream::luo_v5_compatible)) {
      KHO_TRY(detail::claim_kho_structure<geo::shift>(root.memory(), e.compatible, at, e.size.get(), scratch, owners));
      continue;
    }
    upstream::kho_subtree t{};
    t.name = e.name;
    t.phys = at;
    t.size = e.size.get();
    t.compatible = e.compatible;
    KHO_TRY(upstream::impl::claim_luo_v5<geo::shift>(root.memory(), t, scratch, owners, map));
  }
  return owners.check_preserved(map);
}

// Every folio of every file: where stage 1 put it, flagged dirty and up to date, and
// every byte of every page its pattern.
template <class View>
status read_files(const View& luo, const flat_memory& mem, u64& folios, u64& bytes) {
  u64 file = 0;
  for (const upstream::luo_session_ser& session : luo.sessions()) {
    for (const upstream::luo_file_ser& f : luo.files(session)) {
      if (file >= sizeof files / sizeof files[0]) return errc::bad_count;
      const file_plan& plan = files[file++];
      if (f.token.get() != plan.token) return errc::not_found;
      auto fd = upstream::attach_memfd(mem, phys_addr{f.data.get()});
      if (!fd) return fd.err();
      if (fd->nr_folios() != plan.count || fd->size() != plan.pages << geo::shift) return errc::bad_count;
      u64 i = 0;
      status s;
      fd->for_each_folio([&](const upstream::memfd_folio& got) {
        if (!s) return;
        if (got.index != plan.folios[i].index || got.flags != (upstream::memfd_folio_dirty | upstream::memfd_folio_uptodate))
          s = errc::bad_count;
        const u64 pa = got.frame.value << geo::shift, len = geo::size << plan.folios[i].order;
        const auto* words = static_cast<const u64*>(mem.to_virt(phys_addr{pa}, len));
        if (words == nullptr) s = errc::out_of_bounds;
        for (u64 w = 0; s && w < len / 8; ++w)
          if (words[w] != pattern(pa + 8 * w)) s = make_error(errc::bad_checksum, "folio", phys_addr{pa + 8 * w});
        bytes += len;
        ++i;
      });
      KHO_TRY(s);
      folios += i;
    }
  }
  return file == sizeof files / sizeof files[0] ? status{} : status{errc::bad_count};
}

using map_view = preserve_bitmap_view<flat_memory>;

/// What the next kernel's steps share; each step is a frame of its own.
struct next_kernel {
  const region& r;
  source& scratch;
  const handover_view<flat_memory>& root;
  const map_view& map;
  u64 folios = 0, folio_bytes = 0, memblock_regions = 0, buddy_free_pages = 0, xarray_entries = 0,
      xarray_checked = 0;
};

// LUO's sessions, files and FLB, every folio byte, and the blob.
[[gnu::noinline]] status read_services(next_kernel& k) {
  auto entry = k.root.find("LUO");
  if (!entry) return entry.err();
  auto luo = upstream::attach_luo_v5(k.r.mem, phys_addr{(*entry)->phys.get()}, k.scratch, (*entry)->size.get());
  if (!luo) return luo.err();
  for (const char* session : {"vm-alpha", "database"})
    if (auto got = luo->retrieve_session(session); !got) return got.err();
  if (!luo->find_flb("iommufd-v1")) return make_error(errc::not_found, "luo-v5-flbs");
  status s = read_files(*luo, k.r.mem, k.folios, k.folio_bytes);
  luo->release();
  KHO_TRY(s);
  auto blob = k.root.find("blob");
  const char state[] = "state that crossed a real kexec";
  if (!blob) return blob.err();
  const void* bytes = k.r.mem.to_virt(phys_addr{(*blob)->phys.get()}, sizeof state);
  if (bytes == nullptr || __builtin_memcmp(bytes, state, sizeof state) != 0)
    return make_error(errc::bad_checksum, "blob", phys_addr{(*blob)->phys.get()});
  return {};
}

// Every preserved block into the memblock model, at the bound.
[[gnu::noinline]] status restore(next_kernel& k) {
  auto memblock = memblock_model<source>::create(k.scratch);
  if (!memblock) return memblock.err();
  KHO_TRY(restore_at_bound(k.map, *memblock));
  k.memblock_regions = memblock->size();
  return {};
}

// The holes between preserved blocks over the old kernel's pages, one early
// allocation from them, and the buddy hand-over word by word: every page of the range
// is then free, preserved or that allocation, once.
[[gnu::noinline]] status hand_over(next_kernel& k) {
  const phys_range ram[] = {{k.r.pages_lo, k.r.scratch_lo}};
  const phys_range reserved[] = {{k.r.base, k.r.pages_lo}};
  phys_range storage[4];
  auto holes = make_holes_memblock(k.map, ram, reserved, storage);
  if (!holes) return holes.err();
  auto early = holes->alloc(geo::size, geo::size);  // memblock_alloc before the hand-over
  if (!early) return early.err();
  using zone = bitmap_buddy<10>;
  auto z = zone::create(pfn{k.r.pages_lo.value >> geo::shift}, pfn{k.r.scratch_lo.value >> geo::shift}, zone_words);
  if (!z) return z.err();
  zone zones[] = {*z};
  KHO_TRY(holes->free_all_words(std::span<zone>(zones)));
  const u64 range_pages = (k.r.scratch_lo - k.r.pages_lo) >> geo::shift;
  k.buddy_free_pages = zones[0].free_pages();
  if (k.buddy_free_pages + preserved_pages(k.map) + 1 != range_pages) return make_error(errc::bad_count, "buddy");
  return {};
}

// The memfd's folio map: validated, every folio found, adopted, grown with fresh pages
// from scratch.
[[gnu::noinline]] status grow_xarray(next_kernel& k) {
  auto entry = k.root.find("memfd-folios");
  if (!entry) return entry.err();
  auto view = attach_xarray<u64>(k.r.mem, phys_addr{(*entry)->phys.get()}, k.scratch);
  if (!view) return view.err();
  for (const folio_plan& f : vm_folios) {
    auto got = view->load(f.index + (u64{1} << f.order) - 1);  // a multi-order entry answers for all its indices
    if (!got) return got.err();
    ++k.xarray_checked;
  }
  auto xa = xarray<u64, geo::shift, source>::adopt(*view, k.scratch);
  if (!xa) return xa.err();
  const u64 before = xa->count();
  for (u64 i = 0; i < added_by_stage2; ++i) KHO_TRY(xa->store((u64{1} << 32) + 977 * i, i + 1));
  k.xarray_entries = xa->count();
  if (k.xarray_entries != before + added_by_stage2) return make_error(errc::bad_count, "xarray");
  return {};
}

int stage2(const kho_kexec_args& a) {
  line out(a.out, a.out_size);
  out.num("stage", 2);
  const region r(a);
  const boot_page& boot = r.boot();
  if (boot.magic.get() != boot_magic) return fail(out, "boot page", errc::bad_magic);
  const phys_addr root_pa{boot.root.get()};
  source scratch(r.mem, r.scratch_lo, r.end);
  stopwatch clock;

  auto root = attach_handover_root<geo::shift>(r.mem, root_pa);  // seal, root and entry checksums
  if (!root) return fail(out, "attach", root.err());
  auto map_entry = root->find_compatible(radix_compatible);
  if (!map_entry) return fail(out, "map", map_entry.err());
  auto attached = attach_preserve_bitmap(r.mem, phys_addr{(*map_entry)->phys.get()}, scratch, node_list);
  if (!attached) return fail(out, "map", attached.err());
  static static_slot<map_view> map_slot;
  const map_view& map = map_slot.emplace(static_cast<map_view&&>(*attached));
  if (((*map_entry)->flags.get() & entry_deep_checksum) == 0 || map.deep_checksum() != (*map_entry)->deep_checksum.get())
    return fail(out, "map", make_error(errc::bad_checksum, "radix", phys_addr{(*map_entry)->phys.get()}));
  if (status s = check_ownership(*root, map, scratch); !s) return fail(out, "ownership", s.err());
  if (preserved_pages(map) != boot.preserved_pages.get()) return fail(out, "map", errc::bad_count);
  const u64 check_us = clock.lap();

  next_kernel k{r, scratch, *root, map};
  if (status s = read_services(k); !s) return fail(out, "read", s.err());
  const u64 read_us = clock.lap();
  if (status s = restore(k); !s) return fail(out, "restore", s.err());
  const u64 restore_us = clock.lap();
  if (status s = hand_over(k); !s) return fail(out, "buddy", s.err());
  const u64 buddy_us = clock.lap();
  if (status s = grow_xarray(k); !s) return fail(out, "xarray", s.err());
  const u64 xarray_us = clock.lap();

  out.str("status", "ok").hex("root", root_pa.value).num("entries", root->size());
  out.num("preserved_pages", preserved_pages(map)).num("map_nodes", map.nodes().size());
  out.num("folios", k.folios).num("folio_bytes_checked", k.folio_bytes);
  out.num("memblock_regions", k.memblock_regions).num("buddy_free_pages", k.buddy_free_pages);
  out.num("xarray_entries", k.xarray_entries).num("xarray_entries_checked", k.xarray_checked);
  out.num("check_us", check_us).num("read_us", read_us).num("restore_us", restore_us);
  out.num("buddy_us", buddy_us).num("xarray_us", xarray_us);
  out.finish();
  return 0;
}

}  // namespace

extern "C" int kho_kexec_stage1(kho_kexec_args* args) { return stage1(*args); }
extern "C" int kho_kexec_stage2(kho_kexec_args* args) { return stage2(*args); }
