// The bounded restore, the two-thread restore and the side-stepped boot (block by
// block and word by word) at scale:
// 2^N scattered 4 KiB pages over 16 TiB, checked against each other and against
// counts known in closed form. CI runs N = 18; set KHO_SCALE_LOG2=26 (256 GiB of
// preserved pages, 0.5 GiB of tree, 1 GiB per region array; 15 s of CPU, 3.5 min of
// wall clock under load and 2.6 GiB of RSS on the 2-core development machine)
// to run the full size by hand:
//   KHO_SCALE_LOG2=26 build/tests/kho_tests --gtest_filter='RestoreScale.*'
#include <kho/bitmap_buddy.hpp>
#include <kho/buddy_model.hpp>
#include <kho/holes_memblock.hpp>
#include <kho/model/parallel_restore.hpp>
#include <kho/preserve_bitmap.hpp>
#include <kho/restore.hpp>

#include "test_arena.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <optional>
#include <vector>

#include <sys/mman.h>

namespace kho::test::restore_scale_test {
namespace {

struct anon_memory {
  u64 size;
  void* virt;
  flat_memory mem;
  bump_page_source<flat_memory> pages;
  anon_memory(u64 base, u64 bytes)
      : size(bytes),
        virt(::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)),
        mem(phys_addr{base}, bytes, virt),
        pages(mem, mem.base(), mem.end()) {}
  ~anon_memory() { ::munmap(virt, size); }
};

unsigned scale_log2() {
  const char* e = std::getenv("KHO_SCALE_LOG2");
  return e ? static_cast<unsigned>(std::atoi(e)) : 18;
}

TEST(RestoreScale, ScatteredPagesOver16TiB) {
  const unsigned log2n = scale_log2();
  ASSERT_GE(log2n, 10u);
  ASSERT_LE(log2n, 30u);
  const u64 n = u64{1} << log2n, space = u64{1} << 44;
  const u64 tree_base = space;  // the tree lives just above the preserved space
  anon_memory tree_mem(tree_base, u64{2} << 30);
  auto tree = preserve_bitmap<bump_page_source<flat_memory>>::create(tree_mem.pages, false);
  ASSERT_TRUE(tree);
  for (u64 i = 0; i < n; ++i)  // an odd stride over the pages: distinct
    ASSERT_TRUE(tree->preserve(phys_addr{((i * 0x9e3779b97f4a7c15ULL) & ((space >> 12) - 1)) << 12}, order{0}));
  std::vector<u64> scratch(tree->node_count());
  auto view = attach_tree(tree_mem.mem, tree->root(), scratch);
  ASSERT_TRUE(view);
  const u64 nodes = view->node_count();

  // Two arrays of (n + nodes) regions; each is a power-of-two block, naturally aligned,
  // so leave 8x in address space (untouched pages cost nothing: MAP_NORESERVE).
  anon_memory boot(u64{1} << 50, ((n + nodes) * 16 + (u64{1} << 20)) * 8);
  auto one = memblock_model<bump_page_source<flat_memory>>::create(boot.pages);
  auto two = memblock_model<bump_page_source<flat_memory>>::create(boot.pages);
  ASSERT_TRUE(one && two);
  ASSERT_TRUE(restore_at_bound(*view, *one));
  ASSERT_TRUE(model::restore_parallel(*view, *two, 2));
  // The generic merged walk's ranges, plus the tree's pages as one run (a bump
  // allocator put them together, right above the preserved space).
  u64 ranges = 0;
  view->for_each_range([&](phys_addr, u64) { ++ranges; });
  EXPECT_EQ(one->size(), ranges + 1 - view->is_preserved(phys_addr{space - 4096}));
  EXPECT_EQ(one->reserved_bytes(), (n + nodes) * 4096);
  EXPECT_EQ(one->doublings(), 0u);
  ASSERT_EQ(two->size(), one->size());
  EXPECT_EQ(std::memcmp(one->begin(), two->begin(), one->size() * sizeof(memblock_region)), 0);
  for (u64 i = 1; i < one->size(); ++i) ASSERT_LT((*one)[i - 1].end(), (*one)[i].base) << i;

  // Side-step and restore + free_all hand over the same pages in the same blocks.
  const phys_range ram[] = {{phys_addr{0}, phys_addr{space}}, {tree_mem.mem.base(), tree_mem.mem.end()}};
  struct fold {
    u64 acc = 0;
    void operator()(pfn f, order o) { acc = acc * 31 + (f.value ^ o.value); }
  };
  buddy_model<10, fold> side, restored;
  phys_range storage[1];
  auto mb = make_holes_memblock(*view, ram, {}, storage);
  ASSERT_TRUE(mb);
  ASSERT_TRUE(mb->free_all(side));
  free_all_regions(ram, *one, restored);
  const u64 ram_pages = (space + tree_mem.size) >> 12;
  EXPECT_EQ(side.free_pages(), ram_pages - n - nodes);
  EXPECT_EQ(restored.free_pages(), side.free_pages());
  EXPECT_EQ(restored.blocks(), side.blocks());
  EXPECT_EQ(restored.hook().acc, side.hook().acc);

  // The word-by-word hand-over: the same pages, and the same blocks per order, from an
  // order-0 free bitmap (0.5 GiB of words for 16 TiB; untouched until filled).
  const pfn ram_top{space >> 12}, tree_top{(space + tree_mem.size) >> 12};
  const u64 low_words = bitmap_buddy<10>::words_for(pfn{0}, ram_top);
  const u64 high_words = bitmap_buddy<10>::words_for(ram_top, tree_top);
  anon_memory words(0, (low_words + high_words) * 8);
  auto* w = static_cast<u64*>(words.virt);
  auto low = bitmap_buddy<10>::create(pfn{0}, ram_top, std::span<u64>(w, low_words));
  auto high = bitmap_buddy<10>::create(ram_top, tree_top, std::span<u64>(w + low_words, high_words));
  ASSERT_TRUE(low && high);
  bitmap_buddy<10> zones[] = {*low, *high};
  ASSERT_TRUE(mb->free_all_words(std::span<bitmap_buddy<10>>(zones)));
  EXPECT_EQ(zones[0].free_pages() + zones[1].free_pages(), side.free_pages());
  EXPECT_EQ(zones[0].blocks() + zones[1].blocks(), side.blocks());
  for (unsigned o = 0; o <= 10; ++o)
    EXPECT_EQ(zones[0].free_blocks(order{o}) + zones[1].free_blocks(order{o}), side.free_blocks(order{o})) << o;
}

}  // namespace
}  // namespace kho::test::restore_scale_test
