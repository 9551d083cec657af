// File-system steps aios needs, on POSIX calls with plain string paths.
//
// Why not std::filesystem: the CUDA wheel of LibTorch 2.11 exports libstdc++'s std::filesystem
// symbols from its own toolchain (101 of them in libtorch_cpu.so), and they interpose on the
// system compiler's: std::filesystem::remove_all crashed on the GPU image. Nothing in aios may
// call a non-inline std::filesystem function.
//
// Outputs are built under a temporary name beside their destination and renamed into place only
// when complete, so that nothing already written is lost when a step fails.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace aios {

bool path_exists(const std::string& path);
bool is_directory(const std::string& path);
bool is_regular_file(const std::string& path);
std::int64_t file_size(const std::string& path);  // throws when the file cannot be stat'ed

void make_directories(const std::string& path);                    // like mkdir -p; throws on failure
void remove_tree(const std::string& path);                         // like rm -rf; no error if missing
void rename_path(const std::string& from, const std::string& to);  // throws on failure
void copy_file(const std::string& from, const std::string& to);

// Regular files under `directory`, recursively, sorted; entries whose name starts with '.'
// (and everything below such a directory) are skipped.
std::vector<std::string> list_files_recursive(const std::string& directory);
// Every entry of `directory`, hidden ones too, by name, sorted.
std::vector<std::string> list_directory(const std::string& directory);
// The absolute path with symbolic links resolved, for an existing path; `path` itself otherwise.
std::string canonical_path(const std::string& path);

std::string join_path(const std::string& directory, const std::string& name);
std::string file_name(const std::string& path);       // "a/b.txt" -> "b.txt"
std::string parent_path(const std::string& path);     // "a/b.txt" -> "a", "b.txt" -> ""
std::string file_stem(const std::string& path);       // "a/b.txt" -> "b"
std::string file_extension(const std::string& path);  // "a/b.txt" -> ".txt"
std::string temp_directory();                         // $TMPDIR or /tmp

// An exclusive advisory lock (flock) on `path`, created if missing, held while the object lives;
// the file holds the holder's process id. Throws aios::Error naming `what` (the option) and the
// holder's pid when another process holds it.
class FileLock {
 public:
  FileLock(const std::string& path, const std::string& what);
  ~FileLock();
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;

 private:
  int fd_ = -1;
};

// Removes what an interrupted aios process left in `directory`: entries named `<stem>.tmp-<pid>`
// or `<stem>.old-<pid>` (the temporary names of write_file_atomically, StagedDirectory and
// checkpoint writes) whose stem `is_ours` accepts (a name aios writes there), when process <pid> is
// no longer running on this host, or whatever the pid when `any_pid` (the caller holds a lock that
// no live writer can). Returns the names removed.
std::vector<std::string> remove_stale_temporaries(const std::string& directory,
                                                  const std::function<bool(const std::string&)>& is_ours, bool any_pid);

// Why files cannot be created in `directory` (it is missing, not a directory, or refuses a probe
// file this process creates and removes), or "" when they can.
std::string why_not_writable(const std::string& directory);
// Bytes an unprivileged process may still write on the file system holding `path`; -1 if unknown.
std::int64_t free_bytes(const std::string& path);

// A directory being built at `<final>.tmp-<pid>`. commit() renames it to `final` (replacing an
// existing one only when `replace` is set); if commit() never runs the temporary is removed.
class StagedDirectory {
 public:
  StagedDirectory(std::string final_path, bool replace);
  ~StagedDirectory();
  StagedDirectory(const StagedDirectory&) = delete;
  StagedDirectory& operator=(const StagedDirectory&) = delete;

  const std::string& path() const { return staging_; }
  void commit();

 private:
  std::string final_;
  std::string staging_;
  bool replace_;
  bool committed_ = false;
};

// Writes `contents` to `path` through a temporary file, fsync and rename.
void write_file_atomically(const std::string& path, const std::string& contents);

std::string read_text_file(const std::string& path);

}  // namespace aios
