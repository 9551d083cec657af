#include "data/hdf5_file.h"

#include <mutex>
#include <vector>

#include "base/error.h"

namespace aios::hdf5 {

void silence_library_errors() {
  static std::once_flag once;
  std::call_once(once, [] { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); });
}

void write_attribute(hid_t object, const char* name, std::int64_t value) {
  Id space(H5Screate(H5S_SCALAR), H5Sclose);
  Id attribute(H5Acreate2(object, name, H5T_STD_I64LE, space.get(), H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
  if (!attribute.valid() || H5Awrite(attribute.get(), H5T_NATIVE_INT64, &value) < 0) {
    throw Error("hdf5", std::string("cannot write attribute ") + name);
  }
}

void write_attribute(hid_t object, const char* name, const std::string& value) {
  Id space(H5Screate(H5S_SCALAR), H5Sclose);
  Id type(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_size(type.get(), value.empty() ? 1 : value.size());
  H5Tset_strpad(type.get(), H5T_STR_NULLPAD);
  Id attribute(H5Acreate2(object, name, type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
  std::string padded = value.empty() ? std::string(1, '\0') : value;
  if (!attribute.valid() || H5Awrite(attribute.get(), type.get(), padded.data()) < 0) {
    throw Error("hdf5", std::string("cannot write attribute ") + name);
  }
}

bool has_attribute(hid_t object, const char* name) { return H5Aexists(object, name) > 0; }

std::int64_t read_int_attribute(hid_t object, const char* name, const std::string& where) {
  if (!has_attribute(object, name)) throw Error(where, std::string("missing attribute '") + name + "'");
  Id attribute(H5Aopen(object, name, H5P_DEFAULT), H5Aclose);
  std::int64_t value = 0;
  if (!attribute.valid() || H5Aread(attribute.get(), H5T_NATIVE_INT64, &value) < 0) {
    throw Error(where, std::string("cannot read attribute '") + name + "' as an integer");
  }
  return value;
}

std::string read_string_attribute(hid_t object, const char* name, const std::string& where) {
  if (!has_attribute(object, name)) throw Error(where, std::string("missing attribute '") + name + "'");
  Id attribute(H5Aopen(object, name, H5P_DEFAULT), H5Aclose);
  Id type(H5Aget_type(attribute.get()), H5Tclose);
  if (!attribute.valid() || H5Tget_class(type.get()) != H5T_STRING || H5Tis_variable_str(type.get()) > 0) {
    throw Error(where, std::string("attribute '") + name + "' is not a fixed-length string");
  }
  std::vector<char> buffer(H5Tget_size(type.get()) + 1, '\0');
  if (H5Aread(attribute.get(), type.get(), buffer.data()) < 0) {
    throw Error(where, std::string("cannot read attribute '") + name + "'");
  }
  return std::string(buffer.data());
}

}  // namespace aios::hdf5
