// Option values that name one of a few choices are enums, each declared once next to the code that
// acts on it, with its strings in one table beside it:
//   enum class ChunkMode { kExact, kTruncated };
//   constexpr std::array<EnumName<ChunkMode>, 2> enum_names(ChunkMode) {
//     return {{{ChunkMode::kExact, "exact"}, {ChunkMode::kTruncated, "truncated"}}};
//   }
// The helpers below find the table by argument-dependent lookup; the CLI, config files, the run
// header and error messages all read it, so a value has one spelling everywhere.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace aios {

template <typename E>
struct EnumName {
  E value;
  const char* name;
};

template <typename E>
std::string to_string(E value) {
  for (const auto& entry : enum_names(E{})) {
    if (entry.value == value) return entry.name;
  }
  return "?";
}

template <typename E>
std::optional<E> enum_from_string(std::string_view name) {
  for (const auto& entry : enum_names(E{})) {
    if (name == entry.name) return entry.value;
  }
  return std::nullopt;
}

// "exact or truncated", "auto, flash, efficient, cudnn or math": for error messages and --help.
template <typename E>
std::string enum_choices() {
  const auto table = enum_names(E{});
  std::string text;
  for (std::size_t i = 0; i < table.size(); ++i) {
    if (i > 0) text += i + 1 == table.size() ? " or " : ", ";
    text += table[i].name;
  }
  return text;
}

// name -> value, in the form CLI11's CheckedTransformer takes.
template <typename E>
std::map<std::string, E> enum_map() {
  std::map<std::string, E> map;
  for (const auto& entry : enum_names(E{})) map.emplace(entry.name, entry.value);
  return map;
}

}  // namespace aios
