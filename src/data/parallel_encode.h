// Encoding text on every core: the text is cut at the tokenizer's split points (where encoding
// the parts alone gives the ids of the whole) into one part per thread.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "data/tokenizer.h"

namespace aios {

// The cores this process may run on (its CPU affinity, as taskset, Slurm and cgroups set it).
int usable_cores();

// Appends the ids of text[0, n) to `ids` and returns n: the whole text when `final`, else up to
// the last split point (0 when none is found near the end: the caller keeps the text and adds
// more). Parts of fewer than min_part_bytes are not given a thread of their own.
std::size_t encode_in_parallel(const Tokenizer& tokenizer, std::string_view text, bool final, int threads,
                               std::vector<std::uint32_t>& ids, std::size_t min_part_bytes = 1 << 18);

// One document per line (each line with its newline, empty lines skipped): the ids of each line
// are appended to `ids` and each line's token count to `lengths`, in order.
void encode_lines_in_parallel(const Tokenizer& tokenizer, std::string_view text, int threads,
                              std::vector<std::uint32_t>& ids, std::vector<std::size_t>& lengths);

}  // namespace aios
