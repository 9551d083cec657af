#include "data/parallel_encode.h"

#include <sched.h>

#include <algorithm>
#include <condition_variable>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>

namespace aios {
namespace {

// Split points are looked for this far back from where a part should end: a bound on the work,
// and text without one in a whole MiB is rare (one endless line).
constexpr std::size_t kSplitSearchBytes = 1 << 20;

std::size_t split_near(const Tokenizer& tokenizer, std::string_view text, std::size_t end) {
  const std::size_t begin = end > kSplitSearchBytes ? end - kSplitSearchBytes : 0;
  const std::size_t cut = tokenizer.split_point(text.substr(begin, end - begin));
  return cut == 0 ? 0 : begin + cut;
}

// Threads that live as long as the process: each keeps its tokenizer's piece cache warm from one
// block of text to the next (new threads would start every block with empty caches and merge
// every word again, which made 16 threads no faster than one).
class WorkerPool {
 public:
  static WorkerPool& instance() {
    static WorkerPool pool;
    return pool;
  }

  // Runs work(i) for i in [0, n): i = 0 on the calling thread, the others on pooled threads.
  // Rethrows the first error.
  void run(std::size_t n, const std::function<void(std::size_t)>& work) {
    const std::lock_guard<std::mutex> one_run_at_a_time(run_mutex_);
    std::vector<std::exception_ptr> errors(n);
    {
      std::unique_lock<std::mutex> lock(mutex_);
      while (threads_.size() + 1 < n) {
        const std::size_t index = threads_.size() + 1;
        threads_.emplace_back([this, index] { serve(index); });
      }
      work_ = &work;
      errors_ = &errors;
      tasks_ = n;
      pending_ = n - 1;
      ++generation_;
    }
    wake_.notify_all();
    guarded(0, work, errors);
    std::unique_lock<std::mutex> lock(mutex_);
    finished_.wait(lock, [this] { return pending_ == 0; });
    work_ = nullptr;
    for (const auto& error : errors) {
      if (error) std::rethrow_exception(error);
    }
  }

  ~WorkerPool() {
    {
      const std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_all();
    for (auto& thread : threads_) thread.join();
  }

 private:
  static void guarded(std::size_t i, const std::function<void(std::size_t)>& work,
                      std::vector<std::exception_ptr>& errors) {
    try {
      work(i);
    } catch (...) {
      errors[i] = std::current_exception();
    }
  }

  void serve(std::size_t index) {
    std::uint64_t seen = 0;
    std::unique_lock<std::mutex> lock(mutex_);
    while (true) {
      wake_.wait(lock, [&] { return stopping_ || generation_ != seen; });
      if (stopping_) return;
      seen = generation_;
      if (index >= tasks_) continue;
      const auto* work = work_;
      auto* errors = errors_;
      lock.unlock();
      guarded(index, *work, *errors);
      lock.lock();
      if (--pending_ == 0) finished_.notify_one();
    }
  }

  std::mutex run_mutex_, mutex_;
  std::condition_variable wake_, finished_;
  std::vector<std::thread> threads_;
  const std::function<void(std::size_t)>* work_ = nullptr;
  std::vector<std::exception_ptr>* errors_ = nullptr;
  std::size_t tasks_ = 0, pending_ = 0;
  std::uint64_t generation_ = 0;
  bool stopping_ = false;
};

void run_parts(std::size_t n, const std::function<void(std::size_t)>& work) { WorkerPool::instance().run(n, work); }

}  // namespace

int usable_cores() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) return std::max(1, CPU_COUNT(&set));
  return std::max(1U, std::thread::hardware_concurrency());
}

std::size_t encode_in_parallel(const Tokenizer& tokenizer, std::string_view text, bool final, int threads,
                               std::vector<std::uint32_t>& ids, std::size_t min_part_bytes) {
  const std::size_t end = final ? text.size() : split_near(tokenizer, text, text.size());
  if (end == 0) return 0;
  std::vector<std::size_t> cuts = {0};
  const std::size_t parts = std::clamp<std::size_t>(end / std::max<std::size_t>(min_part_bytes, 1), 1,
                                                    static_cast<std::size_t>(std::max(threads, 1)));
  for (std::size_t k = 1; k < parts; ++k) {
    const std::size_t cut = split_near(tokenizer, text.substr(0, end), end * k / parts);
    if (cut > cuts.back()) cuts.push_back(cut);
  }
  cuts.push_back(end);
  std::vector<std::vector<std::uint32_t>> part_ids(cuts.size() - 1);
  run_parts(part_ids.size(),
            [&](std::size_t i) { tokenizer.encode(text.substr(cuts[i], cuts[i + 1] - cuts[i]), part_ids[i]); });
  for (const auto& part : part_ids) ids.insert(ids.end(), part.begin(), part.end());
  return end;
}

void encode_lines_in_parallel(const Tokenizer& tokenizer, std::string_view text, int threads,
                              std::vector<std::uint32_t>& ids, std::vector<std::size_t>& lengths) {
  // Parts end after a newline, so that no line is cut.
  std::vector<std::size_t> cuts = {0};
  const auto parts = static_cast<std::size_t>(std::max(threads, 1));
  for (std::size_t k = 1; k < parts; ++k) {
    const std::size_t newline = text.find('\n', std::max(cuts.back(), text.size() * k / parts));
    if (newline == std::string_view::npos) break;
    if (newline + 1 > cuts.back() && newline + 1 < text.size()) cuts.push_back(newline + 1);
  }
  cuts.push_back(text.size());
  std::vector<std::vector<std::uint32_t>> part_ids(cuts.size() - 1);
  std::vector<std::vector<std::size_t>> part_lengths(cuts.size() - 1);
  run_parts(part_ids.size(), [&](std::size_t i) {
    const std::string_view part = text.substr(cuts[i], cuts[i + 1] - cuts[i]);
    for (std::size_t start = 0; start < part.size();) {
      std::size_t line_end = part.find('\n', start);
      line_end = line_end == std::string_view::npos ? part.size() : line_end + 1;
      const std::string_view line = part.substr(start, line_end - start);
      start = line_end;
      if (line == "\n" || line == "\r\n") continue;
      const std::size_t before = part_ids[i].size();
      tokenizer.encode(line, part_ids[i]);
      part_lengths[i].push_back(part_ids[i].size() - before);
    }
  });
  for (std::size_t i = 0; i < part_ids.size(); ++i) {
    ids.insert(ids.end(), part_ids[i].begin(), part_ids[i].end());
    lengths.insert(lengths.end(), part_lengths[i].begin(), part_lengths[i].end());
  }
}

}  // namespace aios
