// LUO state against hostile bytes. Random damage must be caught (checksums); forged
// state with valid checksums must still be refused with its named error, at the
// offending structure, address and depth: counts over capacity, cycles and shared
// blocks, names without their NUL, duplicate names and tokens, missing or miscounted
// shared objects, counts the root disagrees with, truncated memory, exhausted scratch.
#include <kho/luo.hpp>
#include <kho/model/physical_memory.hpp>
#include <kho/page_owners.hpp>
#include <kho/preserve_bitmap.hpp>

#include "test_arena.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <set>

namespace kho::test::corrupt_luo_test {
namespace {

using source = arena<12>::source_type;
using writer = luo_writer<source>;

struct sealed_luo {
  arena<12> mem{u64{16} << 20};
  arena<12> scratch{u64{16} << 20, u64{1} << 44};
  phys_addr root{};

  // Three sessions; "vm" holds 60 files (two blocks), two sharing an FLB. Every file
  // and the FLB have a state page of their own (vm's file 0 has none: data 0).
  sealed_luo() {
    auto w = writer::create(mem.pages(), 9);
    const luo_flb iommu{"iommufd:0", state_page()};
    EXPECT_TRUE(w->create_session("vm"));
    EXPECT_TRUE(w->create_session("db"));
    EXPECT_TRUE(w->create_session("web"));
    for (u64 t = 0; t < 60; ++t)
      EXPECT_TRUE(w->preserve_file("vm", {t, "memfd-v1", t ? state_page() : phys_addr{}, 0},
                                   t < 2 ? &iommu : nullptr));
    EXPECT_TRUE(w->preserve_file("db", {1, "memfd-v1", state_page(), 0}));
    EXPECT_TRUE(w->preserve_file("web", {1, "memfd-v1", state_page(), 0}));
    root = w->seal()->root;
  }
  phys_addr state_page() { return *alloc_zeroed(mem.pages(), order{0}, 4096); }

  luo_root& r() { return *reinterpret_cast<luo_root*>(mem.bytes(root)); }
  template <class T>
  T& at(u64 pa) { return *reinterpret_cast<T*>(mem.bytes(phys_addr{pa})); }
  block_header& header(u64 block) { return at<block_header>(block); }
  luo_session_entry& session(u64 i) {
    return reinterpret_cast<luo_session_entry*>(mem.bytes(phys_addr{r().sessions.get()}) + 16)[i];
  }
  // Entry i of the first block of session s's files (51 fit).
  luo_file_entry& file(u64 s, u64 i) {
    return reinterpret_cast<luo_file_entry*>(mem.bytes(phys_addr{session(s).files.get()}) + 16)[i];
  }
  luo_flb_entry& flb(u64 i) {
    return reinterpret_cast<luo_flb_entry*>(mem.bytes(phys_addr{r().flbs.get()}) + 16)[i];
  }
  phys_addr entry_pa(const void* e) {
    return mem.memory().base() + static_cast<u64>(static_cast<const unsigned char*>(e) -
                                                  static_cast<unsigned char*>(mem.memory().virt()));
  }

  // A forger who knows the format: recomputes the content checksum and the root's.
  void reseal() {
    const flat_memory m = mem.memory();
    XXH64_state_t st;
    XXH64_reset(&st, 0);
    detail::hash_chain<luo_session_entry>(st, m, phys_addr{r().sessions.get()});
    for (const luo_session_entry& e :
         block_list_view<luo_session_entry, flat_memory>::unchecked(m, phys_addr{r().sessions.get()}, 0, 0))
      detail::hash_chain<luo_file_entry>(st, m, phys_addr{e.files.get()});
    detail::hash_chain<luo_flb_entry>(st, m, phys_addr{r().flbs.get()});
    r().content_checksum.set(XXH64_digest(&st));
    reseal_root();
  }
  void reseal_root() {
    r().checksum.set(checksum_with_hole(&r(), sizeof(luo_root), offsetof(luo_root, checksum)));
  }
  result<luo_view<flat_memory, source>> attach(const luo_limits& limits = {}) {
    return attach_luo(mem.memory(), root, scratch.pages(), limits);
  }
  errc code() { return attach().code(); }
};

void expect_error(sealed_luo& s, errc code, const char* structure, phys_addr at, u32 depth) {
  auto v = s.attach();
  ASSERT_FALSE(v.has_value());
  EXPECT_EQ(v.code(), code) << to_string(v.code());
  EXPECT_STREQ(v.err().loc.structure, structure);
  EXPECT_EQ(v.err().loc.at, at);
  EXPECT_EQ(v.err().loc.depth, depth);
}

TEST(CorruptLuo, IntactStateAttaches) {
  sealed_luo s;
  auto v = s.attach();
  ASSERT_TRUE(v) << to_string(v.code());
  EXPECT_EQ(v->file_count(), 62u);
  EXPECT_EQ(v->block_count(), 6u);  // sessions 1, vm 2, db 1, web 1, flbs 1
}

TEST(CorruptLuo, EveryBitFlipOfTheRootIsRefused) {
  sealed_luo s;
  std::set<errc> seen;
  for (u64 bit = 0; bit < sizeof(luo_root) * 8; ++bit) {
    unsigned char* b = s.mem.bytes(s.root);
    b[bit / 8] ^= static_cast<unsigned char>(1u << (bit % 8));
    const errc e = s.code();
    b[bit / 8] ^= static_cast<unsigned char>(1u << (bit % 8));
    EXPECT_NE(e, errc::ok) << "bit " << bit;
    seen.insert(e);
  }
  for (errc e : {errc::bad_magic, errc::bad_compatible, errc::bad_version, errc::page_size_mismatch,
                 errc::torn, errc::bad_checksum})
    EXPECT_TRUE(seen.count(e)) << to_string(e);
  EXPECT_EQ(s.code(), errc::ok);
}

TEST(CorruptLuo, EveryBitFlipOfEveryUsedBlockByteIsRefused) {
  sealed_luo s;
  const flat_memory m = s.mem.memory();
  std::vector<std::pair<phys_addr, u64>> used;  // block, used bytes
  auto add_chain = [&](u64 head, u64 entry) {
    for (phys_addr b{head}; b; b = phys_addr{s.header(b.value).next.get()})
      used.emplace_back(b, 16 + s.header(b.value).count.get() * entry);
  };
  add_chain(s.r().sessions.get(), sizeof(luo_session_entry));
  for (u64 i = 0; i < 3; ++i) add_chain(s.session(i).files.get(), sizeof(luo_file_entry));
  add_chain(s.r().flbs.get(), sizeof(luo_flb_entry));
  ASSERT_EQ(used.size(), 6u);
  u64 flips = 0;
  for (auto [block, bytes] : used) {
    // Every bit of the headers and the first entries, then every 13th byte.
    for (u64 byte = 0; byte < bytes; byte += byte < 112 ? 1 : 13) {
      for (unsigned bit = 0; bit < 8; ++bit) {
        s.mem.bytes(block)[byte] ^= static_cast<unsigned char>(1u << bit);
        const errc e = s.code();
        s.mem.bytes(block)[byte] ^= static_cast<unsigned char>(1u << bit);
        ASSERT_NE(e, errc::ok) << std::hex << block.value << "+" << byte << " bit " << bit;
        ++flips;
      }
    }
  }
  EXPECT_GT(flips, 5000u);
  (void)m;
  EXPECT_EQ(s.code(), errc::ok);
}

TEST(CorruptLuo, CountOverCapacityInAFileBlock) {
  sealed_luo s;
  const u64 block = s.session(0).files.get();
  s.header(block).count.set(52);
  expect_error(s, errc::bad_count, "luo-files", phys_addr{block}, 2);
  s.header(block).count.set(0);
  expect_error(s, errc::bad_count, "luo-files", phys_addr{block}, 2);
}

TEST(CorruptLuo, CycleInAFileChain) {
  sealed_luo s;
  const u64 first = s.session(0).files.get();
  const u64 second = s.header(first).next.get();
  s.header(second).next.set(first);
  auto v = s.attach();
  EXPECT_EQ(v.code(), errc::cycle);
  EXPECT_STREQ(v.err().loc.structure, "luo-files");
  EXPECT_EQ(v.err().loc.depth, 2u);
}

TEST(CorruptLuo, BlockSharedByTwoListsIsACycle) {
  sealed_luo s;
  // "web" names db's file block as its own: each list alone is fine.
  s.session(2).files.set(s.session(1).files.get());
  s.reseal();
  expect_error(s, errc::cycle, "luo-files", phys_addr{s.session(1).files.get()}, 2);
  // The session list pointing into a file list is caught the same way.
  sealed_luo t;
  t.r().flbs.set(t.session(1).files.get());
  t.reseal_root();
  EXPECT_EQ(t.code(), errc::cycle);
}

TEST(CorruptLuo, NamesWithoutNulOrWithStaleBytes) {
  {
    sealed_luo s;
    std::memset(s.session(1).name, 'x', luo_session_name_len);
    expect_error(s, errc::bad_string, "luo-sessions", s.entry_pa(&s.session(1)), 1);
  }
  {
    sealed_luo s;
    s.session(0).name[40] = 'z';
    expect_error(s, errc::bad_string, "luo-sessions", s.entry_pa(&s.session(0)), 1);
  }
  {
    sealed_luo s;
    std::memset(s.session(0).name, 0, luo_session_name_len);
    expect_error(s, errc::bad_string, "luo-sessions", s.entry_pa(&s.session(0)), 1);
  }
  {
    sealed_luo s;
    std::memset(s.file(0, 7).compatible, 'c', luo_compatible_len);
    expect_error(s, errc::bad_string, "luo-files", s.entry_pa(&s.file(0, 7)), 2);
  }
  {
    sealed_luo s;
    std::memset(s.flb(0).name, 'f', luo_flb_name_len);
    expect_error(s, errc::bad_string, "luo-flbs", s.entry_pa(&s.flb(0)), 1);
  }
}

TEST(CorruptLuo, DuplicateSessionNames) {
  sealed_luo s;
  std::memcpy(s.session(2).name, s.session(0).name, luo_session_name_len);
  s.reseal();
  expect_error(s, errc::duplicate, "luo-sessions", s.entry_pa(&s.session(2)), 1);
}

TEST(CorruptLuo, DuplicateTokensInASessionButNotAcross) {
  sealed_luo s;
  s.file(0, 45).token.set(3);
  s.reseal();
  expect_error(s, errc::duplicate, "luo-files", s.entry_pa(&s.file(0, 45)), 2);
  sealed_luo t;  // db and web both use token 1: fine, tokens are per session
  EXPECT_EQ(t.file(1, 0).token.get(), t.file(2, 0).token.get());
  EXPECT_EQ(t.code(), errc::ok);
}

TEST(CorruptLuo, FileNamingAMissingFlb) {
  sealed_luo s;
  s.file(1, 0).flb.set(77);
  s.reseal();
  expect_error(s, errc::missing_dependency, "luo-files", s.entry_pa(&s.file(1, 0)), 2);
}

TEST(CorruptLuo, FlbRefsMustMatchTheFilesThatNameIt) {
  for (u64 refs : {u64{1}, u64{3}, u64{0}}) {
    sealed_luo s;
    s.flb(0).refs.set(refs);
    s.reseal();
    expect_error(s, errc::bad_count, "luo-flbs", s.entry_pa(&s.flb(0)), 1);
  }
}

TEST(CorruptLuo, FlbIdsNonzeroAndUnique) {
  {
    sealed_luo s;
    s.flb(0).id.set(0);
    s.reseal();
    expect_error(s, errc::out_of_range, "luo-flbs", s.entry_pa(&s.flb(0)), 1);
  }
  {
    // A second FLB with the first one's id (and another name).
    sealed_luo s;
    luo_flb_entry copy = s.flb(0);
    std::memset(copy.name, 0, luo_flb_name_len);
    std::memcpy(copy.name, "other", 5);
    const u64 block = s.r().flbs.get();
    std::memcpy(&s.flb(1), &copy, sizeof copy);
    s.header(block).count.set(2);
    s.r().flb_count.set(2);
    s.reseal();
    expect_error(s, errc::duplicate, "luo-flbs", s.entry_pa(&s.flb(1)), 1);
  }
}

TEST(CorruptLuo, CountsTheRootDisagreesWith) {
  {
    sealed_luo s;
    s.r().session_count.set(4);
    s.reseal_root();
    expect_error(s, errc::bad_count, "luo", s.root, 0);
  }
  {
    sealed_luo s;
    s.r().file_count.set(61);
    s.reseal_root();
    expect_error(s, errc::bad_count, "luo", s.root, 0);
  }
  {
    sealed_luo s;
    s.session(0).file_count.set(59);
    s.reseal();
    expect_error(s, errc::bad_count, "luo-sessions", s.entry_pa(&s.session(0)), 1);
  }
  {
    sealed_luo s;
    s.r().block_count.set(5);
    s.reseal_root();
    EXPECT_EQ(s.code(), errc::bad_count);
    s.r().block_count.set(7);
    s.reseal_root();
    EXPECT_EQ(s.code(), errc::bad_count);
  }
}

TEST(CorruptLuo, BlockBudget) {
  sealed_luo s;
  EXPECT_EQ(s.attach({5}).code(), errc::budget_exceeded);
  EXPECT_TRUE(s.attach({6}));
  s.r().block_count.set(u64{1} << 60);  // a forged claim does not buy scratch
  s.reseal_root();
  EXPECT_EQ(s.attach({linux_max_blocks}).code(), errc::budget_exceeded);
  expect_error(s, errc::bad_count, "luo", s.root, 0);  // the six blocks walked, no more
}

TEST(CorruptLuo, NotSealedTornAndTruncated) {
  sealed_luo s;
  s.r().state.set(static_cast<u32>(luo_state::open));
  EXPECT_EQ(s.code(), errc::not_sealed);
  s.r().state.set(0x12345678);
  EXPECT_EQ(s.code(), errc::torn);
  s.r().state.set(static_cast<u32>(luo_state::sealed));
  ASSERT_EQ(s.code(), errc::ok);
  const flat_memory m = s.mem.memory();
  const phys_addr last_file_block{s.header(s.session(0).files.get()).next.get()};
  flat_memory cut(m.base(), (last_file_block - m.base()) + 100, m.virt());
  auto v = attach_luo(cut, s.root, s.scratch.pages());
  EXPECT_EQ(v.code(), errc::out_of_bounds);
  EXPECT_EQ(v.err().loc.at, last_file_block);
  EXPECT_EQ(attach_luo(m, s.root + 8, s.scratch.pages()).code(), errc::misaligned);
  EXPECT_EQ(attach_luo(m, m.end(), s.scratch.pages()).code(), errc::out_of_bounds);
}

TEST(CorruptLuo, ScratchExhausted) {
  sealed_luo s;
  arena<12> tiny(u64{2} << 12, u64{1} << 45);  // two pages: not enough for four indexes
  EXPECT_EQ(attach_luo(s.mem.memory(), s.root, tiny.pages()).code(), errc::out_of_memory);
  EXPECT_EQ(tiny.pages().pages_in_use(), 0u);  // what it took is given back
}

// Every check of the root, forged and re-sealed, named at the root (depth 0).
TEST(CorruptLuo, EachRootCheckIsLocatedAtTheRoot) {
  struct forgery {
    void (*apply)(luo_root&);
    errc want;
  };
  const forgery forgeries[] = {
      {[](luo_root& r) { r.magic.set(r.magic.get() ^ 1); }, errc::bad_magic},
      {[](luo_root& r) { r.compatible[8] = '2'; }, errc::bad_compatible},
      {[](luo_root& r) { std::memset(r.compatible, 'k', sizeof r.compatible); }, errc::bad_compatible},
      {[](luo_root& r) { r.version_major.set(2); }, errc::bad_version},
      {[](luo_root& r) { r.page_shift.set(14); }, errc::page_size_mismatch},
      {[](luo_root& r) { r.state.set(static_cast<u32>(luo_state::open)); }, errc::not_sealed},
      {[](luo_root& r) { r.state.set(0x5345414d); }, errc::torn},
      {[](luo_root& r) { r.liveupdate_number.set(r.liveupdate_number.get() + 1); }, errc::ok},
      {[](luo_root& r) { r.version_minor.set(7); }, errc::ok},  // higher minors are read
  };
  for (const forgery& f : forgeries) {
    sealed_luo s;
    f.apply(s.r());
    s.reseal_root();
    if (f.want == errc::ok) {
      EXPECT_EQ(s.code(), errc::ok);
      continue;
    }
    expect_error(s, f.want, "luo", s.root, 0);
  }
  {
    sealed_luo s;  // not re-sealed: the checksum is what refuses
    s.r().liveupdate_number.set(1234);
    expect_error(s, errc::bad_checksum, "luo", s.root, 0);
  }
  {
    sealed_luo s;  // the content checksum, over a file entry's flags (no other rule sees them)
    s.file(0, 9).flags.set(77);
    s.reseal_root();
    expect_error(s, errc::bad_checksum, "luo", s.root, 0);
  }
  {
    sealed_luo s;
    auto v = attach_luo(s.mem.memory(), s.root + 8, s.scratch.pages());
    EXPECT_EQ(v.code(), errc::misaligned);
    EXPECT_EQ(v.err().loc.at, s.root + 8);
    const phys_addr end = s.mem.memory().end();
    auto w = attach_luo(s.mem.memory(), end, s.scratch.pages());
    EXPECT_EQ(w.code(), errc::out_of_bounds);
    EXPECT_EQ(w.err().loc.at, end);
    EXPECT_STREQ(w.err().loc.structure, "luo");
  }
  {
    sealed_luo s;
    auto v = s.attach({5});
    ASSERT_EQ(v.code(), errc::budget_exceeded);
    EXPECT_EQ(v.err().loc.at, s.root);
  }
}

TEST(CorruptLuo, RootReservedFieldsMustBeZero) {
  {
    sealed_luo s;
    s.r().reserved0.set(1);
    s.reseal_root();
    expect_error(s, errc::reserved_nonzero, "luo", s.root + offsetof(luo_root, reserved0), 0);
  }
  {
    sealed_luo s;
    s.r().reserved1.set(0x80000000u);
    s.reseal_root();
    expect_error(s, errc::reserved_nonzero, "luo", s.root + offsetof(luo_root, reserved1), 0);
  }
}

TEST(CorruptLuo, FlbReservedMustBeZero) {
  sealed_luo s;
  s.flb(0).reserved.set(u64{1} << 63);
  s.reseal();
  expect_error(s, errc::reserved_nonzero, "luo-flbs", s.entry_pa(&s.flb(0)), 1);
}

// kho's writer zeroes what erase vacates, and kho-luo-v1 says the bytes after a
// block's last entry are zero; they are outside the content checksum, so only this
// check stands between a stale byte there and a reader that trusts it.
TEST(CorruptLuo, StaleBytesAfterABlocksLastEntry) {
  {
    sealed_luo s;  // db's one file: entry 0, then zero to the end of the page
    const u64 block = s.session(1).files.get();
    s.mem.bytes(phys_addr{block})[16 + 80 + 5] = 0xee;
    expect_error(s, errc::reserved_nonzero, "luo-files", phys_addr{block + 16 + 80 + 5}, 2);
  }
  {
    sealed_luo s;  // the very last byte of the session block
    const u64 block = s.r().sessions.get();
    s.mem.bytes(phys_addr{block})[4095] = 1;
    expect_error(s, errc::reserved_nonzero, "luo-sessions", phys_addr{block + 4095}, 1);
  }
  {
    sealed_luo s;  // a count lowered by one leaves a whole stale FLB-sized entry behind
    const u64 block = s.r().flbs.get();
    luo_flb_entry ghost = s.flb(0);
    ghost.id.set(5);
    std::memcpy(&s.flb(1), &ghost, sizeof ghost);
    expect_error(s, errc::reserved_nonzero, "luo-flbs", phys_addr{block + 16 + 80}, 1);
  }
}

TEST(CorruptLuo, DuplicateFlbNames) {
  sealed_luo s;
  luo_flb_entry copy = s.flb(0);  // same name, another id, another state page
  copy.id.set(99);
  copy.data.set(s.state_page().value);
  copy.refs.set(1);
  std::memcpy(&s.flb(1), &copy, sizeof copy);
  s.header(s.r().flbs.get()).count.set(2);
  s.r().flb_count.set(2);
  s.reseal();
  expect_error(s, errc::duplicate, "luo-flbs", s.entry_pa(&s.flb(1)), 1);
}

// A file's data is 0 or the page where its handler's state starts: page-aligned and
// inside memory. The same holds for an FLB's data.
TEST(CorruptLuo, FileAndFlbDataMustBeAPageInMemory) {
  {
    sealed_luo s;
    s.file(0, 3).data.set(s.file(0, 3).data.get() + 8);
    s.reseal();
    expect_error(s, errc::misaligned, "luo-files", s.entry_pa(&s.file(0, 3)), 2);
  }
  {
    sealed_luo s;
    s.file(2, 0).data.set(s.mem.memory().end().value);  // the page just past memory
    s.reseal();
    expect_error(s, errc::out_of_bounds, "luo-files", s.entry_pa(&s.file(2, 0)), 2);
  }
  {
    sealed_luo s;
    s.file(2, 0).data.set(0x1000);  // page-aligned, but no memory there
    s.reseal();
    expect_error(s, errc::out_of_bounds, "luo-files", s.entry_pa(&s.file(2, 0)), 2);
  }
  {
    sealed_luo s;
    s.flb(0).data.set(s.flb(0).data.get() | 0x800);
    s.reseal();
    expect_error(s, errc::misaligned, "luo-flbs", s.entry_pa(&s.flb(0)), 1);
  }
  {
    sealed_luo s;
    s.flb(0).data.set(u64{1} << 62);
    s.reseal();
    expect_error(s, errc::out_of_bounds, "luo-flbs", s.entry_pa(&s.flb(0)), 1);
  }
  {
    sealed_luo s;  // 0: no state in memory, which is fine
    s.file(1, 0).data.set(0);
    s.flb(0).data.set(0);
    s.reseal();
    EXPECT_EQ(s.code(), errc::ok);
  }
}

// A root that claims 2^40 blocks and has three, in a sparse 1 TiB image: scratch grows
// with the three blocks walked, and the claim is refused when the walk ends short of it.
TEST(CorruptLuo, LyingBlockCountInATebibyteImage) {
  constexpr u64 tib = u64{1} << 40, base = u64{1} << 40;
  auto pm = model::physical_memory::create(base, tib);
  const flat_memory mem = pm.memory();
  source pages(mem, phys_addr{base + (u64{512} << 30)}, phys_addr{base + tib});
  auto w = writer::create(pages, 3);
  ASSERT_TRUE(w);
  ASSERT_TRUE(w->create_session("vm"));
  for (u64 t = 0; t < 60; ++t) ASSERT_TRUE(w->preserve_file("vm", {t, "memfd-v1", phys_addr{}, 0}));
  const phys_addr root = w->seal()->root;
  auto* r = static_cast<luo_root*>(mem.to_virt(root, sizeof(luo_root)));
  for (u64 claim : {u64{1} << 40, tib / 4096, u64{4}}) {
    r->block_count.set(claim);
    r->checksum.set(checksum_with_hole(r, sizeof(luo_root), offsetof(luo_root, checksum)));
    scratch_arena<12> scratch;
    auto v = attach_luo(mem, root, scratch.pages());
    ASSERT_FALSE(v.has_value());
    EXPECT_EQ(v.code(), errc::bad_count) << claim;
    EXPECT_STREQ(v.err().loc.structure, "luo");
    EXPECT_EQ(v.err().loc.at, root);
    EXPECT_EQ(v.err().loc.depth, 0u);
    EXPECT_LE(scratch.pages().high_water() - phys_addr{scratch_arena<12>::base}, u64{64} << 10);
    EXPECT_EQ(scratch.pages().pages_in_use(), 0u);
  }
  // Claims of sessions and files refuse the same way, before any index is sized.
  r->block_count.set(3);
  r->session_count.set(u64{1} << 40);
  r->checksum.set(checksum_with_hole(r, sizeof(luo_root), offsetof(luo_root, checksum)));
  scratch_arena<12> scratch;
  auto v = attach_luo(mem, root, scratch.pages());
  EXPECT_EQ(v.code(), errc::bad_count);
  EXPECT_EQ(v.err().loc.at, root);
  EXPECT_EQ(scratch.pages().pages_in_use(), 0u);
}

// ---- claim_pages: what each structure reaches, once, and aliases across structures.

using owners_type = page_owners<scratch_arena<12>::source_type>;

// Claims `first`'s pages, then `second`'s in the same table: the second must collide,
// at `loc` (the page and its claimant), with `other` (the first owner and its root).
template <class First, class Second>
void expect_second_claim_aliased(const First& first, const Second& second, where loc, where other) {
  scratch_arena<12> scratch;
  owners_type owners(scratch.pages());
  ASSERT_TRUE(first.claim_pages(owners));
  kho::status st = second.claim_pages(owners);
  ASSERT_EQ(st.code(), errc::aliased) << to_string(st.code());
  EXPECT_STREQ(st.err().loc.structure, loc.structure);
  EXPECT_EQ(st.err().loc.at, loc.at);
  EXPECT_STREQ(st.err().other.structure, other.structure);
  EXPECT_EQ(st.err().other.at, other.at);
}

TEST(LuoClaimPages, RootBlocksAndStatePagesOnce) {
  sealed_luo s;
  auto v = s.attach();
  ASSERT_TRUE(v);
  scratch_arena<12> scratch;
  owners_type owners(scratch.pages());
  ASSERT_TRUE(v->claim_pages(owners));
  // root 1, blocks 6, state pages: 59 of vm's files (file 0 has none), db's, web's, the FLB's.
  EXPECT_EQ(owners.size(), 1u + 6u + 59u + 2u + 1u);
  EXPECT_STREQ(owners.find(s.root)->structure, "luo");
  EXPECT_NE(owners.find(phys_addr{s.file(1, 0).data.get()}), nullptr);
  EXPECT_NE(owners.find(phys_addr{s.flb(0).data.get()}), nullptr);
}

TEST(LuoClaimPages, TwoFilesNamingOneStatePageAreAliased) {
  sealed_luo s;
  s.file(2, 0).data.set(s.file(1, 0).data.get());  // web's file names db's state
  s.reseal();
  auto v = s.attach();
  ASSERT_TRUE(v) << "each file alone is valid";
  scratch_arena<12> scratch;
  owners_type owners(scratch.pages());
  kho::status st = v->claim_pages(owners);
  ASSERT_EQ(st.code(), errc::aliased);
  EXPECT_EQ(st.err().loc.at, phys_addr{s.file(1, 0).data.get()});
  EXPECT_STREQ(st.err().other.structure, "luo");
}

TEST(LuoClaimPages, RadixLeafThatIsTheLuoRootIsAliased) {
  sealed_luo s;
  auto map = preserve_bitmap<source>::create(s.mem.pages(), false);
  ASSERT_TRUE(map);
  ASSERT_TRUE(map->preserve(s.root, order{0}));
  // The old kernel's bug: the level-1 table names the LUO root as its leaf.
  u64* table = reinterpret_cast<u64*>(s.mem.bytes(map->root()));
  for (int level = 5; level > 1; --level) {
    u64 next = 0;
    for (u64 i = 0; i < 512 && next == 0; ++i) next = table[i];
    table = reinterpret_cast<u64*>(s.mem.bytes(phys_addr{next}));
  }
  u64* slot = table;
  while (*slot == 0) ++slot;
  *slot = s.root.value;
  std::vector<u64> nodes(16);
  auto radix = attach_tree(s.mem.memory(), map->root(), nodes);
  ASSERT_TRUE(radix) << to_string(radix.code());
  auto luo = s.attach();
  ASSERT_TRUE(luo);
  expect_second_claim_aliased(*radix, *luo, where{"luo", s.root, 0}, where{"radix", map->root(), 0});
}

TEST(LuoClaimPages, SessionBlockThatIsAnotherListsBlockIsAliased) {
  sealed_luo s;
  // A bare block list (say a second handover entry) whose head is LUO's session block.
  const phys_addr sessions{s.r().sessions.get()};
  auto list = attach_block_list<luo_session_entry>(s.mem.memory(), sessions);
  ASSERT_TRUE(list);
  auto luo = s.attach();
  ASSERT_TRUE(luo);
  expect_second_claim_aliased(*list, *luo, where{"luo", sessions, 0}, where{"block_list", sessions, 0});
}

}  // namespace
}  // namespace kho::test::corrupt_luo_test
