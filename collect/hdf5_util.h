// Thin RAII and typed helpers over the HDF5 C API: the one HDF5 layer of the project (collect/ for
// datasets, adapt/ for the latent cache and plan replays). Every failure throws DatasetError with what
// was being done; HDF5's own error printing is silenced.
#pragma once

#include <hdf5.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace embody::collect {

/// A dataset file that cannot be read or written as expected.
class DatasetError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

namespace h5 {

/// Turns off HDF5's printing of error stacks (errors become DatasetError messages instead), on the
/// calling thread (a thread-safe HDF5 keeps the setting per thread).
void SilenceErrors();
/// Whether this HDF5 was built thread-safe (calls from several threads are then serialized by its
/// global lock; otherwise only one thread may call it at a time).
bool ThreadSafe();

class Handle {
 public:
  Handle() = default;
  Handle(hid_t id, herr_t (*close)(hid_t), const std::string& what);
  ~Handle();
  Handle(Handle&& o) noexcept : id_(o.id_), close_(o.close_) { o.id_ = -1; }
  Handle& operator=(Handle&& o) noexcept;
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  hid_t id() const { return id_; }
  operator hid_t() const { return id_; }

 private:
  hid_t id_ = -1;
  herr_t (*close_)(hid_t) = nullptr;
};

Handle CreateFile(const std::string& path);
Handle OpenFile(const std::string& path);
Handle CreateGroup(hid_t loc, const std::string& name);
Handle OpenGroup(hid_t loc, const std::string& name);
bool Exists(hid_t loc, const std::string& path);
/// What a stored dataset is: its element class and size, and its shape.
struct DatasetShape {
  H5T_class_t type_class = H5T_NO_CLASS;
  size_t type_size = 0;
  bool is_signed = false;
  std::vector<hsize_t> dims;
};
/// @throws DatasetError when `name` is not a readable dataset.
DatasetShape Describe(hid_t loc, const std::string& name);

/// Names of the links in the group `group` under `loc`, in name order.
std::vector<std::string> ListNames(hid_t loc, const std::string& group);

template <typename T>
hid_t NativeType();

/// Writes an n-d array. `chunk_first_dim` > 0 chunks along the first dimension with `deflate` level
/// and, with `checksum`, a Fletcher-32 checksum per chunk (damaged data then fails to read instead of
/// reading back wrong).
template <typename T>
void WriteArray(hid_t loc, const std::string& name, const std::vector<hsize_t>& dims, const T* data, hsize_t chunk_first_dim = 0, int deflate = 0,
                bool checksum = false);
template <typename T>
std::vector<T> ReadArray(hid_t loc, const std::string& name, std::vector<hsize_t>* dims = nullptr);
/// Reads `count` rows of an n-d array along its first dimension: first, first + stride, ...
/// (stride 1: rows [first, first+count)). Only the chunks holding those rows are read.
template <typename T>
std::vector<T> ReadRows(hid_t loc, const std::string& name, hsize_t first, hsize_t count, std::vector<hsize_t>* dims = nullptr, hsize_t stride = 1);

/// Creates `name` as a virtual dataset over the dataset `source` of the same file (an absolute path
/// in it), shifted by one row along the first dimension: row t shows source row t + 1, and the last row
/// repeats the source's last row (robomimic's next_obs, without copying data).
void WriteNextRowView(hid_t loc, const std::string& name, const std::string& source);

void WriteStrings(hid_t loc, const std::string& name, const std::vector<std::string>& values);
std::vector<std::string> ReadStrings(hid_t loc, const std::string& name);

void SetAttr(hid_t obj, const std::string& name, const std::string& value);
void SetAttr(hid_t obj, const std::string& name, std::int64_t value);
void SetAttr(hid_t obj, const std::string& name, double value);
std::string GetStringAttr(hid_t obj, const std::string& name);
std::int64_t GetIntAttr(hid_t obj, const std::string& name);
double GetDoubleAttr(hid_t obj, const std::string& name);
bool HasAttr(hid_t obj, const std::string& name);

}  // namespace h5
}  // namespace embody::collect
