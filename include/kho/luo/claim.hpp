// kho/luo/claim.hpp: luo_view::claim_pages, defined out of line: every page a validated
// LUO root reaches, claimed in kho::page_owners, where the next kernel checks the whole
// handover at once (no page owned twice, every owned page preserved).
#pragma once

#include <kho/luo/layout.hpp>
#include <kho/luo/view.hpp>
#include <kho/page_owners.hpp>
#include <kho/phys.hpp>
#include <kho/result.hpp>

namespace kho {

template <Memory M, PageSource Scratch, unsigned PageShift>
template <class Owners>
status luo_view<M, Scratch, PageShift>::claim_pages(Owners& owners) const {
  const page_owner me{structure, root_};
  KHO_TRY(owners.claim(root_, 1, me));
  KHO_TRY(sessions().claim_chain(owners, me));
  for (const luo_session_entry& e : sessions()) {
    const file_view list = files(e);
    KHO_TRY(list.claim_chain(owners, me));
    for (const luo_file_entry& f : list)
      if (const u64 data = f.data.get()) KHO_TRY(owners.claim(phys_addr{data}, 1, me));
  }
  KHO_TRY(flbs().claim_chain(owners, me));
  for (const luo_flb_entry& b : flbs())
    if (const u64 data = b.data.get()) KHO_TRY(owners.claim(phys_addr{data}, 1, me));
  return {};
}

}  // namespace kho
