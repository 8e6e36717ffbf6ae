// The token index a session's files get in the whole-handover check
// (luo_handlers.hpp, indexed_session_files): it finds what a scan of the session finds,
// the first file of a token, and is only built when a file asks.
#include <kho/linux/luo_handlers.hpp>

#include "test_arena.hpp"

#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include <vector>

namespace luo_handlers_test {

using namespace kho;
using namespace kho::upstream;
using kho::test::scratch_arena;

std::vector<luo_file_ser> files_with(const std::vector<u64>& tokens) {
  std::vector<luo_file_ser> out(tokens.size());
  for (size_t i = 0; i < tokens.size(); ++i) {
    out[i] = {};
    out[i].token.set(tokens[i]);
    out[i].data.set(i + 1);  // which file it is
  }
  return out;
}

const luo_file_ser* scan(const std::vector<luo_file_ser>& files, u64 token) {
  for (const luo_file_ser& f : files)
    if (f.token.get() == token) return &f;
  return nullptr;
}

RC_GTEST_PROP(LuoHandlersIndex, FindsWhatAScanFinds, ()) {
  const auto tokens = *rc::gen::container<std::vector<u64>>(rc::gen::inRange<u64>(0, 64));
  const auto files = files_with(tokens);
  scratch_arena<12> scratch(u64{1} << 20);
  indexed_session_files<std::vector<luo_file_ser>, scratch_arena<12>::source_type> indexed(files, scratch.pages());
  for (u64 token = 0; token < 66; ++token) RC_ASSERT(indexed.find_token(token) == scan(files, token));
  RC_ASSERT(bool(indexed.error()));
}

TEST(LuoHandlersIndex, BuiltOnlyWhenAsked) {
  const auto files = files_with({5, 6, 5});
  scratch_arena<12> scratch(u64{1} << 20);
  const u64 before = scratch.pages().pages_in_use();
  {
    indexed_session_files<std::vector<luo_file_ser>, scratch_arena<12>::source_type> indexed(files, scratch.pages());
    u64 n = 0;
    for (const luo_file_ser& f : indexed) n += f.data.get();
    EXPECT_EQ(n, 6u);  // iterates the files it wraps
    EXPECT_EQ(scratch.pages().pages_in_use(), before);
    EXPECT_EQ(find_file_by_token(indexed, 5)->data.get(), 1u);  // the first of token 5
    EXPECT_GT(scratch.pages().pages_in_use(), before);
  }
}

TEST(LuoHandlersIndex, NoScratchIsAnErrorNotAMissingFile) {
  const auto files = files_with({1, 2, 3});
  scratch_arena<12> scratch(u64{1} << 16);        // 16 pages (the arena's alignment is 64 KiB)
  ASSERT_TRUE(scratch.pages().alloc(order{4}));  // and all are taken
  indexed_session_files<std::vector<luo_file_ser>, scratch_arena<12>::source_type> indexed(files, scratch.pages());
  EXPECT_EQ(indexed.find_token(2), nullptr);
  EXPECT_EQ(indexed.error().code(), errc::out_of_memory);
  EXPECT_EQ(impl::check_token(indexed, 2, "kvm_vm_luo_v1", "guest_memfd", phys_addr{}).code(), errc::out_of_memory);
}

}  // namespace luo_handlers_test
