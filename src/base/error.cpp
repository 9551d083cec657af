#include "base/error.h"

namespace aios {
namespace {
std::string format(const std::string& where, const std::string& what, const std::string& accepted) {
  std::string message = where.empty() ? what : where + ": " + what;
  if (!accepted.empty()) message += "; expected " + accepted;
  return message;
}
}  // namespace

Error::Error(const std::string& where, const std::string& what, const std::string& accepted)
    : std::runtime_error(format(where, what, accepted)), where_(where) {}

}  // namespace aios
