// A consumer of kho: seal a root in a static arena and read it back.
#include <kho/handover.hpp>

#include <cstdio>

alignas(4096) static unsigned char arena[1 << 16];

int main() {
  kho::flat_memory mem(kho::phys_addr{0x10000}, sizeof arena, arena);
  kho::bump_page_source<kho::flat_memory> pages(mem, mem.base(), mem.end());
  auto w = kho::handover_writer<decltype(pages)>::create(pages);
  if (!w) return 1;
  auto blob = kho::alloc_zeroed(pages, kho::order{0}, 4096);
  if (!blob || !w->add("x", "kho-blob-v1", *blob, 8) || !w->seal()) return 1;
  auto v = kho::attach_handover_root(mem, w->root());
  std::printf("consumer: %s\n", kho::to_string(v.code()));
  return v ? 0 : 1;
}
