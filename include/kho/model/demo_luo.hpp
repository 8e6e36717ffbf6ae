// kho/model/demo_luo.hpp: LUO sessions for the kexec demo (hosted only).
//
// The old kernel's side: a few services hand over their file descriptors, two VMs
// share one iommufd (a file-lifecycle-bound object), and the LUO root is named in
// the handover root. The next kernel's side: some files are retrieved, some sessions
// finished, and what was never reclaimed is reported.
#pragma once

#include <kho/handover.hpp>
#include <kho/luo.hpp>
#include <kho/model/inspect_luo.hpp>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cstring>
#include <string>

namespace kho::model {

/// Builds the demo services' sessions and adds the sealed LUO root to `root` as
/// "LUO". Each file's handler data is a page holding a short description, as a
/// memfd's or a device's serialized state would be.
/// Errors: out_of_memory, and whatever the writers report.
/// `root` is anything with add(name, compatible, phys, size): a handover_writer, or
/// an adapter naming a subtree of Linux's root FDT.
template <unsigned PageShift = 12, PageSource Source, class RootWriter>
status build_demo_luo(Source& pages, RootWriter& root, u64 liveupdate_number = 1) {
  auto luo = luo_writer<Source, PageShift>::create(pages, liveupdate_number);
  if (!luo) return luo.err();
  auto state = [&](const std::string& text) -> result<phys_addr> {
    auto pa = alloc_zeroed(pages, order{0}, page_geometry<PageShift>::size);
    if (!pa) return pa;
    std::memcpy(pages.memory().to_virt(*pa, text.size()), text.data(), text.size());
    return pa;
  };
  auto iommu_state = state("iommufd: 2 IOAS, 3 HWPTs");
  if (!iommu_state) return iommu_state.err();
  const luo_flb iommufd{"iommufd:0", *iommu_state};

  struct file_spec {
    const char* session;
    u64 token;
    const char* compatible;
    const char* description;
    bool uses_iommufd;
  };
  const file_spec files[] = {
      {"vm-alpha", 1, "memfd-v1", "guest RAM, 4 GiB", false},
      {"vm-alpha", 2, "vfio-pci-v1", "0000:3b:00.0 NVMe", true},
      {"vm-beta", 1, "memfd-v1", "guest RAM, 2 GiB", false},
      {"vm-beta", 2, "vfio-pci-v1", "0000:5e:00.1 NIC VF", true},
      {"database", 1, "memfd-v1", "buffer pool, 512 MiB", false},
      {"database", 2, "memfd-v1", "WAL staging, 64 MiB", false},
  };
  for (const char* session : {"vm-alpha", "vm-beta", "database"}) KHO_TRY(luo->create_session(session));
  for (const file_spec& f : files) {
    auto data = state(f.description);
    if (!data) return data.err();
    KHO_TRY(luo->preserve_file(f.session, {f.token, f.compatible, *data, 0},
                               f.uses_iommufd ? &iommufd : nullptr));
  }
  auto sealed = luo->seal();
  if (!sealed) return sealed.err();
  return root.add(luo_entry_name, luo_compatible, sealed->root, sealed->size);
}

/// The next kernel's side of the demo: attaches the LUO root at `luo_root`, retrieves
/// vm-alpha's files and the database's first file, finishes vm-alpha and the
/// database (vm-beta is left running unreclaimed), and reports as JSON: "ok",
/// "retrieved", "finished", "unreclaimed" (session, token, compatible,
/// session_finished), "flbs" (name, refs, retrieved, remaining), "error" if not ok.
inline nlohmann::json reclaim_demo_luo(const flat_memory& mem, phys_addr luo_root) {
  luo_scratch scratch(mem);
  auto v = attach_luo(mem, luo_root, scratch.pages());
  if (!v) return {{"ok", false}, {"error", luo_error_json(v.err())}};
  nlohmann::json out{{"ok", true}, {"liveupdate_number", v->liveupdate_number()}};
  nlohmann::json retrieved = nlohmann::json::array(), finished = nlohmann::json::array();
  const std::pair<const char*, u64> wanted[] = {{"vm-alpha", 1}, {"vm-alpha", 2}, {"database", 1}};
  for (auto [session, token] : wanted) {
    auto f = v->retrieve(session, token);
    if (!f) return {{"ok", false}, {"error", luo_error_json(f.err())}};
    retrieved.push_back({{"session", session},
                         {"token", token},
                         {"compatible", f->file->compatible},
                         {"flb", f->flb ? nlohmann::json(f->flb->name) : nlohmann::json(nullptr)},
                         {"flb_first", f->flb_first}});
  }
  for (const char* session : {"vm-alpha", "database"}) {
    auto done = v->finish(session);
    if (!done) return {{"ok", false}, {"error", luo_error_json(done.err())}};
    finished.push_back({{"session", session},
                        {"files", done->files},
                        {"unreclaimed", done->unreclaimed},
                        {"flbs_finished", done->flbs}});
  }
  nlohmann::json unreclaimed = nlohmann::json::array();
  v->for_each_unreclaimed([&](const luo_unreclaimed& u) {
    unreclaimed.push_back({{"session", u.session->name},
                           {"token", u.file->token.get()},
                           {"compatible", u.file->compatible},
                           {"session_finished", u.session_finished}});
  });
  nlohmann::json flbs = nlohmann::json::array();
  for (const luo_flb_entry& b : v->flbs()) {
    auto st = v->flb_status(b.name);
    flbs.push_back({{"name", b.name},
                    {"refs", st->refs},
                    {"retrieved", st->retrieved},
                    {"remaining", st->remaining}});
  }
  out["retrieved"] = std::move(retrieved);
  out["finished"] = std::move(finished);
  out["unreclaimed"] = std::move(unreclaimed);
  out["flbs"] = std::move(flbs);
  v->release();
  return out;
}

/// The same, for the handover root's entry.
inline nlohmann::json reclaim_demo_luo(const flat_memory& mem, const handover_entry& entry) {
  return reclaim_demo_luo(mem, phys_addr{entry.phys.get()});
}

}  // namespace kho::model
