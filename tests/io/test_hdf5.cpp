// The HDF5 wrapper treats files as hostile: crafted attributes, dataspaces, types and sizes
// are refused with a UserError naming the file and object, before anything is allocated.
#include <gtest/gtest.h>
#include <hdf5.h>

#include <string>
#include <vector>

#include "core/error.h"
#include "io/hdf5.h"
#include "test_util.h"

namespace sx::io {
namespace {

// Writes a file with the raw C API, so it can hold what our writer never would.
class RawFile {
 public:
  explicit RawFile(const std::string& path)
      : id_(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT)) {}
  ~RawFile() { H5Fclose(id_); }
  hid_t id() const { return id_; }

  void int_array_attr(const char* name, hsize_t n) {
    std::vector<int64_t> values(n, 1);
    hid_t space = H5Screate_simple(1, &n, nullptr);
    hid_t a = H5Acreate2(id_, name, H5T_NATIVE_INT64, space, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(a, H5T_NATIVE_INT64, values.data());
    H5Aclose(a);
    H5Sclose(space);
  }
  void dataset(const char* name, hid_t space, hid_t type, const void* data = nullptr,
               hid_t create_plist = H5P_DEFAULT) {
    hid_t set = H5Dcreate2(id_, name, type, space, H5P_DEFAULT, create_plist, H5P_DEFAULT);
    if (data) H5Dwrite(set, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data);
    H5Dclose(set);
    H5Sclose(space);
  }

 private:
  hid_t id_;
};

TEST(Hdf5Hostile, ArrayAttributeIsNotReadIntoOneValue) {
  test::TempDir dir;
  const std::string path = dir.path("array_attr.h5");
  { RawFile(path).int_array_attr("format", 4096); }
  H5File f = H5File::open(path);
  const std::string e = test::error_of([&] { f.attr_int("format"); });
  EXPECT_NE(e.find(path + ": attribute 'format' holds 4096 values, expected one"),
            std::string::npos)
      << e;
}

TEST(Hdf5Hostile, AttributeOfAnotherClassIsRefused) {
  test::TempDir dir;
  const std::string path = dir.path("string_attr.h5");
  {
    H5File w = H5File::create(path);
    w.set_attr("step", std::string("seven"));
    w.set_attr("loss", int64_t{3});
    w.close();
  }
  H5File f = H5File::open(path);
  EXPECT_NE(
      test::error_of([&] { f.attr_int("step"); }).find("attribute 'step' holds string values"),
      std::string::npos);
  EXPECT_NE(
      test::error_of([&] { f.attr_double("loss"); }).find("holds integer values, expected float"),
      std::string::npos);
  EXPECT_NE(
      test::error_of([&] { f.attr_string("loss"); }).find("expected a variable-length string"),
      std::string::npos);
}

TEST(Hdf5Hostile, NullAndScalarDataspacesHaveNoShape) {
  test::TempDir dir;
  const std::string path = dir.path("null.h5");
  {
    RawFile raw(path);
    raw.dataset("null", H5Screate(H5S_NULL), H5T_NATIVE_FLOAT);
    float one = 1;
    raw.dataset("scalar", H5Screate(H5S_SCALAR), H5T_NATIVE_FLOAT, &one);
  }
  H5File f = H5File::open(path);
  for (const char* name : {"null", "scalar"}) {
    EXPECT_NE(test::error_of([&] { f.read_float(name); }).find("has no array shape"),
              std::string::npos)
        << name;
    EXPECT_NE(test::error_of([&] { f.dims(name); }).find("has no array shape"), std::string::npos)
        << name;
  }
}

TEST(Hdf5Hostile, DeclaredSizeBeyondTheFileIsRefusedBeforeAllocating) {
  test::TempDir dir;
  const std::string path = dir.path("huge.h5");
  {
    RawFile raw(path);
    hsize_t dims[2] = {1ull << 26, 1024};  // 256 GiB of float32, never written
    hid_t plist = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_alloc_time(plist, H5D_ALLOC_TIME_LATE);
    raw.dataset("huge", H5Screate_simple(2, dims, nullptr), H5T_NATIVE_FLOAT, nullptr, plist);
    H5Pclose(plist);
  }
  H5File f = H5File::open(path);
  const std::string e = test::error_of([&] { f.read_float("huge"); });
  EXPECT_NE(e.find("declares 68719476736 elements of 4 bytes but the file has"), std::string::npos)
      << e;
}

TEST(Hdf5Hostile, DatasetOfAnotherClassIsRefused) {
  test::TempDir dir;
  const std::string path = dir.path("ints.h5");
  {
    H5File w = H5File::create(path);
    int64_t v[3] = {1, 2, 3};
    w.write("ids", v, {3});
    w.close();
  }
  H5File f = H5File::open(path);
  EXPECT_NE(
      test::error_of([&] { f.read_float("ids"); }).find("holds integer values, expected float"),
      std::string::npos);
  EXPECT_NE(test::error_of([&] { f.read_strings("ids"); }).find("expected variable-length strings"),
            std::string::npos);
  EXPECT_EQ(f.read_int64("ids"), (std::vector<int64_t>{1, 2, 3}));
}

TEST(Hdf5Hostile, WellFormedFilesStillRoundTrip) {
  test::TempDir dir;
  const std::string path = dir.path("ok.h5");
  {
    H5File w = H5File::create(path);
    float x[6] = {1, 2, 3, 4, 5, 6};
    w.write("a/b", x, {2, 3});
    w.write_strings("langs", {"en", "es", ""});
    w.write_strings("none", {});
    // Strings beyond one 4 KB heap collection, each collection walked by the heap checks.
    w.write_strings("long", {std::string(5000, 'y'), "a", std::string(9000, 'z')});
    w.set_attr("long", std::string(6000, 'w'));
    w.set_attr("format", int64_t{1});
    w.set_attr("loss", 0.5);
    w.set_attr("hash", std::string("abc"));
    w.close();
  }
  H5File f = H5File::open(path);
  EXPECT_EQ(f.dims("a/b"), (std::vector<uint64_t>{2, 3}));
  EXPECT_EQ(f.read_float("a/b"), (std::vector<float>{1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(f.read_strings("langs"), (std::vector<std::string>{"en", "es", ""}));
  EXPECT_TRUE(f.read_strings("none").empty());
  EXPECT_EQ(f.attr_int("format"), 1);
  EXPECT_EQ(f.attr_double("loss"), 0.5);
  EXPECT_EQ(f.attr_string("hash"), "abc");
  EXPECT_EQ(f.read_strings("long"),
            (std::vector<std::string>{std::string(5000, 'y'), "a", std::string(9000, 'z')}));
  EXPECT_EQ(f.attr_string("long"), std::string(6000, 'w'));
}

// HDF5 1.10 copies a string's heap object (its declared size) into a buffer sized by the
// length stored with the string's reference: a length shorter than the object would overflow
// that buffer, so the reader compares the two before HDF5 reads anything.
TEST(Hdf5Hostile, StringLengthDisagreeingWithItsHeapObjectIsRefused) {
  test::TempDir dir;
  const std::string path = dir.path("s.h5");
  {
    H5File w = H5File::create(path);
    w.write_strings("s", {std::string(5000, 'x')});
    w.close();
  }
  hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  hid_t d = H5Dopen2(f, "s", H5P_DEFAULT);
  const haddr_t offset = H5Dget_offset(d);
  H5Dclose(d);
  H5Fclose(f);
  ASSERT_NE(offset, HADDR_UNDEF);
  std::string bytes = test::read_file(path);
  ASSERT_EQ(bytes.substr(offset, 2), std::string("\x88\x13"));  // 5000, little-endian
  bytes[offset] = 100;                                          // now 100
  bytes[offset + 1] = 0;
  test::write_file(path, bytes);
  EXPECT_NE(test::error_of([&] {
              H5File::open(path).read_strings("s");
            }).find("dataset 's' holds a string of 100 bytes at heap object 1 of collection"),
            std::string::npos);
}

}  // namespace
}  // namespace sx::io
