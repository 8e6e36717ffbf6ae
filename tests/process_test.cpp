// Two processes: one writes and seals a handover in a memfd and exits; the other
// maps the same file at a different virtual address and reads it back.
#include <kho/handover.hpp>
#include <kho/model/boot_page.hpp>
#include <kho/model/physical_memory.hpp>

#include <gtest/gtest.h>

#include <cstring>

#include <sys/wait.h>
#include <unistd.h>

namespace kho::test::process_test {
namespace {

TEST(Process, WrittenInOneReadInAnotherAtAnotherAddress) {
  auto pm = model::physical_memory::create(u64{4} << 30, u64{16} << 20);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // The writer: its own mapping, then exit without unmapping (a kexec does not tidy up).
    auto mine = model::physical_memory::adopt_fd(::dup(pm.fd()), pm.base().value, true, pm.virt());
    flat_memory mem = mine.memory();
    bump_page_source<flat_memory> pages(mem, mine.base() + 4096, mine.base() + mine.size());
    auto w = handover_writer<decltype(pages)>::create(pages, 42);
    auto blob = alloc_zeroed(pages, order{0}, 4096);
    if (!w || !blob) std::_Exit(10);
    std::memcpy(mem.to_virt(*blob, 5), "hello", 5);
    if (!w->add("greeting", "kho-blob-v1", *blob, 5) || !w->seal()) std::_Exit(11);
    model::write_boot_page(mine, w->root(), 42, 12);
    std::_Exit(0);
  }
  int wstatus = 0;
  ASSERT_EQ(::waitpid(child, &wstatus, 0), child);
  ASSERT_TRUE(WIFEXITED(wstatus));
  ASSERT_EQ(WEXITSTATUS(wstatus), 0);

  model::boot_page boot{};
  ASSERT_TRUE(model::read_boot_page(pm, boot));
  EXPECT_NE(boot.writer_virt.get(), reinterpret_cast<u64>(pm.virt()));
  auto v = attach_handover_root(pm.memory(), phys_addr{boot.root.get()});
  ASSERT_TRUE(v) << to_string(v.code());
  EXPECT_EQ(v->generation(), 42u);
  auto e = v->find("greeting");
  ASSERT_TRUE(e);
  EXPECT_EQ(std::memcmp(pm.memory().to_virt(phys_addr{(*e)->phys.get()}, 5), "hello", 5), 0);
}

}  // namespace
}  // namespace kho::test::process_test
