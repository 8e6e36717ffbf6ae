// LUO state: the writer's rules, the next kernel's retrieve-once / finish / report,
// symmetric FLB reference counts, the way through the handover root, and scale.
#include <kho/handover.hpp>
#include <kho/luo.hpp>
#include <kho/model/demo_luo.hpp>
#include <kho/model/inspect_luo.hpp>

#include "test_arena.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

namespace kho::test::luo_test {
namespace {

using source = arena<12>::source_type;
using writer = luo_writer<source>;
using view = luo_view<flat_memory, source>;

// Preserved memory and, elsewhere in the physical map, the next kernel's scratch.
struct machine {
  arena<12> mem;
  arena<12> scratch;
  explicit machine(u64 bytes = u64{64} << 20)
      : mem(bytes), scratch(bytes, u64{1} << 44) {}

  writer make(u64 number = 1) {
    auto w = writer::create(mem.pages(), number);
    EXPECT_TRUE(w.has_value());
    return *w;
  }
  // Seals and attaches at another virtual address, as the next kernel.
  result<view> kexec(writer& w) {
    auto sealed = w.seal();
    EXPECT_TRUE(sealed.has_value());
    return attach_luo(mem.remap(), sealed->root, scratch.pages());
  }
};

// Handler state: page i (mod 16384) of the arena's 64 MiB at 4 GiB, as the reader
// requires of a nonzero data.
phys_addr state_page(u64 i) { return phys_addr{(u64{4} << 30) + (i % 16384) * 4096}; }

std::string name(const char* prefix, u64 i) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%s-%07llu", prefix, static_cast<unsigned long long>(i));
  return buf;
}

TEST(Luo, WriterRefusesBadNamesDuplicatesAndUnknowns) {
  machine m;
  writer w = m.make();
  EXPECT_EQ(w.create_session("").code(), errc::bad_string);
  EXPECT_EQ(w.create_session(std::string(64, 'x').c_str()).code(), errc::bad_string);
  EXPECT_TRUE(w.create_session(std::string(63, 'x').c_str()));
  EXPECT_TRUE(w.create_session("svc"));
  EXPECT_EQ(w.create_session("svc").code(), errc::already_exists);
  EXPECT_EQ(w.preserve_file("nope", {1, "memfd-v1", state_page(1), 0}).code(), errc::not_found);
  EXPECT_EQ(w.preserve_file("svc", {1, "", state_page(1), 0}).code(), errc::bad_string);
  EXPECT_EQ(w.preserve_file("svc", {1, std::string(48, 'c').c_str(), state_page(1), 0}).code(),
            errc::bad_string);
  EXPECT_TRUE(w.preserve_file("svc", {1, std::string(47, 'c').c_str(), state_page(1), 0}));
  EXPECT_EQ(w.preserve_file("svc", {1, "memfd-v1", state_page(2), 0}).code(), errc::already_exists);
  // data is 0 or the page where the handler's state starts, in memory.
  EXPECT_EQ(w.preserve_file("svc", {9, "memfd-v1", state_page(2) + 8, 0}).code(), errc::misaligned);
  EXPECT_EQ(w.preserve_file("svc", {9, "memfd-v1", phys_addr{0x1000}, 0}).code(), errc::out_of_bounds);
  const luo_flb loose{"x:0", state_page(2) + 8};
  EXPECT_EQ(w.preserve_file("svc", {9, "memfd-v1", phys_addr{}, 0}, &loose).code(), errc::misaligned);
  const luo_flb a{"iommufd:0", state_page(0x1000)}, other{"iommufd:0", state_page(0x2000)};
  EXPECT_TRUE(w.preserve_file("svc", {2, "vfio-v1", state_page(3), 0}, &a));
  EXPECT_EQ(w.preserve_file("svc", {3, "vfio-v1", state_page(3), 0}, &other).code(),
            errc::invalid_argument);
  EXPECT_EQ(w.flb_refs("iommufd:0"), 1u);
  EXPECT_EQ(w.unpreserve_file("svc", 99).code(), errc::not_found);
  EXPECT_EQ(w.unpreserve_file("nope", 1).code(), errc::not_found);
  EXPECT_EQ(w.destroy_session("nope").code(), errc::not_found);
  EXPECT_EQ(w.session_count(), 2u);
  EXPECT_EQ(w.file_count(), 2u);
  EXPECT_EQ(*w.file_count("svc"), 2u);
}

TEST(Luo, ThroughTheHandoverRootAtAnotherAddress) {
  machine m;
  writer w = m.make(41);
  ASSERT_TRUE(w.create_session("db"));
  ASSERT_TRUE(w.preserve_file("db", {7, "memfd-v1", state_page(0x5000), 3}));
  auto sealed = w.seal();
  ASSERT_TRUE(sealed);
  auto root = handover_writer<source>::create(m.mem.pages());
  ASSERT_TRUE(root);
  ASSERT_TRUE(root->add(luo_entry_name, luo_compatible, sealed->root, sealed->size));
  ASSERT_TRUE(root->seal());
  const flat_memory next = m.mem.remap();
  auto h = attach_handover_root(next, root->root());
  ASSERT_TRUE(h);
  auto e = h->find_compatible(luo_compatible);
  ASSERT_TRUE(e);
  auto v = attach_luo(next, phys_addr{(*e)->phys.get()}, m.scratch.pages());
  ASSERT_TRUE(v) << to_string(v.code());
  EXPECT_EQ(v->liveupdate_number(), 41u);
  auto f = v->retrieve("db", 7);
  ASSERT_TRUE(f);
  EXPECT_STREQ(f->file->compatible, "memfd-v1");
  EXPECT_EQ(f->file->data.get(), state_page(0x5000).value);
  EXPECT_EQ(f->file->flags.get(), 3u);
  EXPECT_EQ(f->flb, nullptr);
}

TEST(Luo, RetrieveExactlyOnceFinishAndReport) {
  machine m;
  writer w = m.make();
  ASSERT_TRUE(w.create_session("a"));
  ASSERT_TRUE(w.create_session("b"));
  for (u64 t = 0; t < 5; ++t) ASSERT_TRUE(w.preserve_file("a", {t, "memfd-v1", state_page(t), 0}));
  ASSERT_TRUE(w.preserve_file("b", {0, "memfd-v1", state_page(9), 0}));
  auto v = m.kexec(w);
  ASSERT_TRUE(v);
  ASSERT_TRUE(v->retrieve("a", 1));
  EXPECT_EQ(v->retrieve("a", 1).code(), errc::already_retrieved);
  EXPECT_EQ(v->retrieve("a", 5).code(), errc::not_found);
  EXPECT_EQ(v->retrieve("c", 0).code(), errc::not_found);
  ASSERT_TRUE(v->retrieve("a", 3));
  EXPECT_TRUE(*v->is_retrieved("a", 3));
  EXPECT_FALSE(*v->is_retrieved("a", 0));
  auto done = v->finish("a");
  ASSERT_TRUE(done);
  EXPECT_EQ(done->files, 5u);
  EXPECT_EQ(done->unreclaimed, 3u);
  EXPECT_EQ(v->finish("a").code(), errc::not_found);
  EXPECT_EQ(v->retrieve("a", 0).code(), errc::not_found);
  std::vector<std::pair<std::string, u64>> report;
  const u64 n = v->for_each_unreclaimed([&](const luo_unreclaimed& u) {
    report.emplace_back(std::string(u.session->name) + (u.session_finished ? "+" : "-"),
                        u.file->token.get());
  });
  EXPECT_EQ(n, 4u);
  const std::vector<std::pair<std::string, u64>> want = {{"a+", 0}, {"a+", 4}, {"a+", 2}, {"b-", 0}};
  auto sorted = report;
  std::sort(sorted.begin(), sorted.end());
  auto want_sorted = want;
  std::sort(want_sorted.begin(), want_sorted.end());
  EXPECT_EQ(sorted, want_sorted);
}

TEST(Luo, SharedObjectsAreCountedTheSameWayInBothKernels) {
  machine m;
  writer w = m.make();
  const luo_flb iommu{"iommufd:0", state_page(0x7000)}, kvm{"kvm:1", state_page(0x8000)};
  ASSERT_TRUE(w.create_session("vm-a"));
  ASSERT_TRUE(w.create_session("vm-b"));
  ASSERT_TRUE(w.preserve_file("vm-a", {1, "vfio-v1", state_page(1), 0}, &iommu));
  ASSERT_TRUE(w.preserve_file("vm-a", {2, "vfio-v1", state_page(2), 0}, &iommu));
  ASSERT_TRUE(w.preserve_file("vm-b", {1, "vfio-v1", state_page(3), 0}, &iommu));
  ASSERT_TRUE(w.preserve_file("vm-b", {2, "kvm-v1", state_page(4), 0}, &kvm));
  EXPECT_EQ(w.flb_refs("iommufd:0"), 3u);
  EXPECT_EQ(w.flb_count(), 2u);
  // The last dependent file takes its FLB with it; a new file brings it back.
  ASSERT_TRUE(w.unpreserve_file("vm-b", 2));
  EXPECT_EQ(w.flb_refs("kvm:1"), 0u);
  EXPECT_EQ(w.flb_count(), 1u);
  ASSERT_TRUE(w.preserve_file("vm-b", {3, "kvm-v1", state_page(4), 0}, &kvm));
  ASSERT_TRUE(w.unpreserve_file("vm-a", 2));
  EXPECT_EQ(w.flb_refs("iommufd:0"), 2u);

  auto v = m.kexec(w);
  ASSERT_TRUE(v);
  EXPECT_EQ(v->flb_count(), 2u);
  auto st = v->flb_status("iommufd:0");
  ASSERT_TRUE(st);
  EXPECT_EQ(st->refs, 2u);
  EXPECT_EQ(st->retrieved, 0u);
  auto first = v->retrieve("vm-b", 1);
  ASSERT_TRUE(first);
  ASSERT_NE(first->flb, nullptr);
  EXPECT_STREQ(first->flb->name, "iommufd:0");
  EXPECT_EQ(first->flb->data.get(), state_page(0x7000).value);
  EXPECT_TRUE(first->flb_first);
  auto second = v->retrieve("vm-a", 1);
  ASSERT_TRUE(second);
  EXPECT_FALSE(second->flb_first);
  EXPECT_EQ(v->flb_status("iommufd:0")->retrieved, 2u);
  auto fa = v->finish("vm-a");
  EXPECT_EQ(fa->flbs, 0u);  // vm-b still depends on it
  EXPECT_EQ(v->flb_status("iommufd:0")->remaining, 1u);
  auto fb = v->finish("vm-b");
  EXPECT_EQ(fb->flbs, 2u);  // iommufd and kvm both finished with their last file
  EXPECT_EQ(fb->unreclaimed, 1u);
  EXPECT_EQ(v->flb_status("iommufd:0")->remaining, 0u);
  EXPECT_EQ(v->flb_status("nope").code(), errc::not_found);
}

TEST(Luo, DestroySessionReleasesItsFilesAndFlbs) {
  machine m;
  writer w = m.make();
  const u64 baseline = m.mem.pages().pages_in_use();
  const luo_flb shared{"iommufd:0", state_page(0x7000)};
  for (u64 s = 0; s < 60; ++s) {
    ASSERT_TRUE(w.create_session(name("s", s).c_str()));
    for (u64 t = 0; t < 60; ++t)
      ASSERT_TRUE(w.preserve_file(name("s", s).c_str(), {t, "memfd-v1", state_page(t), 0},
                                  t % 7 == 0 ? &shared : nullptr));
  }
  EXPECT_EQ(w.flb_refs("iommufd:0"), 60u * 9);
  for (u64 s = 0; s < 60; s += 2) ASSERT_TRUE(w.destroy_session(name("s", s).c_str()));
  EXPECT_EQ(w.session_count(), 30u);
  EXPECT_EQ(w.file_count(), 30u * 60);
  EXPECT_EQ(w.flb_refs("iommufd:0"), 30u * 9);
  EXPECT_FALSE(w.has_session(name("s", 0).c_str()));
  EXPECT_TRUE(w.has_session(name("s", 1).c_str()));
  auto v = m.kexec(w);
  ASSERT_TRUE(v) << to_string(v.code());
  u64 sessions = 0;
  for (const luo_session_entry& e : v->sessions()) {
    ++sessions;
    EXPECT_EQ(e.file_count.get(), 60u);
  }
  EXPECT_EQ(sessions, 30u);
  EXPECT_EQ(v->flb_status("iommufd:0")->refs, 30u * 9);
  v->release();
  for (u64 s = 1; s < 60; s += 2) ASSERT_TRUE(w.destroy_session(name("s", s).c_str()));
  EXPECT_EQ(w.flb_count(), 0u);
  w.destroy();
  EXPECT_EQ(m.mem.pages().pages_in_use(), baseline - 1);  // the root page went too
}

TEST(Luo, ChangedAfterSealIsNotSealed) {
  machine m;
  writer w = m.make();
  ASSERT_TRUE(w.create_session("x"));
  auto sealed = w.seal();
  ASSERT_TRUE(sealed);
  EXPECT_TRUE(w.sealed());
  ASSERT_TRUE(w.create_session("y"));
  EXPECT_FALSE(w.sealed());
  EXPECT_EQ(attach_luo(m.mem.memory(), sealed->root, m.scratch.pages()).code(), errc::not_sealed);
  ASSERT_TRUE(w.seal());
  auto v = attach_luo(m.mem.memory(), sealed->root, m.scratch.pages());
  ASSERT_TRUE(v);
  EXPECT_EQ(v->session_count(), 2u);
}

TEST(Luo, EmptyStateRoundTrips) {
  machine m;
  writer w = m.make(0);
  auto v = m.kexec(w);
  ASSERT_TRUE(v);
  EXPECT_EQ(v->session_count(), 0u);
  EXPECT_EQ(v->sessions().begin(), v->sessions().end());
  EXPECT_EQ(v->for_each_unreclaimed([](const luo_unreclaimed&) {}), 0u);
}

TEST(LuoModelHelpers, DemoStateReadsBackAndReclaims) {
  machine m;
  auto root = handover_writer<source>::create(m.mem.pages());
  ASSERT_TRUE(root);
  ASSERT_TRUE(model::build_demo_luo(m.mem.pages(), *root, 3));
  ASSERT_TRUE(root->seal());
  const flat_memory next = m.mem.remap();
  auto h = attach_handover_root(next, root->root());
  ASSERT_TRUE(h);
  auto e = h->find(luo_entry_name);
  ASSERT_TRUE(e);
  EXPECT_STREQ((*e)->compatible, model::luo_compatible);
  const nlohmann::json dump = model::read_luo(next, **e);
  ASSERT_TRUE(dump["ok"].get<bool>()) << dump.dump();
  EXPECT_EQ(dump["liveupdate_number"], 3);
  ASSERT_EQ(dump["sessions"].size(), 3u);
  EXPECT_EQ(dump["sessions"][0]["name"], "vm-alpha");
  EXPECT_EQ(dump["sessions"][0]["files"][1]["flb"], "iommufd:0");
  EXPECT_EQ(dump["sessions"][2]["files"][0]["flb"], nullptr);
  ASSERT_EQ(dump["flbs"].size(), 1u);
  EXPECT_EQ(dump["flbs"][0]["refs"], 2);
  const std::string data = dump["sessions"][1]["files"][0]["data"];
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(m.mem.bytes(phys_addr{std::stoull(data, nullptr, 16)}))),
            "guest RAM, 2 GiB");

  const nlohmann::json after = model::reclaim_demo_luo(next, **e);
  ASSERT_TRUE(after["ok"].get<bool>()) << after.dump();
  EXPECT_EQ(after["retrieved"].size(), 3u);
  EXPECT_TRUE(after["retrieved"][1]["flb_first"].get<bool>());
  ASSERT_EQ(after["unreclaimed"].size(), 3u);  // database/2 and both of vm-beta
  EXPECT_EQ(after["flbs"][0]["retrieved"], 1);
  EXPECT_EQ(after["flbs"][0]["remaining"], 1);  // vm-beta's device still holds it

  // Damage after sealing: the reader says what and where.
  auto* r = reinterpret_cast<luo_root*>(m.mem.bytes(phys_addr{(*e)->phys.get()}));
  r->session_count.set(4);
  const nlohmann::json bad = model::read_luo(next, **e);
  EXPECT_FALSE(bad["ok"].get<bool>());
  EXPECT_EQ(bad["error"]["error"], to_string(errc::bad_checksum));
  EXPECT_EQ(bad["error"]["structure"], "luo");
  EXPECT_FALSE(model::reclaim_demo_luo(next, **e)["ok"].get<bool>());
}

// Scale: far past upstream's former caps (about 1000 sessions, 128 files a session).
double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

TEST(LuoScale, MillionSessionsReattachedAndIterated) {
  constexpr u64 n = 1'000'000;
  const auto t0 = std::chrono::steady_clock::now();
  machine m(u64{2} << 30);
  writer w = m.make();
  for (u64 i = 0; i < n; ++i) {
    const std::string s = name("service", i);
    ASSERT_TRUE(w.create_session(s.c_str())) << i;
    if (i % 1000 == 0) {
      ASSERT_TRUE(w.preserve_file(s.c_str(), {i, "memfd-v1", state_page(i), 0}));
    }
  }
  EXPECT_EQ(w.create_session(name("service", 4242).c_str()).code(), errc::already_exists);
  auto v = m.kexec(w);
  ASSERT_TRUE(v) << to_string(v.code());
  ASSERT_EQ(v->session_count(), n);
  u64 i = 0, files = 0;
  for (const luo_session_entry& e : v->sessions()) {
    ASSERT_EQ(std::string(e.name), name("service", i));
    for (const luo_file_entry& f : v->files(e)) files += f.token.get() == i;
    ++i;
  }
  EXPECT_EQ(i, n);
  EXPECT_EQ(files, n / 1000);
  ASSERT_TRUE(v->retrieve(name("service", 999000).c_str(), 999000));
  EXPECT_EQ(v->retrieve(name("service", 999000).c_str(), 999000).code(), errc::already_retrieved);
  EXPECT_TRUE(v->find(name("service", 123456).c_str()));
  std::printf("1M sessions: %.2f s\n", seconds_since(t0));
}

TEST(LuoScale, MillionFilesInOneSessionReattachedAndIterated) {
  constexpr u64 n = 1'000'000;
  const auto t0 = std::chrono::steady_clock::now();
  machine m(u64{2} << 30);
  writer w = m.make();
  ASSERT_TRUE(w.create_session("big"));
  const luo_flb shared{"iommufd:0", state_page(0x1000)};
  for (u64 t = 0; t < n; ++t)
    ASSERT_TRUE(w.preserve_file("big", {t * 3, "vfio-v1", state_page(t), t}, t % 2 ? &shared : nullptr));
  EXPECT_EQ(w.flb_refs("iommufd:0"), n / 2);
  auto v = m.kexec(w);
  ASSERT_TRUE(v) << to_string(v.code());
  ASSERT_EQ(v->file_count(), n);
  u64 t = 0;
  auto big = v->find("big");
  ASSERT_TRUE(big);
  for (const luo_file_entry& f : v->files(**big)) {
    ASSERT_EQ(f.token.get(), t * 3);
    ++t;
  }
  EXPECT_EQ(t, n);
  for (u64 k = 0; k < n; k += 1000) ASSERT_TRUE(v->retrieve("big", k * 3)) << k;
  auto done = v->finish("big");
  ASSERT_TRUE(done);
  EXPECT_EQ(done->unreclaimed, n - n / 1000);
  EXPECT_EQ(done->flbs, 1u);
  std::printf("1M files: %.2f s\n", seconds_since(t0));
}

}  // namespace
}  // namespace kho::test::luo_test
