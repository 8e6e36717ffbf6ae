// Handover root, model-based: random add/remove/update/seal/reattach sequences
// against a std::map oracle; every sealed state must read back at a new address.
#include <kho/handover.hpp>

#include "rc_commands.hpp"
#include "test_arena.hpp"

#include <rapidcheck.h>
#include <rapidcheck/gtest.h>
#include <rapidcheck/state.h>

#include <map>
#include <memory>
#include <string>

namespace kho::test::handover_model_test {
namespace {

struct entry_model {
  std::string compatible;
  u64 phys;
  u64 size;
};

struct root_model {
  std::map<std::string, entry_model> entries;
  std::vector<std::string> order;  // insertion order, which the root keeps

  // Whether [offset, offset + size) (an empty block: the byte at offset) shares a byte
  // with any entry but `except`: the writer refuses that as aliased.
  bool shares_bytes(u64 offset, u64 size, const std::string& except = {}) const {
    const u64 last = offset + (size ? size - 1 : 0);
    for (const auto& [name, e] : entries) {
      const u64 e_last = e.phys + (e.size ? e.size - 1 : 0);
      if (name != except && offset <= e_last && e.phys <= last) return true;
    }
    return false;
  }
};

template <unsigned Shift>
struct root_sut {
  using writer_type = handover_writer<typename arena<Shift>::source_type, Shift>;
  arena<Shift> mem{u64{8} << 20};
  std::unique_ptr<writer_type> writer;
  phys_addr blob{};

  root_sut() {
    auto w = writer_type::create(mem.pages());
    RC_ASSERT(w.has_value());
    writer = std::make_unique<writer_type>(std::move(*w));
    blob = *alloc_zeroed(mem.pages(), order{0}, page_geometry<Shift>::size);
    for (u64 i = 0; i < 64; ++i) mem.bytes(blob)[i] = static_cast<unsigned char>(i * 7);
  }
};

template <unsigned Shift>
using command = rc::state::Command<root_model, root_sut<Shift>>;

rc::Gen<std::string> name_gen() {
  return rc::gen::map(rc::gen::inRange(0, 40), [](int i) { return "n" + std::to_string(i); });
}

template <unsigned Shift>
struct add_entry : command<Shift> {
  std::string name = *name_gen();
  std::string compat = *rc::gen::element<std::string>("kho-v2", "luo-v1", "xarray-v1");
  u64 offset = *rc::gen::inRange<u64>(0, 512);
  u64 size = *rc::gen::inRange<u64>(0, 16);

  void apply(root_model& m) const override {
    if (m.entries.size() == handover_capacity<Shift> || m.entries.count(name)) return;
    if (m.shares_bytes(offset, size)) return;
    m.entries[name] = {compat, offset, size};
    m.order.push_back(name);
  }
  void run(const root_model& m, root_sut<Shift>& s) const override {
    const status st = s.writer->add(name.c_str(), compat.c_str(), s.blob + offset, size);
    if (m.entries.count(name))
      RC_ASSERT(st.code() == errc::duplicate);
    else if (m.entries.size() == handover_capacity<Shift>)
      RC_ASSERT(st.code() == errc::table_full);
    else if (m.shares_bytes(offset, size))
      RC_ASSERT(st.code() == errc::aliased);
    else
      RC_ASSERT(st.ok());
  }
  void show(std::ostream& os) const override { os << "add " << name; }
};

template <unsigned Shift>
struct remove_entry : command<Shift> {
  std::string name = *name_gen();
  void apply(root_model& m) const override {
    if (m.entries.erase(name)) std::erase(m.order, name);
  }
  void run(const root_model& m, root_sut<Shift>& s) const override {
    RC_ASSERT(s.writer->remove(name.c_str()).code() ==
              (m.entries.count(name) ? errc::ok : errc::not_found));
  }
  void show(std::ostream& os) const override { os << "remove " << name; }
};

template <unsigned Shift>
struct update_entry : command<Shift> {
  std::string name = *name_gen();
  u64 offset = *rc::gen::inRange<u64>(0, 512);
  void apply(root_model& m) const override {
    auto it = m.entries.find(name);
    if (it != m.entries.end() && !m.shares_bytes(offset, it->second.size, name)) it->second.phys = offset;
  }
  void run(const root_model& m, root_sut<Shift>& s) const override {
    const auto it = m.entries.find(name);
    const u64 size = it == m.entries.end() ? 1 : it->second.size;
    const errc want = it == m.entries.end()                  ? errc::not_found
                      : m.shares_bytes(offset, size, name) ? errc::aliased
                                                             : errc::ok;
    RC_ASSERT(s.writer->update(name.c_str(), s.blob + offset, size).code() == want);
  }
  void show(std::ostream& os) const override { os << "update " << name; }
};

template <unsigned Shift>
struct seal_and_reattach : command<Shift> {
  void run(const root_model& m, root_sut<Shift>& s) const override {
    RC_ASSERT(attach_handover_root<Shift>(s.mem.memory(), s.writer->root()).code() ==
              (s.writer->sealed() ? errc::ok : errc::not_sealed));
    RC_ASSERT(s.writer->seal().ok());
    auto v = attach_handover_root<Shift>(s.mem.remap(), s.writer->root());
    RC_ASSERT(v.has_value());
    RC_ASSERT(v->size() == m.entries.size());
    for (u32 i = 0; i < v->size(); ++i) {
      const handover_entry& e = (*v)[i];
      RC_ASSERT(std::string(e.name) == m.order[i]);
      const entry_model& want = m.entries.at(e.name);
      RC_ASSERT(std::string(e.compatible) == want.compatible);
      RC_ASSERT(e.phys.get() == (s.blob + want.phys).value);
      RC_ASSERT(e.size.get() == want.size);
      RC_ASSERT((*v->find(e.name))->phys.get() == e.phys.get());
    }
  }
  void show(std::ostream& os) const override { os << "seal+reattach"; }
};

template <unsigned Shift>
void check_root_model() {
  root_model m;
  root_sut<Shift> s;
  rc::state::check(m, s,
                   one_of_commands<add_entry<Shift>, add_entry<Shift>,
                                                     remove_entry<Shift>, update_entry<Shift>,
                                                     seal_and_reattach<Shift>>());
}

RC_GTEST_PROP(HandoverModel, MatchesMapOracle4K, ()) { check_root_model<12>(); }
RC_GTEST_PROP(HandoverModel, MatchesMapOracle64K, ()) { check_root_model<16>(); }

}  // namespace
}  // namespace kho::test::handover_model_test
