// kho/model/report.hpp: how the hosted tools word results (hex addresses, errors as JSON).
#pragma once

#include <kho/result.hpp>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <string>

namespace kho::model {

inline std::string hex(u64 v) { return fmt::format("{:#x}", v); }

/// Sizes and ends that may reach 2^64 (a range ending at the top of the address
/// space, a sum of such sizes) do not fit a u64.
using wide_u64 = unsigned __int128;
inline std::string hex(wide_u64 v) { return fmt::format("{:#x}", v); }

/// A failure as JSON: the error's name and where it happened.
inline nlohmann::json describe_error(const error& e) {
  nlohmann::json j{{"error", to_string(e.code)},
                   {"structure", e.loc.structure},
                   {"at", hex(e.loc.at.value)},
                   {"depth", e.loc.depth}};
  // A page with two owners: the first owner, as a structure and its root.
  if (e.other.structure[0]) j["first_owner"] = {{"structure", e.other.structure}, {"at", hex(e.other.at.value)}};
  return j;
}

/// One line for people: "checksum mismatch in handover at 0x100001000 (depth 1)".
inline std::string format_error(const error& e) {
  std::string line = fmt::format("{} in {} at {:#x} (depth {})", to_string(e.code),
                                 e.loc.structure[0] ? e.loc.structure : "input", e.loc.at.value,
                                 e.loc.depth);
  if (e.other.structure[0])
    line += fmt::format(", first owned by {} at {:#x}", e.other.structure, e.other.at.value);
  return line;
}

}  // namespace kho::model
