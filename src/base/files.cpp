#include "base/files.h"

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "base/error.h"

namespace aios {
namespace {

std::string errno_text() { return std::strerror(errno); }

void fsync_path(const std::string& path) {
  const int fd = ::open(path.empty() ? "." : path.c_str(), O_RDONLY);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

int remove_entry(const char* path, const struct stat*, int, struct FTW*) { return ::remove(path); }

std::string trim_trailing_slashes(std::string path) {
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  return path;
}

void list_into(const std::string& directory, std::vector<std::string>& files) {
  DIR* dir = ::opendir(directory.c_str());
  if (dir == nullptr) throw Error(directory, "cannot be listed: " + errno_text());
  std::vector<std::string> names;
  while (const dirent* entry = ::readdir(dir)) {
    if (entry->d_name[0] != '.') names.emplace_back(entry->d_name);
  }
  ::closedir(dir);
  std::sort(names.begin(), names.end());
  for (const auto& name : names) {
    const std::string path = join_path(directory, name);
    if (is_directory(path)) {
      list_into(path, files);
    } else if (is_regular_file(path)) {
      files.push_back(path);
    }
  }
}

}  // namespace

bool path_exists(const std::string& path) {
  struct stat info {};
  return ::stat(path.c_str(), &info) == 0;
}

bool is_directory(const std::string& path) {
  struct stat info {};
  return ::stat(path.c_str(), &info) == 0 && S_ISDIR(info.st_mode);
}

bool is_regular_file(const std::string& path) {
  struct stat info {};
  return ::stat(path.c_str(), &info) == 0 && S_ISREG(info.st_mode);
}

std::int64_t file_size(const std::string& path) {
  struct stat info {};
  if (::stat(path.c_str(), &info) != 0) throw Error(path, "cannot be read: " + errno_text());
  return static_cast<std::int64_t>(info.st_size);
}

void make_directories(const std::string& path) {
  if (path.empty() || is_directory(path)) return;
  make_directories(parent_path(trim_trailing_slashes(path)));
  if (::mkdir(path.c_str(), 0755) != 0 && errno != EEXIST) {
    throw Error(path, "cannot create directory: " + errno_text());
  }
}

void remove_tree(const std::string& path) {
  struct stat info {};
  if (::lstat(path.c_str(), &info) != 0) return;
  if (!S_ISDIR(info.st_mode)) {
    ::remove(path.c_str());
    return;
  }
  ::nftw(path.c_str(), remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

void rename_path(const std::string& from, const std::string& to) {
  if (::rename(from.c_str(), to.c_str()) != 0) {
    throw Error(to, "cannot rename " + from + " into place: " + errno_text());
  }
}

void copy_file(const std::string& from, const std::string& to) {
  std::ifstream in(from, std::ios::binary);
  if (!in) throw Error(from, "cannot be opened for reading");
  std::ofstream out(to, std::ios::binary | std::ios::trunc);
  out << in.rdbuf();
  if (!out) throw Error(to, "cannot be written");
}

std::vector<std::string> list_files_recursive(const std::string& directory) {
  std::vector<std::string> files;
  list_into(trim_trailing_slashes(directory), files);
  return files;
}

std::vector<std::string> list_directory(const std::string& directory) {
  DIR* dir = ::opendir(directory.c_str());
  if (dir == nullptr) throw Error(directory, "cannot be listed: " + errno_text());
  std::vector<std::string> names;
  while (const dirent* entry = ::readdir(dir)) {
    const std::string name = entry->d_name;
    if (name != "." && name != "..") names.push_back(name);
  }
  ::closedir(dir);
  std::sort(names.begin(), names.end());
  return names;
}

std::string canonical_path(const std::string& path) {
  char* resolved = ::realpath(path.c_str(), nullptr);
  if (resolved == nullptr) return path;
  std::string result = resolved;
  std::free(resolved);
  return result;
}

std::string join_path(const std::string& directory, const std::string& name) {
  if (directory.empty()) return name;
  return directory.back() == '/' ? directory + name : directory + "/" + name;
}

std::string file_name(const std::string& path) {
  const std::string trimmed = trim_trailing_slashes(path);
  const auto slash = trimmed.rfind('/');
  return slash == std::string::npos ? trimmed : trimmed.substr(slash + 1);
}

std::string parent_path(const std::string& path) {
  const std::string trimmed = trim_trailing_slashes(path);
  const auto slash = trimmed.rfind('/');
  if (slash == std::string::npos) return "";
  return slash == 0 ? "/" : trimmed.substr(0, slash);
}

std::string file_stem(const std::string& path) {
  const std::string name = file_name(path);
  const auto dot = name.rfind('.');
  return dot == std::string::npos || dot == 0 ? name : name.substr(0, dot);
}

std::string file_extension(const std::string& path) {
  const std::string name = file_name(path);
  const auto dot = name.rfind('.');
  return dot == std::string::npos || dot == 0 ? "" : name.substr(dot);
}

FileLock::FileLock(const std::string& path, const std::string& what) {
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) throw Error(what, "cannot open the lock file '" + path + "': " + std::strerror(errno));
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    const int error = errno;
    char holder[32] = {};
    [[maybe_unused]] const auto got = ::pread(fd_, holder, sizeof(holder) - 1, 0);
    ::close(fd_);
    fd_ = -1;
    std::string pid = holder;
    while (!pid.empty() && (pid.back() == '\n' || pid.back() == ' ')) pid.pop_back();
    if (error == EWOULDBLOCK) {
      throw Error(
          what,
          "is in use by another run (process " + (pid.empty() ? std::string("unknown") : pid) + ", lock " + path + ")",
          "another directory, or wait for that run to end");
    }
    throw Error(what, "cannot lock '" + path + "': " + std::strerror(error));
  }
  const std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd_, 0) == 0) [[maybe_unused]]
    const auto written = ::pwrite(fd_, pid.data(), pid.size(), 0);
}

FileLock::~FileLock() {
  if (fd_ >= 0) ::close(fd_);  // closing releases the lock
}

std::vector<std::string> remove_stale_temporaries(const std::string& directory,
                                                  const std::function<bool(const std::string&)>& is_ours,
                                                  bool any_pid) {
  std::vector<std::string> removed;
  if (!is_directory(directory.empty() ? "." : directory)) return removed;
  for (const auto& name : list_directory(directory.empty() ? "." : directory)) {
    for (const char* marker : {".tmp-", ".old-"}) {
      const auto at = name.rfind(marker);
      if (at == std::string::npos || at == 0 || !is_ours(name.substr(0, at))) continue;
      const std::string digits = name.substr(at + 5);
      if (digits.empty() || digits.find_first_not_of("0123456789") != std::string::npos) continue;
      const auto pid = static_cast<pid_t>(std::stoll(digits));
      const bool running = pid == ::getpid() || ::kill(pid, 0) == 0 || errno == EPERM;
      if (!any_pid && running) continue;
      remove_tree(join_path(directory, name));
      removed.push_back(name);
      break;
    }
  }
  return removed;
}

std::string why_not_writable(const std::string& directory) {
  const std::string where = directory.empty() ? "." : directory;
  if (!path_exists(where)) return "'" + where + "' does not exist";
  if (!is_directory(where)) return "'" + where + "' is a file, not a directory";
  const std::string probe = join_path(where, ".aios-write-check-" + std::to_string(::getpid()));
  const int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0600);
  if (fd < 0) return "cannot create files in '" + where + "': " + std::strerror(errno);
  ::close(fd);
  ::unlink(probe.c_str());
  return "";
}

std::int64_t free_bytes(const std::string& path) {
  struct statvfs fs {};
  if (::statvfs(path.empty() ? "." : path.c_str(), &fs) != 0) return -1;
  return static_cast<std::int64_t>(fs.f_bavail) * static_cast<std::int64_t>(fs.f_frsize);
}

std::string temp_directory() {
  const char* tmp = std::getenv("TMPDIR");
  return tmp != nullptr && *tmp != '\0' ? tmp : "/tmp";
}

StagedDirectory::StagedDirectory(std::string final_path, bool replace)
    : final_(trim_trailing_slashes(std::move(final_path))), replace_(replace) {
  if (path_exists(final_) && !replace_) {
    throw Error(final_, "already exists", "a new output path, or --overwrite to replace it");
  }
  staging_ = final_ + ".tmp-" + std::to_string(::getpid());
  remove_tree(staging_);
  make_directories(staging_);
}

StagedDirectory::~StagedDirectory() {
  if (!committed_) remove_tree(staging_);
}

void StagedDirectory::commit() {
  std::string previous;
  if (path_exists(final_)) {
    // Move the old output aside first so that a failed rename still leaves one complete copy.
    previous = final_ + ".old-" + std::to_string(::getpid());
    rename_path(final_, previous);
  }
  try {
    rename_path(staging_, final_);
  } catch (...) {
    if (!previous.empty()) ::rename(previous.c_str(), final_.c_str());
    throw;
  }
  committed_ = true;
  fsync_path(parent_path(final_));
  if (!previous.empty()) remove_tree(previous);
}

void write_file_atomically(const std::string& path, const std::string& contents) {
  const std::string temporary = path + ".tmp-" + std::to_string(::getpid());
  const int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) throw Error(temporary, "cannot be written: " + errno_text());
  std::size_t written = 0;
  while (written < contents.size()) {
    const ssize_t n = ::write(fd, contents.data() + written, contents.size() - written);
    if (n < 0) {
      const std::string reason = errno_text();
      ::close(fd);
      ::remove(temporary.c_str());
      throw Error(temporary, "write failed: " + reason);
    }
    written += static_cast<std::size_t>(n);
  }
  ::fsync(fd);
  ::close(fd);
  rename_path(temporary, path);
  fsync_path(parent_path(path));
}

std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path, "cannot be opened for reading");
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace aios
