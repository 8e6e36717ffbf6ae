// The command generator of a rapidcheck state-machine test, without copies of the model.
//
// rapidcheck's execOneOfWithArgs<Cmds...>() is called with the model before every
// generated command and keeps a copy of it in each generator it makes (three or more
// copies per command, and again per retry), so that a command could be constructed from
// the model. kho's commands never are: they draw their arguments from generators. With
// a model of thousands of entries those copies were most of a property's time (58% of
// the xarray model at 64 KiB pages under ASan: std::map nodes allocated and freed).
// one_of_commands<Cmds...>() draws the same commands from the same random stream, so a
// seed replays the same sequence, and passes the generator no model to copy.
#pragma once

#include <rapidcheck.h>
#include <rapidcheck/state.h>

#include <type_traits>

namespace kho::test {

template <class Cmd, class... Cmds>
auto one_of_commands() {
  using model = typename Cmd::Model;
  static_assert(!std::is_constructible_v<Cmd, const model&> && (!std::is_constructible_v<Cmds, const model&> && ...),
                "a command constructed from the model needs rc::state::gen::execOneOfWithArgs");
  return [](const model&) { return rc::state::gen::execOneOfWithArgs<Cmd, Cmds...>()(); };
}

}  // namespace kho::test
