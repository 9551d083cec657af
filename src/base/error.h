// One error format for the whole program: where it happened, what was found,
// what would be accepted. Thrown anywhere, caught and printed only in main.
#pragma once

#include <stdexcept>
#include <string>

namespace aios {

class Error : public std::runtime_error {
 public:
  // where: the file, option or component at fault ("--batch-size", "shards/x/manifest.json").
  // what: what is wrong, with the value found. accepted: what would be accepted (may be empty).
  Error(const std::string& where, const std::string& what, const std::string& accepted = {});

  const std::string& where() const { return where_; }

 private:
  std::string where_;
};

}  // namespace aios
