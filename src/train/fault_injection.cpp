#include "train/fault_injection.h"

#include <cstdlib>
#include <string>

#include "base/error.h"

namespace aios {
namespace {

std::optional<std::int64_t> read_step(const char* name) {
  const char* value = std::getenv(name);
  if (value == nullptr || *value == '\0') return std::nullopt;
  try {
    return std::stoll(value);
  } catch (const std::exception&) {
    throw Error(name, std::string("value '") + value + "' is not a step number", "a positive integer");
  }
}

}  // namespace

FaultInjection FaultInjection::from_environment() {
  FaultInjection faults;
  faults.nan_loss_step = read_step("AIOS_FAULT_NAN_LOSS_AT_STEP");
  faults.inf_grad_step = read_step("AIOS_FAULT_INF_GRAD_AT_STEP");
  faults.oom_step = read_step("AIOS_FAULT_OOM_AT_STEP");
  faults.oom_times = read_step("AIOS_FAULT_OOM_TIMES").value_or(1);
  faults.rank = read_step("AIOS_FAULT_RANK");
  const std::string where = std::getenv("AIOS_FAULT_OOM_IN") ? std::getenv("AIOS_FAULT_OOM_IN") : "";
  if (!where.empty() && where != "forward" && where != "backward") {
    throw Error("AIOS_FAULT_OOM_IN", "value '" + where + "' is not a place in the step", "forward or backward");
  }
  faults.oom_in_forward = where == "forward";
  faults.exit_step = read_step("AIOS_FAULT_EXIT_AT_STEP");
  faults.hang_step = read_step("AIOS_FAULT_HANG_AT_STEP");
  if (const char* gib = std::getenv("AIOS_FAULT_MEMORY_GIB"); gib != nullptr && *gib != '\0') {
    char* end = nullptr;
    const double value = std::strtod(gib, &end);
    if (end == gib || *end != '\0' || !(value > 0)) {
      throw Error("AIOS_FAULT_MEMORY_GIB", std::string("value '") + gib + "' is not a size in GiB", "a positive number");
    }
    faults.memory_limit_gib = value;
  }
  return faults;
}

}  // namespace aios
