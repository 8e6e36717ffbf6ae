// kexec_model: the userspace model of a live update, end to end.
//
// The old image creates "physical memory" (a memfd standing for [base, base+size)),
// builds a handover in it, seals it and exec()s itself as the next image, passing the
// memfd. The next image maps the file at another virtual address, finds the handover
// as a next kernel would, attaches and validates it, walks every structure in place,
// restores the preserved memory and reclaims the services' state.
//
//   kexec_model [--json] [--crash-at STEP | --stale-byte SEED] [--base PHYS] [--size BYTES]
//               [--memory-file F] [--format linux|kho-root-v1] [--stock] [--kho-formats]
//               [--chain N [--crash-hop K]] [--next-image EXE ...] [--unsealed] [--no-negotiate]
//
// --format linux (the default) writes what a stock Linux kernel hands over: the
// "kho-v4" root FDT, found through an x86 setup_data node (SETUP_KEXEC_KHO, kho_data)
// at the memory's base; kexec-metadata, memblock, LUO (luo-v5) with memfd-v2 files;
// with kho's seal as kho,* properties unless --stock; --kho-formats adds kho's own
// formats (kho-luo-v1, kho-xarray-v1) as subtrees. --format kho-root-v1 writes kho's
// own root page instead, found through the model's boot page.
//
// With --crash-at the old image is a child process killed (SIGKILL) at STEP; the
// parent survives as "firmware" and boots the next image over whatever was left.
// The next image must then refuse with a named error (exit 1), never half-accept.
// With --chain N the update is a chain of N images A -> B -> C ...
// (model/demo_chain.hpp): each image reads and checks the handover the previous one
// wrote, releases what it no longer needs, and writes the next one from the state it
// adopted; the last image checks the final state against the chain's oracle. With
// --crash-hop K --crash-at STEP image K dies while writing (K = 1 is A), and image K+1
// must refuse by name; with --crash-hop K --stale-byte SEED image K leaves one byte of
// its sealed hop stale.
// With --stale-byte one byte the seal covers keeps an old random value (a torn
// write after sealing): a changed byte must be refused, an unchanged one accepted.
//
// Versions (model/model_images.hpp): this file builds two images, kexec_model (reads
// and writes the newest formats) and kexec_model_legacy (an older release: kho-v3,
// luo-v5, memfd-v1), each with its manifest in the ELF section ".kho_manifest".
// --next-image EXE names the executable each next image is (repeat it for a chain:
// B, C, ...; the default is this executable): before writing its hop an image reads
// the next one's manifest and negotiates, per structure, the highest version both
// know that carries the content, or refuses the update before anything is written
// (status "refused before kexec", exit 2). --unsealed creates memfds without seals
// (memfd-v1 can carry them); --no-negotiate writes this image's newest versions
// regardless, so that the next image's own gate is what refuses.
#include <kho/handover.hpp>
#include <kho/hole_finder.hpp>
#include <kho/linux/kho_fdt_check.hpp>
#include <kho/linux/x86_boot.hpp>
#include <kho/model/boot_page.hpp>
#include <kho/model/demo_chain.hpp>
#include <kho/model/demo_linux.hpp>
#include <kho/model/demo_holes.hpp>
#include <kho/model/demo_luo.hpp>
#include <kho/model/demo_xarray.hpp>
#include <kho/model/elf_section.hpp>
#include <kho/model/inspect.hpp>
#include <kho/model/inspect_linux.hpp>
#include <kho/model/model_images.hpp>
#include <kho/preserving_page_source.hpp>
#include <kho/preserve_bitmap.hpp>
#include <kho/restore.hpp>
#include <kho/model/physical_memory.hpp>
#include <kho/model/scratch_pages.hpp>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <csignal>
#include <cstdio>
#include <algorithm>
#include <cstring>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <sys/wait.h>
#include <unistd.h>

// This image's manifest (in its ELF section) and which release it is: kexec_model_manifest.cpp.
extern const void* const kho_image_manifest;
extern const std::size_t kho_image_manifest_size;
extern const bool kho_image_is_legacy;

namespace {

using namespace kho;
using source_type = bump_page_source<flat_memory>;
using map_type = preserve_bitmap<source_type>;
using tracked_source = preserving_page_source<source_type, map_type>;

// The steps of the old image, in order; each is a --crash-at target.
const std::vector<std::string> steps = {
    "root",          // allocate the handover root
    "boot-page",     // hand the root's address to the next kernel
    "blob",          // preserve a small blob of service state
    "luo",           // LUO sessions, files and a shared object on block lists
    "memfd",         // a sparse memfd-shaped xarray of mixed-order folios with marks
    "radix",         // preserve guest memory and the handover's own pages in the radix map
    "seal-began",    // sealing started: state word says SEALING
    "seal-entries",  // entry checksums written
    "seal-root",     // root checksum written, not yet published
    "sealed",        // published
};

[[noreturn]] void die(const std::string& msg) {
  std::fprintf(stderr, "kexec_model: %s\n", msg.c_str());
  std::exit(2);
}

void check(const status& s, const char* what) {
  if (!s) die(fmt::format("{}: {}", what, to_string(s.code())));
}

using model::covered_spans;

const std::vector<std::string>& steps_of(const std::string& format) {
  return format == "linux" ? model::linux_demo_steps : steps;
}

/// The old kernel: builds and seals the handover, crashing at `crash_at` if named.
/// Returns the spans the seal covers (for the stale-byte experiment).
covered_spans run_old_image(model::physical_memory& pm, const std::string& crash_at, u64 generation) {
  auto crash_point = [&](const std::string& step) {
    if (step == crash_at) ::raise(SIGKILL);
  };
  flat_memory mem = pm.memory();
  source_type pages(mem, pm.base() + page_geometry<>::size, pm.base() + pm.size());

  // The preserved-memory map comes first: every page the handover takes from now on
  // comes through `tracked`, which records it in the map as it is handed out (the map
  // records its own pages too).
  auto map = preserve_bitmap<source_type>::create(pages);
  if (!map) die("cannot create the preserved-memory map");
  tracked_source tracked(pages, *map);

  auto root = handover_writer<tracked_source>::create(tracked, generation);
  if (!root) die("cannot allocate the root");
  crash_point("root");

  model::write_boot_page(pm, root->root(), generation, page_geometry<>::shift);
  crash_point("boot-page");

  auto blob = alloc_zeroed(tracked, order{0}, page_geometry<>::size);
  if (!blob) die("cannot allocate the blob");
  const char state[] = "service state that must survive the live update";
  std::memcpy(mem.to_virt(*blob, sizeof state), state, sizeof state);
  check(root->add("demo-blob", "kho-blob-v1", *blob, sizeof state), "add blob");
  crash_point("blob");

  check(model::build_demo_luo(tracked, *root), "LUO sessions");
  crash_point("luo");

  check(model::build_demo_memfd(tracked, *root), "memfd xarray");
  crash_point("memfd");

  // Guest memory: 2 MiB blocks and scattered 4 KiB pages, with a hole after each page.
  for (int i = 0; i < 8; ++i)
    if (!tracked.alloc(order{9})) die("cannot allocate guest memory");
  for (int i = 0; i < 64; ++i) {
    if (!tracked.alloc(order{0})) die("cannot allocate guest memory");
    if (!pages.alloc(order{0})) die("cannot allocate guest memory");  // left unpreserved
  }
  check(root->add("preserved-memory-map", radix_compatible, map->root(), page_geometry<>::size),
        "add radix map");
  check(root->set_deep_checksum("preserved-memory-map", map->deep_checksum()), "checksum radix map");
  crash_point("radix");

  check(root->seal([&](seal_step s) { crash_point(seal_step_name(s)); }),
        "seal");

  covered_spans covered = {{root->root(), page_geometry<>::size}, {*blob, sizeof state}};
  std::vector<u64> node_list(map->node_count());
  model::scratch_pages scratch(mem);
  auto nodes = attach_preserve_bitmap(mem, map->root(), scratch.pages(), node_list);
  if (!nodes) die("the map does not validate in the old image");
  for (u64 n : nodes->nodes()) covered.emplace_back(phys_addr{n}, page_geometry<>::size);
  return covered;
}

/// One structure broken after the handover was written: the first byte of subtree
/// `name`'s data flipped (its version, magic or compatible). The next image boots on
/// what stands. Dies if the root has no such subtree.
void break_subtree(model::physical_memory& pm, const std::string& name) {
  const flat_memory mem = pm.memory();
  auto boot = upstream::find_kho_data(mem, pm.base());
  if (!boot) die("--break-subtree: no kho_data in what the old image wrote");
  auto root = upstream::kho_fdt_view<flat_memory>::attach(mem, phys_addr{boot->data.fdt_addr.get()},
                                                          boot->data.fdt_size.get());
  auto t = root ? root->find(name.c_str()) : result<upstream::kho_subtree>{errc::not_found};
  if (!t) die("--break-subtree: the root has no subtree " + name);
  *static_cast<unsigned char*>(mem.to_virt(t->phys, 1)) ^= 0x80;
}

/// A torn write: one byte of the sealed handover never reached memory and still holds
/// whatever the page held before (a random old value). Returns "PHYS:CHANGED" for the
/// next image to report.
std::string leave_stale_byte(model::physical_memory& pm, const covered_spans& covered, u64 seed) {
  u64 total = 0;
  for (const auto& span : covered) total += span.second;
  std::mt19937_64 rng(seed);
  u64 pick = rng() % total;
  phys_addr at{};
  for (const auto& [start, size] : covered) {
    if (pick < size) {
      at = start + pick;
      break;
    }
    pick -= size;
  }
  auto* byte = static_cast<unsigned char*>(pm.memory().to_virt(at, 1));
  const auto old = static_cast<unsigned char>(rng());
  const bool changed = *byte != old;
  *byte = old;
  return fmt::format("{:#x}:{}", at.value, changed ? 1 : 0);
}

/// The services' side of the next kernel: LUO files are retrieved and sessions finished;
/// the memfd's xarray is adopted and keeps taking page faults, its new pages coming from
/// `scratch`, memory the hole finder proved unpreserved.
void reclaim_services(model::physical_memory& pm, phys_addr root, phys_range scratch, nlohmann::json& out) {
  auto view = attach_handover_root(pm.memory(), root);
  if (!view) return;
  if (auto luo = view->find_compatible(luo_compatible))
    out["luo"] = model::reclaim_demo_luo(pm.memory(), **luo);
  if (auto memfd = view->find_compatible(xarray_compatible)) {
    source_type fresh(pm.memory(), scratch.start, scratch.end);
    out["memfd"] = model::reclaim_demo_memfd(fresh, **memfd);
  }
}

/// KHO boot memory ran short: find `need` bytes the preserved map leaves free (exact to
/// the page, tree pages excluded) and hand back the largest piece for allocations.
nlohmann::json grow_scratch(const flat_memory& mem, phys_addr map_root, u64 need, phys_range& largest) {
  std::vector<u64> node_list(mem.size() / page_geometry<>::size);
  model::scratch_pages scratch(mem);
  auto view = attach_preserve_bitmap(mem, map_root, scratch.pages(), node_list);
  if (!view) return {{"ok", false}, {"error", model::describe_error(view.err())}};
  const phys_range ram[] = {{mem.base(), mem.end()}};
  nlohmann::json report = model::grow_scratch_report(*view, ram, need);
  if (report.value("ok", false) && !report["pieces"].empty()) {
    const u64 start = std::stoull(report["pieces"][0][0].get<std::string>(), nullptr, 16);
    const u64 size = std::stoull(report["pieces"][0][1].get<std::string>(), nullptr, 16);
    largest = phys_range{phys_addr{start}, phys_addr{start + size}};
  }
  return report;
}

/// Reserves the preserved map at `map_root` in a memblock model both ways; they must
/// agree, and the root page (`root_page`) must be among what is reserved.
nlohmann::json restore_map(const flat_memory& mem, phys_addr map_root, phys_addr root_page) {
  {
    std::vector<u64> node_list(mem.size() / page_geometry<>::size);
    model::scratch_pages scratch(mem);
    auto view = attach_preserve_bitmap(mem, map_root, scratch.pages(), node_list);
    if (!view) return {{"error", to_string(view.code())}};
    // The memblock arrays live in the next kernel's own boot memory, not in the handover.
    alignas(4096) static unsigned char boot_memory[4 << 20];
    flat_memory scratch_mem(phys_addr{u64{1} << 40}, sizeof boot_memory, boot_memory);
    bump_page_source<flat_memory> boot_pages(scratch_mem, scratch_mem.base(), scratch_mem.end());
    auto naive = memblock_model<decltype(boot_pages)>::create(boot_pages);
    auto linear = memblock_model<decltype(boot_pages)>::create(boot_pages);
    if (!naive || !linear || !restore_naive(*view, *naive) || !restore_linear(*view, *linear))
      return {{"error", "restore failed"}};
    const bool same = std::equal(naive->begin(), naive->end(), linear->begin(), linear->end(),
                                 [](const memblock_region& a, const memblock_region& b) {
                                   return a.base == b.base && a.size == b.size;
                                 });
    return {{"regions", linear->size()},
            {"reserved_bytes", linear->reserved_bytes()},
            {"naive_equals_linear", same},
            {"root_page_reserved", view->is_preserved(root_page)}};
  }
}

/// restore_map for kho-root-v1's report: its radix entry and root.
nlohmann::json restore_preserved(const flat_memory& mem, const nlohmann::json& report) {
  auto hex = [](const nlohmann::json& v) { return phys_addr{std::stoull(v.get<std::string>(), nullptr, 16)}; };
  for (const auto& e : report["entries"])
    if (e["compatible"] == radix_compatible) return restore_map(mem, hex(e["phys"]), hex(report["root"]));
  return nlohmann::json::object();
}

/// The next kernel for a Linux handover: setup_data at the memory's base names
/// kho_data; the root FDT and the preserved-memory map are checked, then each subtree
/// on its own (attach_kho_handover_each); scratch must hold no preserved page; then
/// restore, and the services whose subtree stands reclaim their state with new pages
/// from scratch (the largest range, past the scratch array). A fallen subtree is
/// reported (status: its error) and its service gets nothing: this kernel boots on
/// without it, as a kernel built on kho would (docs/format.md, "One structure fails").
void run_next_linux(model::physical_memory& pm, nlohmann::json& out, bool inspect_only) {
  using namespace upstream;
  const flat_memory mem = pm.memory();
  out["format"] = "kho-v4";
  auto refuse = [&](const error& e) {
    out["status"] = to_string(e.code);
    out["error"] = model::describe_error(e);
  };
  auto boot = find_kho_data(mem, pm.base());
  if (!boot) {
    out["status"] = boot.code() == errc::not_found ? "no handover" : to_string(boot.code());
    out["error"] = model::describe_error(boot.err());
    return;
  }
  if (status s = check_kho_boot(mem, *boot); !s) return refuse(s.err());
  const kho_data& d = boot->data;
  out["kho_data"] = {{"at", model::hex(boot->at.value)},
                     {"fdt", model::hex(d.fdt_addr.get())},
                     {"fdt_size", d.fdt_size.get()},
                     {"scratch", model::hex(d.scratch_addr.get())},
                     {"scratch_entries", kho_scratch_count(d)},
                     {"bootmem", model::hex(d.scratch_addr.get())},  // the kernel's newer name
                     {"bootmem_entries", kho_scratch_count(d)}};
  model::scratch_pages scratch(mem);
  auto handover = attach_kho_handover_each(mem, phys_addr{d.fdt_addr.get()}, scratch.pages(), d.fdt_size.get());
  if (!handover) return refuse(handover.err());
  const auto* root = &handover->root();
  out["root"] = model::hex(root->address().value);
  out["kho_sealed"] = root->kho_sealed();
  if (root->kho_sealed()) out["generation"] = root->generation();
  nlohmann::json subtrees = nlohmann::json::array();
  root->for_each([&](const kho_subtree& t) {
    const auto format = subtree_format(t);
    subtrees.push_back({{"name", t.name},
                        {"format", format ? *format : ""},
                        {"phys", model::hex(t.phys.value)},
                        {"size", t.size},
                        {"stands", handover->stands(t)}});
  });
  for (auto f = handover->begin_fallen(); f != handover->end_fallen(); ++f)
    for (auto& j : subtrees)
      if (j["name"] == f->name) j["error"] = model::describe_error(f->why);
  out["subtrees"] = std::move(subtrees);
  {
    std::vector<u64> node_list(mem.size() / page_geometry<>::size);
    model::scratch_pages map_scratch(mem);
    auto map = attach_preserve_bitmap(mem, root->memory_map(), map_scratch.pages(), node_list);
    if (!map) return refuse(map.err());
    if (status s = check_scratch_unpreserved(mem, d, *map); !s) return refuse(s.err());
  }
  out["status"] = "ok";
  if (handover->fallen_count() != 0) {  // the first to fall names the status; the kernel boots on
    out["status"] = to_string(handover->begin_fallen()->why.code);
    out["error"] = model::describe_error(handover->begin_fallen()->why);
    out["boots_on_what_stands"] = true;
  }
  // Reserve first: nothing may be allocated before the preserved memory is fenced off.
  out["restore"] = restore_map(mem, root->memory_map(), root->address());
  if (!out["restore"].value("naive_equals_linear", false)) {
    out["status"] = "restore failed";
    return;
  }
  if (inspect_only) return;

  // Allocations come from the largest scratch range, past the array if it lies there.
  const auto* ranges = static_cast<const unsigned char*>(mem.to_virt(phys_addr{d.scratch_addr.get()}, d.scratch_size.get()));
  phys_range fresh_range{};
  for (u64 i = 0; i < kho_scratch_count(d); ++i) {
    const kho_scratch e = upstream::impl::load_scratch(ranges, i);  // the array may be unaligned
    phys_range r{phys_addr{e.addr.get()}, phys_addr{e.addr.get() + e.size.get()}};
    const phys_addr array{d.scratch_addr.get()};
    if (r.start <= array && array < r.end) r.start = array + page_geometry<>::size;
    if (r.size() > fresh_range.size()) fresh_range = r;
  }
  out["scratch"] = {{"summary", fmt::format("{} KiB at {:#x} from kho_data", fresh_range.size() >> 10,
                                            fresh_range.start.value)}};
  bump_page_source<flat_memory> fresh(mem, fresh_range.start, fresh_range.end);
  auto luo = handover->find(luo_v5_subtree);
  if (!luo && luo.code() != errc::not_found)
    out["luo"] = {{"ok", false}, {"lost", "every session: the LUO subtree fell"}, {"retrieved", nlohmann::json::array()}};
  if (luo) {
    auto v = attach_luo_v5(mem, luo->phys, scratch.pages(), luo->size);
    nlohmann::json files = nlohmann::json::array();
    if (v) {
      for (const char* session : {"vm-alpha", "database"}) {
        if (!v->retrieve_session(session)) continue;
        for (const luo_session_ser& e : v->sessions()) {
          if (!detail::string_equals(e.name, luo_v5_session_name_len, session)) continue;
          for (const luo_file_ser& f : v->files(e)) {
            if (!v->retrieve_file(session, f.token.get())) continue;
            nlohmann::json file = {{"session", session}, {"token", f.token.get()}, {"compatible", f.compatible}};
            if (detail::string_equals(f.compatible, luo_v5_file_compatible_len, memfd_v2_compatible))
              file["memfd"] = model::reclaim_linux_memfd(fresh, mem, phys_addr{f.data.get()});
            else if (auto state = model::reclaim_vm_host_file(fresh, mem, f, v->files(e)); !state.is_null())
              file["vm_host"] = std::move(state);
            files.push_back(std::move(file));
          }
        }
      }
      out["vm_host_flbs"] = model::reclaim_vm_host_flbs(mem, v->flbs(), v->flb_count());
      v->release();
    }
    bool vm_host_ok = true;
    for (const auto& f : files)
      if (f.contains("vm_host")) vm_host_ok = vm_host_ok && f["vm_host"].value("ok", false);
    if (out.contains("vm_host_flbs"))
      for (const auto& [name, flb] : out["vm_host_flbs"].items()) vm_host_ok = vm_host_ok && flb.value("ok", false);
    if (!vm_host_ok && out["status"] == "ok") out["status"] = "vm host state lost";
    out["luo"] = {{"ok", bool(v)}, {"retrieved", std::move(files)}};
  }
  if (auto kho_luo = handover->find("kho-LUO")) out["kho_luo"] = model::reclaim_demo_luo(mem, kho_luo->phys);
  if (auto kho_memfd = handover->find("kho-memfd-demo")) out["memfd"] = model::reclaim_demo_memfd(fresh, kho_memfd->phys);
}

void print_restore_and_scratch(const nlohmann::json& out) {
  if (out.contains("restore") && out["restore"].contains("regions"))
    std::printf("restored into memblock: %llu regions, %llu KiB reserved (naive and linear %s)\n",
                static_cast<unsigned long long>(out["restore"]["regions"].get<u64>()),
                static_cast<unsigned long long>(out["restore"]["reserved_bytes"].get<u64>() >> 10),
                out["restore"]["naive_equals_linear"].get<bool>() ? "agree" : "DISAGREE");
  if (out.contains("scratch")) std::printf("KHO boot memory (scratch): %s\n", out["scratch"].value("summary", "").c_str());
}

void print_linux(const nlohmann::json& out) {
  std::printf("kho-v4 root FDT %s (via setup_data at %s) validated, %s, %zu subtrees\n",
              out["root"].get<std::string>().c_str(), out["kho_data"]["at"].get<std::string>().c_str(),
              out["kho_sealed"].get<bool>() ? "sealed by kho" : "as a stock kernel writes it (no kho seal)",
              out["subtrees"].size());
  for (const auto& t : out["subtrees"])
    std::printf("  %-16s %-18s at %s, %llu bytes%s%s\n", t["name"].get<std::string>().c_str(),
                t["format"].get<std::string>().empty() ? "blob" : t["format"].get<std::string>().c_str(),
                t["phys"].get<std::string>().c_str(), static_cast<unsigned long long>(t["size"].get<u64>()),
                t.value("stands", true) ? "" : ": FELL, left out: ",
                t.value("stands", true) ? "" : t["error"].dump().c_str());
  print_restore_and_scratch(out);
  if (out.contains("luo") && out["luo"].contains("lost"))
    std::printf("LUO: nothing retrieved, lost %s\n", out["luo"]["lost"].get<std::string>().c_str());
  if (out.contains("luo"))
    for (const auto& f : out["luo"]["retrieved"])
      std::printf("LUO: retrieved %s/%llu (%s)%s%s\n", f["session"].get<std::string>().c_str(),
                  static_cast<unsigned long long>(f["token"].get<u64>()), f["compatible"].get<std::string>().c_str(),
                  f.contains("memfd") || f.contains("vm_host") ? ": " : "",
                  f.contains("memfd")     ? f["memfd"].value("summary", "").c_str()
                  : f.contains("vm_host") ? f["vm_host"].value("summary", "").c_str()
                                          : "");
  if (out.contains("vm_host_flbs"))
    for (const auto& [name, flb] : out["vm_host_flbs"].items())
      std::printf("LUO FLB %s\n", flb.value("summary", "").c_str());
  if (out.contains("memfd")) std::printf("kho memfd: %s\n", out["memfd"].value("summary", "").c_str());
}

/// The next kernel: maps memory elsewhere, attaches, walks, reports. Returns the exit code.
int run_next_image(int fd, u64 base, bool json, const std::string& stale_report, bool inspect_only) {
  nlohmann::json out;
  if (!stale_report.empty()) {
    const auto colon = stale_report.find(':');
    out["stale_byte"] = {{"phys", stale_report.substr(0, colon)},
                         {"changed", stale_report.substr(colon + 1) == "1"}};
  }
  model::boot_page boot{};
  const bool have_boot = ::pread(fd, &boot, sizeof boot, 0) == sizeof boot &&
                         boot.magic.get() == model::boot_magic;
  const void* writer_virt = have_boot ? reinterpret_cast<const void*>(boot.writer_virt.get()) : nullptr;
  auto pm = model::physical_memory::adopt_fd(fd, base, /*writable=*/true, writer_virt);
  if (pm.virt() == writer_virt) die("the next image must map memory at a new address");
  out["reader_base"] = model::hex(reinterpret_cast<u64>(pm.virt()));
  if (!have_boot) {
    run_next_linux(pm, out, inspect_only);
  } else {
    out["writer_base"] = model::hex(boot.writer_virt.get());
    out.update(model::inspect(pm.memory(), phys_addr{boot.root.get()}));
    if (out["status"] == "ok" && out.value("generation", u64{0}) != boot.generation.get())
      out["status"] = to_string(errc::stale);
    if (out["status"] == "ok") {
      // Reserve first: nothing may be allocated before the preserved memory is fenced off.
      out["restore"] = restore_preserved(pm.memory(), out);
      if (!out["restore"].value("naive_equals_linear", false)) out["status"] = "restore failed";
      phys_range scratch{};
      for (const auto& e : out["entries"])
        if (e["compatible"] == radix_compatible)
          out["scratch"] = grow_scratch(pm.memory(), phys_addr{std::stoull(e["phys"].get<std::string>(), nullptr, 16)},
                                        std::min(u64{64} << 20, pm.size() / 8), scratch);
      if (scratch.empty()) out["status"] = "no scratch memory";
      if (!inspect_only && !scratch.empty()) reclaim_services(pm, phys_addr{boot.root.get()}, scratch, out);
    }
  }
  const bool ok = out["status"] == "ok";
  if (json) {
    std::printf("%s\n", out.dump(2).c_str());
  } else {
    if (out.contains("writer_base"))
      std::printf("next image: memory mapped at %s (the old image used %s)\n",
                  out["reader_base"].get<std::string>().c_str(), out["writer_base"].get<std::string>().c_str());
    else
      std::printf("next image: memory mapped at %s\n", out["reader_base"].get<std::string>().c_str());
    const bool partly = out.value("boots_on_what_stands", false);
    if (!ok) {
      std::printf("handover %s: %s\n", partly ? "PARTLY REFUSED (booting on what stands)" : "REFUSED",
                  out["status"].get<std::string>().c_str());
      if (out.contains("error")) std::printf("  %s\n", out["error"].dump().c_str());
    }
    if (partly || (ok && out.value("format", "") == "kho-v4")) {
      print_linux(out);
    } else if (ok) {
      std::printf("handover root %s validated, generation %llu, %zu entries\n",
                  out["root"].get<std::string>().c_str(),
                  static_cast<unsigned long long>(out["generation"].get<u64>()),
                  out["entries"].size());
      for (const auto& e : out["entries"])
        std::printf("  %-22s %-14s at %s: %s\n", e["name"].get<std::string>().c_str(),
                    e["compatible"].get<std::string>().c_str(),
                    e["phys"].get<std::string>().c_str(), e.value("summary", "ok").c_str());
      print_restore_and_scratch(out);
      if (out.contains("luo") && out["luo"].value("ok", false)) {
        const auto& luo = out["luo"];
        std::printf("LUO: retrieved %zu files, finished %zu sessions; never reclaimed:",
                    luo["retrieved"].size(), luo["finished"].size());
        for (const auto& u : luo["unreclaimed"])
          std::printf(" %s/%llu", u["session"].get<std::string>().c_str(),
                      static_cast<unsigned long long>(u["token"].get<u64>()));
        std::printf("\n");
      }
      if (out.contains("memfd")) std::printf("memfd: %s\n", out["memfd"].value("summary", out["memfd"].dump()).c_str());
    }
  }
  return ok ? 0 : 1;
}

// ---- A chain of live updates (--chain N) ----

struct chain_args {
  unsigned length = 0;      // images in the chain
  std::vector<std::string> next_images;  // executable of image 2, 3, ... (default: this one)
  u32 new_file_seals = upstream::memfd_seal_grow;
  bool negotiate = true;
  unsigned image = 1;       // this image (1 = A)
  unsigned crash_image = 1; // the image that dies at crash_at
  std::string crash_at;
  std::optional<u64> stale_seed;  // image crash_image leaves one sealed byte stale
  bool json = false;
  model::hop_formats formats{};
  nlohmann::json log = nlohmann::json::array();  // one entry per hop written so far
};

manifest_view own_manifest() {
  auto m = manifest_view::parse(kho_image_manifest, kho_image_manifest_size);
  if (!m) die("this image's own manifest does not parse");
  return *m;
}

/// The executable of the image after a.image.
std::string next_image_path(const chain_args& a) {
  return a.image <= a.next_images.size() ? a.next_images[a.image - 1] : std::string("/proc/self/exe");
}

/// What this image writes without negotiating: its newest versions; a memfd-v1-only
/// image creates no sealed file (it could not hand the seals over).
model::hop_input own_hop(const chain_args& a, u64 kexec_count) {
  const manifest_view own = own_manifest();
  model::hop_input in{a.image, kexec_count, model::formats_for_hop(a.image, a.formats), a.new_file_seals};
  in.formats.root = highest_version(own.writes("kho"));
  in.formats.memfd = highest_version(own.writes("memfd"));
  if (in.formats.memfd < 2) in.new_file_seals = 0;
  return in;
}

/// Before anything of the hop is written: negotiate with the next image's manifest and
/// return the versions, or print why the update is refused and exit 2.
model::hop_input plan_hop(const chain_args& a, u64 kexec_count, const model::chain_carry& carry) {
  model::hop_input in = own_hop(a, kexec_count);
  if (!a.negotiate) return in;
  const std::string path = next_image_path(a);
  const std::vector<unsigned char> bytes = model::elf_section(model::read_whole_file(path), manifest_section);
  auto next = manifest_view::parse(bytes.data(), bytes.size());
  if (!next) die(fmt::format("{}: its manifest does not parse: {}", path, to_string(next.code())));
  const model::hop_decision d = model::negotiate_hop(own_manifest(), *next, in, carry);
  if (!d.table.ok()) {
    if (a.json) {
      std::printf("%s\n", nlohmann::json{{"status", "refused before kexec"},
                                         {"image", model::chain_image(a.image)},
                                         {"next_image", path},
                                         {"qualify", model::to_json(d.table)},
                                         {"chain", {{"hops", a.log}}}}
                               .dump(2)
                               .c_str());
    } else {
      std::printf("image %s: live update refused before kexec, nothing written\n%s",
                  model::chain_image(a.image).c_str(), model::format_qualify(d.table).c_str());
    }
    std::fflush(stdout);
    std::exit(2);
  }
  in.formats = d.formats;
  return in;
}

/// Writes this image's hop, in a child killed at crash_at if this is the crash image
/// (the parent plays firmware and boots the next image over what was left). Returns
/// the hop's entry, or null if the writer died before sending it.
nlohmann::json write_hop(model::physical_memory& pm, const chain_args& a, const model::chain_carry& carry,
                         model::free_page_source& pages, u64 kexec_count) {
  const model::hop_input in = plan_hop(a, kexec_count, carry);
  const bool crash_here = a.image == a.crash_image && !a.crash_at.empty();
  if (!crash_here) {
    nlohmann::json entry =
        model::write_chain_hop(pm, in, carry, pages, [](const std::string&) {}, [](const nlohmann::json&) {});
    if (a.image == a.crash_image && a.stale_seed) {
      auto boot = upstream::find_kho_data(pm.memory(), pm.base());
      if (!boot) die("the hop just written has no boot data");
      const std::string report =
          leave_stale_byte(pm, model::sealed_spans(pm.memory(), phys_addr{boot->data.fdt_addr.get()}), *a.stale_seed);
      const auto colon = report.find(':');
      entry["stale_byte"] = {{"phys", report.substr(0, colon)}, {"changed", report.substr(colon + 1) == "1"}};
    }
    return entry;
  }
  int fds[2];
  if (::pipe(fds) != 0) model::throw_errno("pipe");
  pid_t child = ::fork();
  if (child < 0) model::throw_errno("fork");
  if (child == 0) {
    ::close(fds[0]);
    model::write_chain_hop(
        pm, in, carry, pages, [&](const std::string& step) { if (step == a.crash_at) ::raise(SIGKILL); },
        [&](const nlohmann::json& entry) {
          const std::string text = entry.dump();
          if (::write(fds[1], text.data(), text.size()) != static_cast<ssize_t>(text.size())) std::_Exit(3);
          ::close(fds[1]);
        });
    std::_Exit(0);
  }
  ::close(fds[1]);
  std::string text;
  char buf[4096];
  for (ssize_t n; (n = ::read(fds[0], buf, sizeof buf)) > 0;) text.append(buf, static_cast<size_t>(n));
  ::close(fds[0]);
  int wstatus = 0;
  ::waitpid(child, &wstatus, 0);
  if (!a.json)
    std::printf("image %s %s at step %s\n", model::chain_image(a.image).c_str(),
                WIFSIGNALED(wstatus) ? "killed" : "exited", a.crash_at.c_str());
  return text.empty() ? nlohmann::json(nullptr) : nlohmann::json::parse(text);
}

/// kexec into image a.image + 1 of the chain, passing the hop log.
[[noreturn]] void exec_next_in_chain(model::physical_memory& pm, const chain_args& a, u64 base) {
  std::fflush(stdout);
  pm.keep_across_exec();
  const std::string fd = std::to_string(pm.fd()), b = std::to_string(base), n = std::to_string(a.length),
                    next = std::to_string(a.image + 1), crash_image = std::to_string(a.crash_image),
                    log = a.log.dump();
  const std::string exe = next_image_path(a);
  std::vector<const char*> args = {exe.c_str(), "--next-image-fd", fd.c_str(), "--base", b.c_str(),
                                   "--chain", n.c_str(), "--hop", next.c_str(), "--chain-log", log.c_str()};
  if (a.json) args.push_back("--json");
  for (const std::string& image : a.next_images) {
    args.push_back("--next-image");
    args.push_back(image.c_str());
  }
  if (a.new_file_seals == 0) args.push_back("--unsealed");
  if (!a.negotiate) args.push_back("--no-negotiate");
  if (a.formats.kho_formats) args.push_back("--kho-formats");
  const std::string seed = a.stale_seed ? std::to_string(*a.stale_seed) : std::string();
  if (!a.crash_at.empty() || a.stale_seed) {
    args.push_back("--crash-hop");
    args.push_back(crash_image.c_str());
  }
  if (!a.crash_at.empty()) {
    args.push_back("--crash-at");
    args.push_back(a.crash_at.c_str());
  }
  if (a.stale_seed) {
    args.push_back("--stale-byte");
    args.push_back(seed.c_str());
  }
  args.push_back(nullptr);
  ::execv(exe.c_str(), const_cast<char* const*>(args.data()));
  model::throw_errno("exec " + exe);
}

void print_chain(const nlohmann::json& out) {
  for (const auto& h : out["chain"]["hops"]) {
    if (h.is_null()) continue;
    std::printf("hop %llu: image %s (%s) wrote generation %llu, kexec_count %llu: %zu sessions, %llu files, "
                "%llu folios (%llu carried, %llu faulted in), %llu pages preserved, %llu allocated, %llu released",
                static_cast<unsigned long long>(h["hop"].get<u64>()), h["image"].get<std::string>().c_str(),
                h["release"].get<std::string>().c_str(), static_cast<unsigned long long>(h["generation"].get<u64>()),
                static_cast<unsigned long long>(h["kexec_count"].get<u64>()), h["sessions"].size(),
                static_cast<unsigned long long>(h["files"].get<u64>()),
                static_cast<unsigned long long>(h["folios"].get<u64>()),
                static_cast<unsigned long long>(h["carried_folios"].get<u64>()),
                static_cast<unsigned long long>(h["faulted_in"].get<u64>()),
                static_cast<unsigned long long>(h["preserved_pages"].get<u64>()),
                static_cast<unsigned long long>(h["allocated_pages"].get<u64>()),
                static_cast<unsigned long long>(h.value("released_pages", u64{0})));
    if (!h["finished"].empty()) std::printf(", finished %s", h["finished"].dump().c_str());
    if (!h["added"].empty()) std::printf(", added %s", h["added"].dump().c_str());
    std::printf("\n");
    if (h.contains("read_by"))
      std::printf("  read by %s: kexec_count %llu, previous_release %s, %llu pages checked, digest %s\n",
                  h["read_by"]["image"].get<std::string>().c_str(),
                  static_cast<unsigned long long>(h["read_by"].value("kexec_count", u64{0})),
                  h["read_by"].value("previous_release", "").c_str(),
                  static_cast<unsigned long long>(h["read_by"].value("pages_checked", u64{0})),
                  h["read_by"].value("digest_ok", false) ? "ok" : "MISMATCH");
  }
}

/// The reader gate: a handover that validates but holds a version this image's
/// manifest does not read is refused, as the older kernel it stands for would.
void gate_by_manifest(model::physical_memory& pm, nlohmann::json& out) {
  const phys_addr root{std::stoull(out["root"].get<std::string>(), nullptr, 16)};
  const model::qualify_result gate = model::reader_gate(own_manifest(), model::inspect_kho_fdt(pm.memory(), root));
  if (gate.ok()) return;
  out["status"] = "version not read";
  out["error"] = model::to_json(gate);
}

/// One image of the chain after A: validate and restore the handover as the one-hop
/// model does, then read it as the chain's next image, and either write the next hop
/// and kexec, or (last image) report. Returns the exit code.
int run_chain_image(int fd, u64 base, chain_args a) {
  nlohmann::json out;
  auto pm = model::physical_memory::adopt_fd(fd, base, /*writable=*/true, nullptr);
  out["reader_base"] = model::hex(reinterpret_cast<u64>(pm.virt()));
  run_next_linux(pm, out, /*inspect_only=*/true);
  if (out["status"] == "ok") gate_by_manifest(pm, out);
  const unsigned hop = a.image - 1;
  nlohmann::json& prev = a.log.at(hop - 1);
  std::optional<model::chain_carry> carry;
  u64 old_pages = 0;
  if (out["status"] == "ok" && prev.is_null()) {
    out["status"] = "chain mismatch";
    out["error"] = "the writer of the hop died before it was sealed, yet the handover validates";
  } else if (out["status"] == "ok") {
    model::scratch_pages scratch(pm.memory());
    auto root = upstream::attach_kho_handover(pm.memory(), phys_addr{std::stoull(out["root"].get<std::string>(), nullptr, 16)},
                                              scratch.pages());
    if (!root) die("the validated root no longer attaches");
    std::optional<u64> kho_entries;
    if (prev.contains("kho_xarray_entries")) kho_entries = prev["kho_xarray_entries"].get<u64>();
    model::chain_read r = model::read_chain_hop(pm.memory(), *root, a.image, a.image == a.length,
                                                std::stoull(prev["digest"].get<std::string>(), nullptr, 16), kho_entries);
    prev["read_by"] = r.report;
    if (r.problem) {
      out["status"] = "chain mismatch";
      out["error"] = *r.problem;
    } else {
      carry = std::move(r.carry);
      old_pages = r.old_pages;
    }
  }
  const bool ok = out["status"] == "ok";
  if (ok && a.image < a.length) {
    // Everything of the previous handover not carried is released; the writer's
    // allocator hands out nothing else.
    model::free_page_source pages = model::chain_pages(pm, *carry);
    const u64 kexec_count = prev["read_by"]["kexec_count"].get<u64>() + 1;
    nlohmann::json entry = write_hop(pm, a, *carry, pages, kexec_count);
    if (!entry.is_null()) entry["released_pages"] = old_pages - model::carried_pages(*carry);
    a.log.push_back(std::move(entry));
    if (!a.json)
      std::printf("image %s: read hop %u, wrote hop %u, kexec...\n", model::chain_image(a.image).c_str(), hop, a.image);
    exec_next_in_chain(pm, a, base);
  }
  out["chain"] = {{"length", a.length}, {"image", model::chain_image(a.image)}, {"hops", a.log}};
  for (const auto& h : a.log)
    if (h.is_object() && h.contains("stale_byte")) out["stale_byte"] = h["stale_byte"];
  if (ok) {
    // The last image: what it read is plan_after(last hop), A's state plus every hop's
    // changes, with the same pages the writers recorded (the digests).
    const model::chain_plan final_plan = model::plan_after(hop);
    u64 files = 0, pages = 0;
    for (const auto& s : final_plan)
      for (const auto& f : s.files) ++files, pages += f.indices.size();
    out["chain"]["final"] = {{"ok", true}, {"sessions", final_plan.size()}, {"files", files}, {"folios", pages}};
  }
  if (a.json) {
    std::printf("%s\n", out.dump(2).c_str());
  } else {
    std::printf("image %s (%u of %u): memory mapped at %s\n", model::chain_image(a.image).c_str(), a.image,
                a.length, out["reader_base"].get<std::string>().c_str());
    print_chain(out);
    if (!ok) {
      std::printf("handover REFUSED: %s\n", out["status"].get<std::string>().c_str());
      if (out.contains("error")) std::printf("  %s\n", out["error"].dump().c_str());
    } else {
      std::printf("chain of %u images ok: final state %s\n", a.length, out["chain"]["final"].dump().c_str());
    }
  }
  return ok ? 0 : 1;
}

/// Image A of the chain: write hop 1 into new memory and kexec into B.
[[noreturn]] void run_chain_first(u64 base, u64 size, const std::string& memory_file, chain_args a) {
  auto pm = model::physical_memory::create(base, size, memory_file);
  model::free_page_source pages = model::chain_pages(pm, {});
  a.log.push_back(write_hop(pm, a, {}, pages, 1));
  if (!a.json) std::printf("image A: memory mapped at %p, wrote hop 1, kexec...\n", pm.virt());
  exec_next_in_chain(pm, a, base);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"kho userspace kexec model"};
  bool json = false;
  std::string crash_at, format = "linux";
  model::linux_demo_options linux_opts;
  u64 base = model::default_base, size = model::default_size, generation = 1;
  int next_fd = -1;
  std::string memory_file, stale_report;
  std::optional<u64> stale_seed;
  bool inspect_only = false;
  app.add_flag("--json", json, "print a machine-readable summary");
  std::vector<std::string> all_steps = steps;
  all_steps.insert(all_steps.end(), model::linux_demo_steps.begin(), model::linux_demo_steps.end());
  app.add_option("--crash-at", crash_at, "kill the old image at this step")->check(CLI::IsMember(all_steps));
  app.add_option("--format", format, "the handover's root: linux (kho-v4 FDT) or kho-root-v1")
      ->check(CLI::IsMember({"linux", "kho-root-v1"}))
      ->capture_default_str();
  bool stock = false;
  app.add_flag("--stock", stock, "linux: no kho,* properties and no VM host state (exactly what a stock kernel writes)");
  app.add_flag("--kho-formats", linux_opts.kho_formats, "linux: also kho's own formats as subtrees");
  bool no_hugetlb = false, no_guest_memfd = false, no_iommu = false;
  app.add_flag("--no-hugetlb", no_hugetlb, "linux: no hugetlb-backed file (huge-memfd-v1, hugetlb-v1 FLB)");
  app.add_flag("--no-guest-memfd", no_guest_memfd, "linux: no KVM VM and guest_memfd (kvm_vm_luo_v1, guest_memfd_luo_v1)");
  app.add_flag("--no-iommu", no_iommu, "linux: no IOMMU and PCI FLBs, iommufd or vfio-pci file");
  app.add_option("--base", base, "physical base of memory");
  app.add_option("--size", size, "bytes of physical memory");
  app.add_option("--memory-file", memory_file, "back physical memory by this file (kept)");
  app.add_option("--generation", generation, "handover generation");
  app.add_flag("--inspect-only", inspect_only,
               "the next image validates and reports but reclaims nothing, so the memory "
               "file stays a sealed handover (reclaiming adopts and changes structures)");
  app.add_option("--stale-byte", stale_seed,
                 "after sealing, leave one covered byte stale, chosen by this seed (a torn write)");
  std::string broken_subtree;
  app.add_option("--break-subtree", broken_subtree,
                 "linux: after writing, flip the first byte of this subtree's data; the next image "
                 "boots on the subtrees that stand");
  app.add_option("--next-image-fd", next_fd, "internal: run as the next image on this fd")
      ->group("");
  app.add_option("--stale-report", stale_report, "internal: which byte went stale")->group("");
  chain_args chain;
  app.add_option("--chain", chain.length, "a chain of N live updates A -> B -> ... (2 <= N <= 26)");
  app.add_option("--crash-hop", chain.crash_image,
                 "with --chain: the image that dies at --crash-at or leaves --stale-byte (1 = A)");
  app.add_option("--hop", chain.image, "internal: this image's place in the chain")->group("");
  std::string chain_log;
  app.add_option("--chain-log", chain_log, "internal: the hops written so far (JSON)")->group("");
  app.add_option("--next-image", chain.next_images,
                 "the executable of the next image (repeat for B, C, ...; default: this one); "
                 "its manifest is negotiated before each hop is written");
  bool unsealed = false, no_negotiate = false;
  app.add_flag("--unsealed", unsealed, "memfds are created without seals (memfd-v1 can carry them)");
  app.add_flag("--no-negotiate", no_negotiate,
               "write this image's newest versions without asking the next image (its gate refuses)");
  CLI11_PARSE(app, argc, argv);
  if (unsealed) chain.new_file_seals = 0;
  chain.negotiate = !no_negotiate;
  // --next-image makes the update a chain: A, then one image per --next-image.
  if (!chain.next_images.empty() && chain.length == 0) chain.length = static_cast<unsigned>(chain.next_images.size()) + 1;
  if (kho_image_is_legacy && chain.length == 0)
    die("kexec_model_legacy runs only in a chain (--chain N or --next-image EXE)");

  try {
    if (chain.length != 0) {
      // The hop log travels on the command line (about 1.4 KB a hop; one argument may
      // hold 128 KiB): 26 images, A to Z.
      if (chain.length < 2 || chain.length > 26) die("--chain takes 2 to 26 images (A to Z)");
      if (format != "linux" || stock || inspect_only || !broken_subtree.empty())
        die("--chain writes Linux handovers sealed by kho: no --format kho-root-v1, --stock, --inspect-only, "
            "--break-subtree");
      if (stale_seed && !crash_at.empty()) die("--stale-byte and --crash-at are two experiments: one at a time");
      if (chain.crash_image < 1 || chain.crash_image >= chain.length) die("--crash-hop must name an image that writes");
      if (!crash_at.empty() && std::find(model::linux_demo_steps.begin(), model::linux_demo_steps.end(), crash_at) ==
                                   model::linux_demo_steps.end())
        die("--crash-at " + crash_at + " is not a step of the chain's writer");
      chain.crash_at = crash_at;
      chain.stale_seed = stale_seed;
      chain.json = json;
      chain.formats.kho_formats = linux_opts.kho_formats;
      if (next_fd < 0) run_chain_first(base, size, memory_file, chain);
      chain.log = nlohmann::json::parse(chain_log);
      if (chain.image < 2 || chain.image > chain.length || chain.log.size() != chain.image - 1)
        die("--hop and --chain-log disagree");
      return run_chain_image(next_fd, base, chain);
    }
    if (next_fd >= 0) return run_next_image(next_fd, base, json, stale_report, inspect_only);
    if (base % page_geometry<>::size != 0 || size < 16 * page_geometry<>::size)
      die("--base must be page-aligned and --size at least 16 pages");
    const auto& format_steps = steps_of(format);
    if (!crash_at.empty() && std::find(format_steps.begin(), format_steps.end(), crash_at) == format_steps.end())
      die("--crash-at " + crash_at + " is not a step of --format " + format);
    if ((stock || linux_opts.kho_formats) && format != "linux") die("--stock and --kho-formats need --format linux");
    if (!broken_subtree.empty() && (format != "linux" || !crash_at.empty() || stale_seed))
      die("--break-subtree needs --format linux, without --crash-at or --stale-byte");
    if (stock && (!crash_at.empty() || stale_seed))
      die("--stock writes no seal: a crash or a stale byte cannot be told from a valid handover");
    linux_opts.kho_properties = !stock;
    // A stock kernel (shared/LINUX-FORMATS.md) has none of the VM host's handlers, so it
    // writes none of their state.
    linux_opts.vm_host = {!no_hugetlb && !stock, !no_guest_memfd && !stock, !no_iommu && !stock};
    linux_opts.generation = generation;
    auto run_old = [&](model::physical_memory& memory) {
      if (format == "kho-root-v1") return run_old_image(memory, crash_at, generation);
      return model::build_linux_handover(memory, linux_opts, [&](const std::string& step) {
        if (step == crash_at) ::raise(SIGKILL);
      });
    };

    auto pm = model::physical_memory::create(base, size, memory_file);
    if (crash_at.empty()) {
      const covered_spans covered = run_old(pm);
      if (stale_seed) stale_report = leave_stale_byte(pm, covered, *stale_seed);
      if (!broken_subtree.empty()) break_subtree(pm, broken_subtree);
    } else {
      pid_t child = ::fork();
      if (child < 0) model::throw_errno("fork");
      if (child == 0) {
        run_old(pm);
        std::_Exit(0);
      }
      int wstatus = 0;
      ::waitpid(child, &wstatus, 0);
      if (!json)
        std::printf("old image %s at step %s\n",
                    WIFSIGNALED(wstatus) ? "killed" : "exited", crash_at.c_str());
    }
    if (!json) std::printf("old image: memory mapped at %p, kexec...\n", pm.virt());
    std::fflush(stdout);
    pm.keep_across_exec();
    const std::string fd = std::to_string(pm.fd()), b = std::to_string(base);
    std::vector<const char*> args = {"/proc/self/exe", "--next-image-fd", fd.c_str(), "--base",
                                     b.c_str()};
    if (json) args.push_back("--json");
    if (inspect_only) args.push_back("--inspect-only");
    if (!stale_report.empty()) {
      args.push_back("--stale-report");
      args.push_back(stale_report.c_str());
    }
    args.push_back(nullptr);
    ::execv("/proc/self/exe", const_cast<char* const*>(args.data()));
    model::throw_errno("exec");
  } catch (const std::exception& e) {
    die(e.what());
  }
}
