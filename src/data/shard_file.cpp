#include "data/shard_file.h"

#include <algorithm>
#include <bit>

#include "base/checksum.h"
#include "base/error.h"
#include "data/hdf5_file.h"

namespace aios {

static_assert(std::endian::native == std::endian::little, "shard checksums are defined over little-endian bytes");

std::string to_string(TokenDtype dtype) { return dtype == TokenDtype::kUint16 ? "uint16" : "uint32"; }

TokenDtype token_dtype_from_string(const std::string& name, const std::string& where) {
  if (name == "uint16") return TokenDtype::kUint16;
  if (name == "uint32") return TokenDtype::kUint32;
  throw Error(where, "unknown token dtype '" + name + "'", "uint16 or uint32");
}

int bytes_per_token(TokenDtype dtype) { return dtype == TokenDtype::kUint16 ? 2 : 4; }

TokenDtype smallest_dtype_for(std::int64_t vocab_size) {
  return vocab_size <= 65536 ? TokenDtype::kUint16 : TokenDtype::kUint32;
}

namespace {

constexpr std::int64_t kCrcPieceTokens = 1 << 20;

hid_t file_type(TokenDtype dtype) { return dtype == TokenDtype::kUint16 ? H5T_STD_U16LE : H5T_STD_U32LE; }
hid_t memory_type(TokenDtype dtype) { return dtype == TokenDtype::kUint16 ? H5T_NATIVE_UINT16 : H5T_NATIVE_UINT32; }

template <typename T>
std::vector<T> narrowed(std::span<const std::uint32_t> tokens) {
  return std::vector<T>(tokens.begin(), tokens.end());
}

hdf5::Id create_1d_dataset(hid_t file, const char* name, hid_t type, std::int64_t size) {
  const hsize_t dims[1] = {static_cast<hsize_t>(size)};
  hdf5::Id space(H5Screate_simple(1, dims, nullptr), H5Sclose);
  return hdf5::Id(H5Dcreate2(file, name, type, space.get(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Dclose);
}

}  // namespace

ShardSummary write_shard_file(const std::string& path, std::span<const std::uint32_t> tokens,
                              std::span<const std::uint64_t> doc_offsets, TokenDtype dtype,
                              const ShardAttributes& attributes) {
  hdf5::silence_library_errors();
  const std::uint64_t limit = dtype == TokenDtype::kUint16 ? 65536u : (1ull << 32);
  const auto max_id = tokens.empty() ? 0u : *std::max_element(tokens.begin(), tokens.end());
  if (!tokens.empty() && max_id >= limit) {
    throw Error(path, "token id " + std::to_string(max_id) + " does not fit " + to_string(dtype),
                "--dtype uint32 for vocabularies above 65536");
  }
  if (!tokens.empty() && static_cast<std::int64_t>(max_id) >= attributes.vocab_size) {
    throw Error(path, "token id " + std::to_string(max_id) + " is outside the vocabulary of " +
                          std::to_string(attributes.vocab_size));
  }

  hdf5::Id file(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT), H5Fclose);
  if (!file.valid()) throw Error(path, "cannot create HDF5 file");
  hdf5::write_attribute(file.get(), "format", std::string("aios-shard"));
  hdf5::write_attribute(file.get(), "format_version", std::int64_t{1});

  const auto size = static_cast<std::int64_t>(tokens.size());
  hdf5::Id dataset = create_1d_dataset(file.get(), "tokens", file_type(dtype), size);
  if (!dataset.valid()) throw Error(path, "cannot create dataset 'tokens'");
  Crc32 crc;
  herr_t status = 0;
  if (dtype == TokenDtype::kUint16) {
    const auto stored = narrowed<std::uint16_t>(tokens);
    crc.update(stored.data(), stored.size() * sizeof(std::uint16_t));
    if (size > 0) status = H5Dwrite(dataset.get(), H5T_NATIVE_UINT16, H5S_ALL, H5S_ALL, H5P_DEFAULT, stored.data());
  } else {
    crc.update(tokens.data(), tokens.size() * sizeof(std::uint32_t));
    if (size > 0) status = H5Dwrite(dataset.get(), H5T_NATIVE_UINT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, tokens.data());
  }
  if (status < 0) throw Error(path, "cannot write " + std::to_string(size) + " tokens");
  hdf5::write_attribute(dataset.get(), "vocab_size", attributes.vocab_size);
  hdf5::write_attribute(dataset.get(), "tokenizer", attributes.tokenizer_kind);
  hdf5::write_attribute(dataset.get(), "tokenizer_hash", attributes.tokenizer_hash);
  hdf5::write_attribute(dataset.get(), "end_of_text_id",
                        attributes.end_of_text_id ? std::int64_t{*attributes.end_of_text_id} : -1);
  hdf5::write_attribute(dataset.get(), "split", attributes.split);

  hdf5::Id offsets =
      create_1d_dataset(file.get(), "doc_offsets", H5T_STD_U64LE, static_cast<std::int64_t>(doc_offsets.size()));
  if (!offsets.valid() || (!doc_offsets.empty() && H5Dwrite(offsets.get(), H5T_NATIVE_UINT64, H5S_ALL, H5S_ALL,
                                                            H5P_DEFAULT, doc_offsets.data()) < 0)) {
    throw Error(path, "cannot write dataset 'doc_offsets'");
  }
  if (H5Fflush(file.get(), H5F_SCOPE_GLOBAL) < 0) throw Error(path, "cannot flush HDF5 file");
  return {size, static_cast<std::int64_t>(doc_offsets.size()), crc.hex()};
}

struct ShardFileReader::Impl {
  std::string path;
  hdf5::Id file;
  hdf5::Id dataset;
  hdf5::Id file_space;
  std::int64_t size = 0;
  TokenDtype dtype = TokenDtype::kUint16;
  ShardAttributes attributes;

  template <typename T>
  void read(std::int64_t start, std::int64_t count, hid_t type, T* out) const {
    if (start < 0 || count < 0 || start + count > size) {
      throw Error(path, "read of tokens [" + std::to_string(start) + ", " + std::to_string(start + count) +
                            ") is outside the shard of " + std::to_string(size) + " tokens");
    }
    if (count == 0) return;
    const hsize_t offset[1] = {static_cast<hsize_t>(start)};
    const hsize_t length[1] = {static_cast<hsize_t>(count)};
    hdf5::Id selection(H5Scopy(file_space.get()), H5Sclose);
    hdf5::Id memory(H5Screate_simple(1, length, nullptr), H5Sclose);
    if (H5Sselect_hyperslab(selection.get(), H5S_SELECT_SET, offset, nullptr, length, nullptr) < 0 ||
        H5Dread(dataset.get(), type, memory.get(), selection.get(), H5P_DEFAULT, out) < 0) {
      throw Error(path, "HDF5 read of tokens [" + std::to_string(start) + ", " + std::to_string(start + count) +
                            ") failed (file damaged?)");
    }
  }
};

ShardFileReader::ShardFileReader(const std::string& path) : impl_(std::make_unique<Impl>()) {
  hdf5::silence_library_errors();
  impl_->path = path;
  if (H5Fis_hdf5(path.c_str()) <= 0) {
    throw Error(path, "is not a readable HDF5 file (missing, truncated or another format)",
                "a shard written by `aios prepare`");
  }
  impl_->file = hdf5::Id(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose);
  if (!impl_->file.valid()) {
    throw Error(path, "cannot be opened as HDF5 (truncated or damaged)",
                "a complete shard written by `aios prepare`; run it again");
  }
  impl_->dataset = hdf5::Id(H5Dopen2(impl_->file.get(), "tokens", H5P_DEFAULT), H5Dclose);
  if (!impl_->dataset.valid()) throw Error(path, "has no dataset 'tokens'", "an aios shard file");
  impl_->file_space = hdf5::Id(H5Dget_space(impl_->dataset.get()), H5Sclose);
  if (H5Sget_simple_extent_ndims(impl_->file_space.get()) != 1) {
    throw Error(path, "dataset 'tokens' is not one-dimensional");
  }
  hsize_t dims[1] = {0};
  H5Sget_simple_extent_dims(impl_->file_space.get(), dims, nullptr);
  impl_->size = static_cast<std::int64_t>(dims[0]);

  hdf5::Id type(H5Dget_type(impl_->dataset.get()), H5Tclose);
  const std::size_t type_size = H5Tget_size(type.get());
  if (H5Tget_class(type.get()) != H5T_INTEGER || H5Tget_sign(type.get()) != H5T_SGN_NONE ||
      (type_size != 2 && type_size != 4)) {
    throw Error(path, "dataset 'tokens' has an unsupported element type", "uint16 or uint32");
  }
  impl_->dtype = type_size == 2 ? TokenDtype::kUint16 : TokenDtype::kUint32;

  auto& a = impl_->attributes;
  const hid_t ds = impl_->dataset.get();
  a.vocab_size = hdf5::read_int_attribute(ds, "vocab_size", path);
  a.tokenizer_kind = hdf5::read_string_attribute(ds, "tokenizer", path);
  a.tokenizer_hash = hdf5::read_string_attribute(ds, "tokenizer_hash", path);
  a.split = hdf5::read_string_attribute(ds, "split", path);
  const std::int64_t eot = hdf5::read_int_attribute(ds, "end_of_text_id", path);
  if (eot >= 0) a.end_of_text_id = static_cast<std::uint32_t>(eot);
}

ShardFileReader::~ShardFileReader() = default;
ShardFileReader::ShardFileReader(ShardFileReader&&) noexcept = default;
ShardFileReader& ShardFileReader::operator=(ShardFileReader&&) noexcept = default;

const std::string& ShardFileReader::path() const { return impl_->path; }
std::int64_t ShardFileReader::size() const { return impl_->size; }
TokenDtype ShardFileReader::dtype() const { return impl_->dtype; }
const ShardAttributes& ShardFileReader::attributes() const { return impl_->attributes; }

std::vector<std::uint64_t> ShardFileReader::doc_offsets() const {
  hdf5::Id dataset(H5Dopen2(impl_->file.get(), "doc_offsets", H5P_DEFAULT), H5Dclose);
  if (!dataset.valid()) throw Error(impl_->path, "has no dataset 'doc_offsets'");
  hdf5::Id space(H5Dget_space(dataset.get()), H5Sclose);
  hsize_t dims[1] = {0};
  H5Sget_simple_extent_dims(space.get(), dims, nullptr);
  std::vector<std::uint64_t> offsets(dims[0]);
  if (!offsets.empty() &&
      H5Dread(dataset.get(), H5T_NATIVE_UINT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, offsets.data()) < 0) {
    throw Error(impl_->path, "cannot read dataset 'doc_offsets'");
  }
  return offsets;
}

void ShardFileReader::read(std::int64_t start, std::int64_t count, std::int64_t* out) const {
  impl_->read(start, count, H5T_NATIVE_INT64, out);
}

void ShardFileReader::read(std::int64_t start, std::int64_t count, std::uint32_t* out) const {
  impl_->read(start, count, H5T_NATIVE_UINT32, out);
}

std::string ShardFileReader::compute_crc32() const {
  Crc32 crc;
  const int width = bytes_per_token(impl_->dtype);
  std::vector<unsigned char> buffer(static_cast<std::size_t>(kCrcPieceTokens) * width);
  for (std::int64_t start = 0; start < impl_->size; start += kCrcPieceTokens) {
    const std::int64_t count = std::min(kCrcPieceTokens, impl_->size - start);
    impl_->read(start, count, memory_type(impl_->dtype), buffer.data());
    crc.update(buffer.data(), static_cast<std::size_t>(count) * width);
  }
  return crc.hex();
}

}  // namespace aios
