// Fuzz target behind the checksums: valid LUO state (sessions, files, shared objects,
// state pages) named in a handover root, damaged block by block, then re-sealed as a
// forger would (content checksum, the root's counts and checksum, the handover root).
// Validation must refuse it, giving its scratch back, or accept state that retrieve,
// finish, the unreclaimed report and claim_pages read without leaving memory.
#include <kho/handover.hpp>
#include <kho/luo.hpp>
#include <kho/page_owners.hpp>

#include "fuzz_pages.hpp"
#include "forge_luo.hpp"
#include "reseal.hpp"

#include <string>
#include <vector>

namespace {

using namespace kho;
using machine = fuzz::machine<u64{2} << 20>;  // 512 pages
using source = bump_page_source<flat_memory>;

kho::fuzz::pages<8 << 20> scratch_memory;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  machine m;
  fuzz::cursor in(data, size);
  const flat_memory mem = m.plain();
  source pages(mem, mem.base(), mem.end());
  auto w = luo_writer<source>::create(pages, in.take(1));
  if (!w) return 0;
  // The valid state: up to 4 sessions of up to 70 files (two blocks), some sharing one
  // of two FLBs, some with a state page.
  const unsigned sessions = 1 + static_cast<unsigned>(in.take(1) % 4);
  std::vector<phys_addr> states;
  auto state = [&]() -> phys_addr {
    auto pa = alloc_zeroed(pages, order{0}, 4096);
    if (!pa) return phys_addr{};
    states.push_back(*pa);
    return *pa;
  };
  const luo_flb flb_a{"iommufd:0", state()}, flb_b{"kvm:1", phys_addr{}};
  for (unsigned s = 0; s < sessions; ++s) {
    const std::string name = "session-" + std::to_string(s);
    if (!w->create_session(name.c_str())) return 0;
    const unsigned files = static_cast<unsigned>(in.take(1) % 71);
    const unsigned shape = static_cast<unsigned>(in.take(1));
    for (unsigned f = 0; f < files; ++f) {
      const luo_flb* shared = ((shape >> (f % 8)) & 1) ? (f % 3 ? &flb_a : &flb_b) : nullptr;
      const phys_addr data = f % 4 == 0 ? phys_addr{} : state();
      if (!w->preserve_file(name.c_str(), {f * 7 + s, f % 2 ? "memfd-v1" : "vfio-pci-v1", data, f}, shared))
        return 0;
    }
  }
  auto sealed = w->seal();
  if (!sealed) return 0;
  auto root = handover_writer<source>::create(pages, 1);
  if (!root || !root->add(luo_entry_name, luo_compatible, sealed->root, sealed->size) || !root->seal()) return 0;

  flat_memory smem(phys_addr{u64{1} << 46}, scratch_memory.size, scratch_memory);
  source scratch(smem, smem.base(), smem.end());
  // Its pages (root and blocks), from a validation of the intact state.
  std::vector<phys_addr> own;
  {
    auto intact = attach_luo(mem, sealed->root, scratch);
    if (!intact) __builtin_trap();  // the writer's state is valid
    own.push_back(sealed->root);
    page_owners<source> owners(scratch);
    if (!intact->claim_pages(owners)) __builtin_trap();  // valid state: each page once
    auto add_chain = [&](phys_addr b) {
      for (; b; b = phys_addr{static_cast<const block_header*>(mem.to_virt(b, 16))->next.get()}) own.push_back(b);
    };
    add_chain(phys_addr{intact->sessions().head()});
    for (const luo_session_entry& e : intact->sessions()) add_chain(phys_addr{e.files.get()});
    add_chain(phys_addr{intact->flbs().head()});
    intact->release();
  }
  if (scratch.pages_in_use() != 0) __builtin_trap();
  const bool recount = (in.take(1) & 1) != 0;
  while (!in.done()) fuzz::damage(in, own, m);

  luo_root& r = *reinterpret_cast<luo_root*>(m.bytes(sealed->root));
  fuzz::forge_luo_seal(mem, r, recount);
  if (!root->seal()) __builtin_trap();

  const fuzz::guarded_memory g = m.guarded();
  auto h = attach_handover_root(g, root->root());
  if (!h) __builtin_trap();
  auto e = h->find_compatible(luo_compatible);
  if (!e) __builtin_trap();
  auto view = attach_luo(g, phys_addr{(*e)->phys.get()}, scratch);
  if (!view) {
    if (scratch.pages_in_use() != 0) __builtin_trap();  // refused: scratch given back
    return 0;
  }
  m.arm();
  {
    page_owners<source> owners(scratch);
    (void)view->claim_pages(owners);  // may alias (a shared state page), never fault
  }
  std::vector<std::string> names;
  for (const luo_session_entry& s : view->sessions()) names.emplace_back(s.name);
  for (const std::string& name : names) {
    auto session = view->find(name.c_str());
    if (!session) __builtin_trap();  // listed sessions can be found
    std::vector<u64> tokens;
    for (const luo_file_entry& f : view->files(**session)) tokens.push_back(f.token.get());
    for (u64 t : tokens) {
      if (!view->retrieve(name.c_str(), t)) __builtin_trap();
      if (view->retrieve(name.c_str(), t).code() != errc::already_retrieved) __builtin_trap();
    }
    if (!view->finish(name.c_str())) __builtin_trap();
  }
  (void)view->for_each_unreclaimed([](const luo_unreclaimed&) {});
  for (const luo_flb_entry& b : view->flbs())
    if (!view->flb_status(b.name)) __builtin_trap();
  view->release();
  if (scratch.pages_in_use() != 0) __builtin_trap();
  return 0;
}
