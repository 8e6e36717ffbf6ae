// Fuzz target behind every checksum, for a Linux handover (the "kho-v4" root FDT) as a
// whole: a valid handover (the preserved-memory map, LUO luo-v5 with a memfd file,
// kexec-metadata, memblock, a kho-xarray-v1 subtree) is built once per run; each input
// starts from a copy of it and edits it with libfdt (set a property to an address, a
// number, a format name or the input's bytes; delete one; add or delete a node; a raw
// byte of the FDT page), edits the memblock sub-FDT the same way, and damages any page
// in use (reseal.hpp). Then it is re-sealed as a forger would: the xarray's root block,
// kho,map-xxh64 from the map as it now stands, every subtree's kho,xxh64, state SEALED,
// the root's kho,checksum. attach_kho_handover must refuse it (giving its scratch back)
// or accept it; an accepted handover must be accepted again, alike, from a copy at
// another address read through a Memory that traps on any read outside it.
//
// Input: [flags][op]...; flags bit 0..2 == 7 leaves the seal as the edits left it.
#include <kho/linux/kho_fdt_check.hpp>
#include <kho/preserving_page_source.hpp>
#include <kho/xarray.hpp>

#include "fuzz_pages.hpp"
#include "../xarray_reseal.hpp"
#include "reseal.hpp"

#include <cstring>
#include <vector>

namespace {

using namespace kho;
using namespace kho::upstream;

constexpr u64 memory_bytes = u64{2} << 20;
constexpr u64 page = 4096;
using source = bump_page_source<flat_memory>;
using map_type = preserve_bitmap<source>;
using tracked_source = preserving_page_source<source, map_type>;

kho::fuzz::pages<memory_bytes> live;   // the handover an input edits
kho::fuzz::pages<memory_bytes> moved;  // the same bytes at another address
kho::fuzz::pages<8 << 20> scratch_memory;

// The intact handover, built on the first input.
struct handover {
  std::vector<unsigned char> bytes;  // [base, high water)
  std::vector<phys_addr> pages;      // every page in use
  phys_addr fdt{}, map{}, memblock{}, xarray{};
};

constexpr u64 base = fuzz::image_base;

handover build() {
  handover h;
  std::memset(live, 0, live.size);
  const flat_memory mem(phys_addr{base}, memory_bytes, live);
  source pages(mem, mem.base(), mem.end());
  auto map = map_type::create(pages);
  if (!map) __builtin_trap();
  tracked_source tracked(pages, *map);
  auto w = kho_fdt_writer<tracked_source>::create(tracked, map->root());
  if (!w) __builtin_trap();
  memfd_folio folios[4];
  for (u64 i = 0; i < 4; ++i) {
    auto pa = tracked.alloc(order{0});
    if (!pa) __builtin_trap();
    folios[i] = memfd_folio{pfn{pa->value >> 12}, i * 3, memfd_folio_dirty | memfd_folio_uptodate};
  }
  auto fd = write_memfd<12>(tracked, memfd_file{0, u64{12} << 12, memfd_seal_seal, folios, 4});
  auto luo = luo_v5_writer<tracked_source>::create(tracked, 2);
  if (!fd || !luo || !luo->create_session("vm") || !luo->preserve_file("vm", memfd_v2_compatible, fd->value, 1))
    __builtin_trap();
  auto meta = write_kexec_metadata(tracked, "6.20.0-kho", 3);
  auto region = tracked.alloc(order{1}), small = tracked.alloc(order{0});
  if (!meta || !region || !small) __builtin_trap();
  const reserve_mem_region regions[] = {{"trace", *region, u64{2} << 12}, {"pstore", *small, page}};
  auto mb = write_memblock(tracked, regions, 2);
  auto xa = xarray<u64, 12, tracked_source>::create(tracked);
  if (!mb || !xa || !xa->store(5, 55) || !xa->store(4000, 0x1234000)) __builtin_trap();
  xa->seal();
  if (!w->add(luo_v5_subtree, luo->blob().phys, luo->blob().size, luo_v5_compatible) ||
      !w->add(kexec_metadata_subtree, meta->phys, meta->size) || !w->add(memblock_subtree, mb->phys, mb->size) ||
      !w->add("kho-memfd-index", xa->root(), xa->root_size, xarray_compatible) ||
      !w->set_deep_checksum("kho-memfd-index", 0x600d) || !w->set_memory_map_checksum(map->deep_checksum()) ||
      !w->seal())
    __builtin_trap();
  h.fdt = w->root();
  h.map = map->root();
  h.memblock = mb->phys;
  h.xarray = xa->root();
  for (phys_addr pa = mem.base(); pa < pages.high_water(); pa = pa + page) h.pages.push_back(pa);
  h.bytes.assign(live.data, live.data + (pages.high_water() - mem.base()));
  flat_memory smem(phys_addr{u64{1} << 46}, scratch_memory.size, scratch_memory);
  source scratch(smem, smem.base(), smem.end());
  if (!attach_kho_handover<12>(mem, h.fdt, scratch)) __builtin_trap();  // the writers' output
  return h;
}

unsigned char* at(phys_addr pa) { return live + (pa.value - base); }
// What fuzz::damage writes through.
struct live_pages {
  unsigned char* bytes(phys_addr pa) const { return at(pa); }
};

// ---- edits ---------------------------------------------------------------------------

constexpr const char* prop_names[] = {
    "compatible",     "preserved-memory-map", "preserved-data", "blob-size",  "kho,generation",
    "kho,state",      "kho,checksum",         "kho,map-xxh64",  "kho,compatible", "kho,xxh64",
    "kho,deep-xxh64", "kho,future",           "linux,extra",    "start",      "size"};
constexpr const char* node_names[] = {"LUO", "kexec-metadata", "memblock", "kho-memfd-index", "opaque", "LUO@0",
                                      "trace", ""};
constexpr const char* formats[] = {"luo-v5",       "kexec-metadata-v1", "memblock-v1",  "kho-xarray-v1",
                                   "kho-luo-v1",   "kho-v4",            "kho-blob-v1",  "kho-radix-v1",
                                   "reserve-mem-v1"};

// The n-th node in the tree's order (0: the root), or the root past the last.
int pick_node(const void* f, u64 n) {
  int node = 0;
  for (int depth = 0; n > 0 && node >= 0; --n) node = fdt_next_node(f, node, &depth);
  return node >= 0 ? node : 0;
}

// A property value chosen by the input; returns its length in `v`.
int pick_value(fuzz::cursor& in, const handover& h, unsigned char (&v)[48]) {
  auto le = [&](u64 x, int n) {
    for (int i = 0; i < n; ++i) v[i] = static_cast<unsigned char>(x >> (8 * i));
    return n;
  };
  switch (in.take(1) % 7) {
    case 0:  // a page in use, maybe a little off
      return le(h.pages[in.take(1) % h.pages.size()].value + (in.take(1) % 4 == 0 ? in.take(2) % page : 0), 8);
    case 1:  // a small number (a size, a count)
      return le(in.take(2), 8);
    case 2: {  // a format name, NUL-terminated or not
      const char* s = formats[in.take(1) % std::size(formats)];
      const int n = static_cast<int>(std::strlen(s)) + (in.take(1) % 2 ? 1 : 0);
      std::memcpy(v, s, static_cast<size_t>(n));
      return n;
    }
    case 3:  // a state word
      return le(in.take(1) % 4, 4);
    case 4:  // the input's bytes
    {
      const int n = static_cast<int>(in.take(1) % sizeof v);
      for (int i = 0; i < n; ++i) v[i] = static_cast<unsigned char>(in.take(1));
      return n;
    }
    case 5:  // past memory's end, or wrapping
      return le(in.take(1) % 2 ? base + memory_bytes - in.take(1) : ~u64{0} - in.take(1), 8);
    default:
      return le(in.take(8), 8);
  }
}

// One libfdt edit of the tree at `f` (a page): read-write calls only on a tree libfdt
// accepts, as a forger's own tools would be.
void edit_fdt(fuzz::cursor& in, const handover& h, void* f) {
  const unsigned kind = static_cast<unsigned>(in.take(1)) % 6;
  if (kind == 5) {  // a raw byte, usually inside the tree
    const u64 total = fdt_check_full(f, page) == 0 ? fdt_totalsize(f) : page;
    const u64 off = in.take(2) % (in.take(1) % 8 ? total : page);
    static_cast<unsigned char*>(f)[off] = static_cast<unsigned char>(in.take(1));
    return;
  }
  if (fdt_check_full(f, page) != 0 || fdt_open_into(f, f, static_cast<int>(page)) != 0) return;
  const int node = pick_node(f, in.take(1) % 12);
  const char* name = prop_names[in.take(1) % std::size(prop_names)];
  unsigned char v[48];
  switch (kind) {
    case 0:
    case 1: {
      const int n = pick_value(in, h, v);
      (void)fdt_setprop(f, node, name, v, n);
      break;
    }
    case 2:
      (void)fdt_delprop(f, node, name);
      break;
    case 3: {  // a node, maybe a whole subtree entry
      const int child = fdt_add_subnode(f, node, node_names[in.take(1) % std::size(node_names)]);
      if (child < 0) break;
      for (const char* p : {kho_fdt_data, kho_fdt_size, kho_fdt_blob_checksum})
        if (in.take(1) % 4 != 0) (void)fdt_setprop(f, child, p, v, pick_value(in, h, v));
      break;
    }
    default:
      if (node != 0) (void)fdt_del_node(f, node);
      break;
  }
  (void)fdt_pack(f);
}

// The memblock sub-FDT edited; the root then names its new size (or not).
void edit_memblock(fuzz::cursor& in, const handover& h) {
  void* mb = at(h.memblock);
  edit_fdt(in, h, mb);
  void* f = at(h.fdt);
  if (in.take(1) % 4 == 0 || fdt_check_full(mb, page) != 0 || fdt_check_full(f, page) != 0) return;
  const int node = fdt_subnode_offset(f, 0, memblock_subtree);
  unsigned char v[8];
  impl::fdt_put_le64(v, fdt_totalsize(mb));
  if (node >= 0) (void)fdt_setprop_inplace(f, node, kho_fdt_size, v, 8);
}

// ---- the forger's seal -----------------------------------------------------------------

void reseal(const handover& h, const flat_memory& mem, source& scratch) {
  test::reseal_xarray<u64>(mem, h.xarray, u64{1} << 12);
  void* f = at(h.fdt);
  if (fdt_check_full(f, page) != 0) return;  // libfdt would read it no further
  int len = 0;
  if (const void* m = fdt_getprop(f, 0, kho_fdt_memory_map, &len); m && len == 8) {
    std::vector<u64> nodes(h.pages.size());
    auto v = attach_preserve_bitmap(mem, phys_addr{impl::fdt_le64(m)}, scratch, std::span<u64>(nodes));
    unsigned char sum[8];
    impl::fdt_put_le64(sum, v ? v->deep_checksum() : 0);
    if (v) (void)fdt_setprop_inplace(f, 0, kho_fdt_map_checksum, sum, 8);
  }
  int node;
  fdt_for_each_subnode(node, f, 0) {
    const void* d = fdt_getprop(f, node, kho_fdt_data, &len);
    if (d == nullptr || len != 8) continue;
    const void* s = fdt_getprop(f, node, kho_fdt_size, &len);
    if (s == nullptr || len != 8) continue;
    const u64 size = impl::fdt_le64(s);
    const void* b = mem.to_virt(phys_addr{impl::fdt_le64(d)}, size ? size : 1);
    if (b == nullptr) continue;
    unsigned char v[8];
    impl::fdt_put_le64(v, checksum(b, size));
    (void)fdt_setprop_inplace(f, node, kho_fdt_blob_checksum, v, 8);
  }
  const void* state = fdt_getprop(f, 0, kho_fdt_state, &len);
  if (state == nullptr || len != 4) return;
  const void* sum = fdt_getprop(f, 0, kho_fdt_checksum, &len);
  if (sum == nullptr || len != 8) return;
  unsigned char sealed[8];
  impl::fdt_put_le64(sealed, static_cast<u32>(handover_state::sealed));
  (void)fdt_setprop_inplace(f, 0, kho_fdt_state, sealed, 4);
  unsigned char v[8];
  impl::fdt_put_le64(v, impl::kho_fdt_root_checksum(f));
  (void)fdt_setprop_inplace(f, 0, kho_fdt_checksum, v, 8);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const handover h = build();
  std::memcpy(live, h.bytes.data(), h.bytes.size());  // past it, `live` stays zero
  fuzz::cursor in(data, size);
  const flat_memory mem(phys_addr{base}, memory_bytes, live);
  flat_memory smem(phys_addr{u64{1} << 46}, scratch_memory.size, scratch_memory);
  source scratch(smem, smem.base(), smem.end());

  live_pages pages;
  const unsigned flags = static_cast<unsigned>(in.take(1));
  while (!in.done()) {
    const unsigned op = static_cast<unsigned>(in.take(1)) % 8;
    if (op < 4)
      edit_fdt(in, h, at(h.fdt));
    else if (op == 4)
      edit_memblock(in, h);
    else
      fuzz::damage(in, h.pages, pages);
  }
  if ((flags & 7) != 7) reseal(h, mem, scratch);

  bool armed = false;
  const fuzz::guarded_memory g{mem, &armed};
  auto v = attach_kho_handover<12>(g, h.fdt, scratch);
  if (scratch.pages_in_use() != 0) __builtin_trap();  // scratch given back either way
  if (!v) return 0;
  // Accepted: the same bytes elsewhere are accepted alike, and every read stays inside.
  std::memcpy(moved, live, h.bytes.size());  // past it both stay zero
  const fuzz::guarded_memory g2{flat_memory(phys_addr{base}, memory_bytes, moved), &armed};
  armed = true;
  auto again = attach_kho_handover<12>(g2, h.fdt, scratch);
  if (!again || again->count() != v->count() || again->kho_sealed() != v->kho_sealed() ||
      again->generation() != v->generation() || again->memory_map() != v->memory_map())
    __builtin_trap();
  u64 seen = 0;
  again->for_each([&](const kho_subtree& t) {
    if (!again->find(t.name) || !subtree_format(t)) __builtin_trap();
    ++seen;
  });
  if (seen != v->count() || scratch.pages_in_use() != 0) __builtin_trap();
  return 0;
}
