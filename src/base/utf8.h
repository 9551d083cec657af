// UTF-8 checks for text that crosses into JSON or the terminal (prompts, decoded samples).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace aios {

bool is_valid_utf8(std::string_view text);
// The length of the longest prefix of `text` that is valid UTF-8.
std::size_t valid_utf8_prefix(std::string_view text);
// `text` with each invalid byte replaced by U+FFFD (a decoded sample can end inside a character).
std::string with_invalid_utf8_replaced(std::string_view text);

}  // namespace aios
