// tests/region_oracle.hpp: memblock regions as plain pairs, and the interval union
// every restore must equal.
#pragma once

#include <kho/phys.hpp>

#include <algorithm>
#include <utility>
#include <vector>

namespace kho::test {

using regions = std::vector<std::pair<u64, u64>>;  // (base, size)

/// Any sequence of {base, size} regions (a memblock, a span of them) as pairs.
template <class Regions>
regions dump(const Regions& rs) {
  regions out;
  for (const auto& r : rs) out.emplace_back(r.base, r.size);
  return out;
}

/// The union of half-open (start, end) spans as sorted, merged (base, size) regions.
inline regions union_of(std::vector<std::pair<u64, u64>> spans) {
  std::sort(spans.begin(), spans.end());
  regions out;
  for (auto [s, e] : spans) {
    if (s == e) continue;
    if (!out.empty() && s <= out.back().first + out.back().second)
      out.back().second = std::max(out.back().first + out.back().second, e) - out.back().first;
    else
      out.emplace_back(s, e - s);
  }
  return out;
}

}  // namespace kho::test
