// tests/golden_files.hpp: the checked-in golden images, read back by the tests.
// tests/golden/index.txt names each image and the physical address of its root.
#pragma once

#include "golden_images.hpp"

#include <fstream>
#include <iterator>
#include <map>
#include <sstream>
#include <string>

namespace kho::golden {

/// name -> root, from tests/golden/index.txt.
inline std::map<std::string, u64> read_index() {
  std::ifstream in(std::string(KHO_GOLDEN_DIR) + "/index.txt");
  std::map<std::string, u64> roots;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream fields(line);
    std::string name, root;
    fields >> name >> root;
    roots[name] = std::stoull(root, nullptr, 16);
  }
  return roots;
}

/// tests/golden/<name>.img with its root from the index.
inline image load(const std::string& name) {
  std::ifstream in(std::string(KHO_GOLDEN_DIR) + "/" + name + ".img", std::ios::binary);
  image f;
  f.bytes.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  f.root = phys_addr{read_index().at(name)};
  return f;
}

}  // namespace kho::golden
