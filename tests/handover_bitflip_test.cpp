// Every bit of a small sealed handover flipped in turn: the root page, the bytes each
// entry checksums, and every node of the preserved-memory map (covered by the entry's
// deep checksum). The next kernel must refuse each one; the detection rate is reported.
#include <kho/handover.hpp>
#include <kho/model/inspect.hpp>
#include <kho/preserve_bitmap.hpp>

#include "test_arena.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

namespace kho::test::handover_bitflip_test {
namespace {

struct small_handover {
  arena<12> mem{u64{4} << 20};
  phys_addr root{}, blob{};
  u64 blob_size = 40;
  std::vector<u64> radix_nodes;

  small_handover() {
    auto w = handover_writer<arena<12>::source_type>::create(mem.pages());
    blob = *alloc_zeroed(mem.pages(), order{0}, 4096);
    std::memcpy(mem.bytes(blob), "state a service hands to its next kernel", blob_size);
    auto map = preserve_bitmap<arena<12>::source_type>::create(mem.pages());
    EXPECT_TRUE(map->preserve(w->root(), order{0}));
    EXPECT_TRUE(map->preserve(blob, order{0}));
    EXPECT_TRUE(map->preserve(phys_addr{0x40000000}, order{18}));
    EXPECT_TRUE(w->add("blob", "kho-blob-v1", blob, blob_size));
    EXPECT_TRUE(w->add("preserved-memory-map", radix_compatible, map->root(), 4096));
    EXPECT_TRUE(w->set_deep_checksum("preserved-memory-map", map->deep_checksum()));
    EXPECT_TRUE(w->seal());
    root = w->root();
    std::vector<u64> scratch(64);
    auto v = attach_tree(mem.memory(), map->root(), scratch);
    EXPECT_TRUE(v);
    radix_nodes.assign(v->nodes().begin(), v->nodes().end());
  }
  bool accepted() { return model::inspect(mem.memory(), root)["status"] == "ok"; }
};

// The flips are dealt round-robin, byte by byte, to shards that run as tests of their own,
// so ctest spreads them over every core; together the shards flip every checked bit once.
constexpr unsigned flip_shards = 8;

class HandoverBitFlip : public ::testing::TestWithParam<unsigned> {};

TEST_P(HandoverBitFlip, EveryCheckedBitOfTheWholeHandoverIsDetected) {
  const unsigned shard = GetParam();
  small_handover h;
  ASSERT_TRUE(h.accepted());
  struct span {
    phys_addr at;
    u64 bytes;
  };
  std::vector<span> checked = {{h.root, 4096}, {h.blob, h.blob_size}};
  for (u64 n : h.radix_nodes) checked.push_back({phys_addr{n}, 4096});
  u64 flips = 0, detected = 0, bytes_seen = 0;
  for (const span& s : checked) {
    for (u64 byte = 0; byte < s.bytes; ++byte) {
      if (bytes_seen++ % flip_shards != shard) continue;
      unsigned char* p = h.mem.bytes(s.at + byte);
      for (unsigned bit = 0; bit < 8; ++bit) {
        *p ^= static_cast<unsigned char>(1u << bit);
        ++flips;
        if (!h.accepted()) ++detected;
        else ADD_FAILURE() << "undetected flip at " << std::hex << (s.at + byte).value << " bit " << bit;
        *p ^= static_cast<unsigned char>(1u << bit);
      }
    }
  }
  EXPECT_GT(flips, 0u);
  EXPECT_EQ(detected, flips);
  EXPECT_TRUE(h.accepted());
  RecordProperty("flips", static_cast<int>(flips));
  RecordProperty("detected", static_cast<int>(detected));
  std::printf("shard %u of %u: bit flips: %llu, detected: %llu (%.2f%%)\n", shard, flip_shards,
              static_cast<unsigned long long>(flips), static_cast<unsigned long long>(detected),
              100.0 * static_cast<double>(detected) / static_cast<double>(flips));
}

INSTANTIATE_TEST_SUITE_P(Shards, HandoverBitFlip, ::testing::Range(0u, flip_shards));

}  // namespace
}  // namespace kho::test::handover_bitflip_test
