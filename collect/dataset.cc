#include "collect/dataset.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>

#include "sim/atomic_file.h"

namespace embody::collect {
namespace {

namespace fs = std::filesystem;

// Writes through sim::WriteFileAtomically, its failures as DatasetError.
void WriteAtomically(const fs::path& path, const std::function<void(const fs::path&)>& write) {
  try {
    sim::WriteFileAtomically(path, write);
  } catch (const sim::AtomicWriteError& e) {
    throw DatasetError(e.what());
  }
}

template <typename T>
void WriteMatrix(hid_t group, const std::string& name, const std::vector<T>& data, hsize_t rows) {
  const hsize_t cols = rows > 0 ? data.size() / rows : 0;
  h5::WriteArray<T>(group, name, {rows, cols}, data.data(), rows, 0, /*checksum=*/true);  // one checksummed chunk
}

}  // namespace

nlohmann::json DatasetMetadata::ToJson() const {
  return {{"embodiment", embodiment},
          {"action_space",
           {{"names", action_names},
            {"position_scale", position_scale},
            {"rotation_scale", rotation_scale},
            {"joint_scale", joint_scale},
            {"range", {-1, 1}}}},
          {"joint_names", joint_names},
          {"state_layout", "time, qpos, qvel, act, ctrl, qacc_warmstart, qfrc_applied, xfrc_applied, mocap_pos, mocap_quat"},
          {"extrinsics_convention", "camera-to-world, OpenGL axes (x right, y up, looking along -z)"}};
}

DatasetMetadata DatasetMetadata::FromJson(const nlohmann::json& j) {
  DatasetMetadata m;
  try {
    m.embodiment = j.at("embodiment").get<std::string>();
    const auto& a = j.at("action_space");
    m.action_names = a.at("names").get<std::vector<std::string>>();
    m.position_scale = a.value("position_scale", 0.0);
    m.rotation_scale = a.value("rotation_scale", 0.0);
    m.joint_scale = a.value("joint_scale", 0.0);
    m.joint_names = j.at("joint_names").get<std::vector<std::string>>();
  } catch (const nlohmann::json::exception& e) {
    throw DatasetError(std::string("embody_meta lacks or mistypes a key: ") + e.what());
  }
  return m;
}

const DatasetMetadata& Dataset::metadata() const {
  if (!has_metadata_) throw DatasetError(path_.string() + " is not an Embody dataset (no embody_meta attribute on /data)");
  return metadata_;
}

double Dataset::control_hz() const {
  if (env_args_.contains("env_kwargs") && env_args_["env_kwargs"].contains("control_hz") && env_args_["env_kwargs"]["control_hz"].is_number()) {
    return env_args_["env_kwargs"]["control_hz"].get<double>();
  }
  throw DatasetError(path_.string() + " has no control rate (env_args.env_kwargs.control_hz)");
}

fs::path PartsDir(const fs::path& path) { return fs::path(path.string() + ".parts"); }

std::string EpisodeFileName(std::int64_t index) {
  char name[64];
  std::snprintf(name, sizeof(name), "episode_%07lld.h5", static_cast<long long>(index));
  return name;
}

std::string DemoName(std::int64_t index) { return "demo_" + std::to_string(index); }

bool IsValidationEpisode(std::int64_t index) { return index % 10 == 9; }

void WriteEpisodeFile(const fs::path& parts_dir, const EpisodeData& ep, const nlohmann::json& meta) {
  WriteAtomically(parts_dir / EpisodeFileName(ep.index), [&](const fs::path& tmp) {
    h5::Handle file = h5::CreateFile(tmp.string());
    h5::Handle g = h5::CreateGroup(file, DemoName(ep.index));
    const hsize_t n = ep.steps;
    h5::SetAttr(g, "num_samples", static_cast<std::int64_t>(n));
    h5::SetAttr(g, "episode_index", static_cast<std::int64_t>(ep.index));
    h5::SetAttr(g, "seed", static_cast<std::int64_t>(ep.seed));
    h5::SetAttr(g, "attempts", static_cast<std::int64_t>(ep.attempts));
    h5::SetAttr(g, "task", ep.task);
    h5::SetAttr(g, "success", static_cast<std::int64_t>(ep.success ? 1 : 0));
    h5::SetAttr(g, "noise", ep.noise);
    h5::SetAttr(g, "randomization", ep.draw.dump());
    for (const auto& [key, value] : meta.items()) h5::SetAttr(g, key, value.is_string() ? value.get<std::string>() : value.dump());
    for (const auto& [key, value] : ep.extra_attrs.items()) {
      if (value.is_number_integer())
        h5::SetAttr(g, key, value.get<std::int64_t>());
      else if (value.is_number())
        h5::SetAttr(g, key, value.get<double>());
      else
        h5::SetAttr(g, key, value.is_string() ? value.get<std::string>() : value.dump());
    }
    for (const auto& [name, series] : ep.extra_series) h5::WriteArray(g, name, {series.size()}, series.data(), series.size(), 0, true);

    WriteMatrix(g, keys::kActions, ep.actions, n);
    WriteMatrix(g, "action_dict/joint_position", ep.joint_targets, n);
    WriteMatrix(g, keys::kStates, ep.states, n);
    h5::WriteArray(g, keys::kRewards, {n}, ep.rewards.data(), n, 0, true);
    h5::WriteArray(g, keys::kDones, {n}, ep.dones.data(), n, 0, true);
    WriteMatrix(g, keys::kJointPos, ep.joint_pos, n);
    WriteMatrix(g, keys::kJointVel, ep.joint_vel, n);
    WriteMatrix(g, keys::kEefPos, ep.eef_pos, n);
    WriteMatrix(g, keys::kEefQuat, ep.eef_quat, n);
    if (ep.gripper_dim > 0) WriteMatrix(g, keys::kGripperQpos, ep.gripper_qpos, n);
    WriteMatrix(g, keys::kObject, ep.object, n);
    if (!ep.site_names.empty()) {  // several sites of interest: all their positions, names in an attribute
      WriteMatrix(g, keys::kSitesPos, ep.sites_pos, n);
      h5::SetAttr(g, "sites", nlohmann::json(ep.site_names).dump());
    }
    const hsize_t s = ep.image_size;
    for (int c = 0; c < ep.num_cameras; ++c) {
      const std::string cam = "camera" + std::to_string(c);
      if (!ep.images.empty() && !ep.images[c].empty()) {
        // One chunk per frame, deflate 1: frames stay independently readable and cheap to write.
        h5::WriteArray(g, keys::Image(cam), {n, s, s, 3}, ep.images[c].data(), 1, 1, true);
      }
      h5::WriteArray(g, keys::Intrinsics(cam), {3, 3}, ep.intrinsics[c].data(), 3, 0, true);
      h5::WriteArray(g, keys::Extrinsics(cam), {4, 4}, ep.extrinsics[c].data(), 4, 0, true);
    }
    if (!ep.eye_in_hand_images.empty()) {  // the camera on the hand: a pose per frame
      h5::WriteArray(g, keys::Image(keys::kEyeInHand), {n, s, s, 3}, ep.eye_in_hand_images.data(), 1, 1, true);
      h5::WriteArray(g, keys::Intrinsics(keys::kEyeInHand), {3, 3}, ep.eye_in_hand_intrinsics.data(), 3, 0, true);
      h5::WriteArray(g, keys::Extrinsics(keys::kEyeInHand), {n, 4, 4}, ep.eye_in_hand_extrinsics.data(), n, 0, true);
    }
    // robomimic reads next_obs by default (train.hdf5_load_next_obs): every obs key again, one step
    // ahead, the last step repeated, as views over obs (no frames copied).
    for (const std::string& key : h5::ListNames(g, "obs")) {
      h5::WriteNextRowView(g, "next_obs/" + key, "/" + DemoName(ep.index) + "/obs/" + key);
    }
  });
}

std::int64_t ReadEpisodeFileSamples(const fs::path& file, std::int64_t index) {
  h5::Handle f = h5::OpenFile(file.string());
  h5::Handle g = h5::OpenGroup(f, DemoName(index));
  return h5::GetIntAttr(g, "num_samples");
}

void WriteTopFile(const fs::path& path, const std::map<std::int64_t, EpisodeEntry>& episodes, const nlohmann::json& env_args,
                  const nlohmann::json& config, const nlohmann::json& meta) {
  WriteAtomically(path, [&](const fs::path& tmp) {
    h5::Handle file = h5::CreateFile(tmp.string());
    h5::Handle data = h5::CreateGroup(file, "data");
    std::int64_t total = 0;
    std::vector<std::string> train, valid;
    for (const auto& [index, entry] : episodes) {
      const std::string demo = DemoName(index);
      if (H5Lcreate_external(entry.file.c_str(), entry.object.c_str(), data, demo.c_str(), H5P_DEFAULT, H5P_DEFAULT) < 0) {
        throw DatasetError("cannot link " + demo + " in " + tmp.string());
      }
      total += entry.num_samples;
      (IsValidationEpisode(index) ? valid : train).push_back(demo);
    }
    h5::SetAttr(data, "total", total);
    h5::SetAttr(data, "env_args", env_args.dump());
    h5::SetAttr(data, "embody_config", config.dump());
    h5::SetAttr(data, "embody_meta", meta.dump());
    h5::WriteStrings(file, "mask/train", train);
    h5::WriteStrings(file, "mask/valid", valid);
  });
}

Dataset::Dataset(const fs::path& path) : path_(path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) throw DatasetError(path.string() + ": no such file");
  try {
    file_ = h5::OpenFile(path.string());
  } catch (const DatasetError&) {
    throw DatasetError(path.string() + ": not a readable HDF5 file (truncated or corrupt?)");
  }
  links_ = h5::Handle(H5Pcreate(H5P_LINK_ACCESS), H5Pclose, "H5Pcreate");
  const std::string prefix = fs::absolute(path).parent_path().string() + "/";
  if (H5Pset_elink_prefix(links_, prefix.c_str()) < 0) throw DatasetError(path.string() + ": cannot set the external link prefix");
  if (!h5::Exists(file_, "data")) throw DatasetError(path.string() + ": not an Embody/robomimic dataset (no /data group)");
  h5::Handle data = h5::OpenGroup(file_, "data");
  try {
    total_ = h5::HasAttr(data, "total") ? h5::GetIntAttr(data, "total") : 0;
    if (h5::HasAttr(data, "env_args")) env_args_ = nlohmann::json::parse(h5::GetStringAttr(data, "env_args"));
    if (h5::HasAttr(data, "embody_config")) config_ = nlohmann::json::parse(h5::GetStringAttr(data, "embody_config"));
    if (h5::HasAttr(data, "embody_meta")) {
      meta_ = nlohmann::json::parse(h5::GetStringAttr(data, "embody_meta"));
      try {
        metadata_ = DatasetMetadata::FromJson(meta_);
      } catch (const DatasetError& e) {
        throw DatasetError(path.string() + ": " + e.what());
      }
      has_metadata_ = true;
    }
  } catch (const nlohmann::json::exception& e) {
    throw DatasetError(path.string() + ": /data attributes are not valid JSON: " + e.what());
  }
  H5G_info_t info;
  if (H5Gget_info(data, &info) < 0) throw DatasetError(path.string() + ": cannot list /data");
  std::vector<std::pair<std::int64_t, std::string>> named;
  for (hsize_t i = 0; i < info.nlinks; ++i) {
    char name[256];
    if (H5Lget_name_by_idx(data, ".", H5_INDEX_NAME, H5_ITER_INC, i, name, sizeof(name), H5P_DEFAULT) < 0) continue;
    const std::string s = name;
    if (s.rfind("demo_", 0) != 0) continue;
    try {
      named.emplace_back(std::stoll(s.substr(5)), s);
    } catch (const std::exception&) {
      named.emplace_back(-1, s);
    }
  }
  std::sort(named.begin(), named.end());
  for (const auto& [index, name] : named) demos_.push_back(name);
  for (const auto& demo : demos_) {
    H5L_info_t link;
    if (H5Lget_info(data, demo.c_str(), &link, H5P_DEFAULT) >= 0 && link.type == H5L_TYPE_EXTERNAL) targets_[demo] = LinkTarget(demo).first;
  }
}

std::vector<std::string> Dataset::Mask(const std::string& name) const {
  return h5::Exists(file_, "mask/" + name) ? h5::ReadStrings(file_, "mask/" + name) : std::vector<std::string>{};
}

h5::Handle Dataset::Demo(const std::string& demo) const {
  try {
    h5::Handle g(H5Oopen(file_, ("data/" + demo).c_str(), links_), H5Oclose, "cannot open /data/" + demo);
    // HDF5 falls back to other folders (the working directory) when the episode file next to the
    // dataset cannot be opened: only the dataset's own file counts.
    const auto target = targets_.find(demo);
    if (target != targets_.end()) {
      h5::Handle file(H5Iget_file_id(g), H5Fclose, "H5Iget_file_id");
      std::vector<char> name(4096);
      if (H5Fget_name(file, name.data(), name.size()) <= 0 ||
          fs::absolute(name.data()).lexically_normal() != fs::absolute(target->second).lexically_normal()) {
        throw DatasetError("resolved elsewhere");
      }
    }
    return g;
  } catch (const DatasetError&) {
    const auto target = targets_.find(demo);
    throw DatasetError(path_.string() + ": cannot open /data/" + demo + " (its episode file " +
                       (target != targets_.end() ? target->second.string() + " " : "") +
                       "is missing or not a readable HDF5 file: truncated or corrupt?)");
  }
}

// Reads through `read`, naming the dataset and episode in any error.
template <typename F>
auto Dataset::Named(const std::string& demo, F&& read) const -> decltype(read()) {
  try {
    return read();
  } catch (const DatasetError& e) {
    const std::string what = e.what();
    if (what.rfind(path_.string(), 0) == 0) throw;  // already says where
    throw DatasetError(path_.string() + ": " + demo + ": " + what);
  }
}

std::int64_t Dataset::NumSamples(const std::string& demo) const {
  return Named(demo, [&] { return h5::GetIntAttr(Demo(demo), "num_samples"); });
}
std::string Dataset::StringAttr(const std::string& demo, const std::string& name) const {
  return Named(demo, [&] { return h5::GetStringAttr(Demo(demo), name); });
}
std::int64_t Dataset::IntAttr(const std::string& demo, const std::string& name) const {
  return Named(demo, [&] { return h5::GetIntAttr(Demo(demo), name); });
}
double Dataset::DoubleAttr(const std::string& demo, const std::string& name) const {
  return Named(demo, [&] { return h5::GetDoubleAttr(Demo(demo), name); });
}
bool Dataset::HasDataset(const std::string& demo, const std::string& name) const { return h5::Exists(Demo(demo), name); }
bool Dataset::HasAttr(const std::string& demo, const std::string& name) const { return h5::HasAttr(Demo(demo), name); }

template <typename T>
std::vector<T> Dataset::Read(const std::string& demo, const std::string& name, std::vector<hsize_t>* dims) const {
  return Named(demo, [&] { return h5::ReadArray<T>(Demo(demo), name, dims); });
}
template std::vector<float> Dataset::Read<float>(const std::string&, const std::string&, std::vector<hsize_t>*) const;
template std::vector<double> Dataset::Read<double>(const std::string&, const std::string&, std::vector<hsize_t>*) const;
template std::vector<std::int32_t> Dataset::Read<std::int32_t>(const std::string&, const std::string&, std::vector<hsize_t>*) const;
template std::vector<std::uint8_t> Dataset::Read<std::uint8_t>(const std::string&, const std::string&, std::vector<hsize_t>*) const;

std::vector<std::string> Dataset::AgentCameras() const {
  const int n = config_.is_object() && config_.contains("cameras") && config_["cameras"].is_number_integer() ? config_["cameras"].get<int>() : 1;
  std::vector<std::string> cameras;
  for (int c = 0; c < std::max(1, n); ++c) cameras.push_back("camera" + std::to_string(c));
  return cameras;
}

bool Dataset::CameraMoves(const std::string& demo, const std::string& camera) const {
  std::vector<hsize_t> dims;
  (void)Read<double>(demo, keys::Extrinsics(camera), &dims);
  return dims.size() == 3;
}

std::vector<double> Dataset::CameraPoses(const std::string& demo, const std::string& camera) const {
  std::vector<hsize_t> dims;
  const std::vector<double> poses = Read<double>(demo, keys::Extrinsics(camera), &dims);
  const auto n = static_cast<size_t>(NumSamples(demo));
  if (dims.size() == 3 && dims[0] == n && dims[1] == 4 && dims[2] == 4) return poses;
  if (dims.size() != 2 || dims[0] != 4 || dims[1] != 4) {
    throw DatasetError(path_.string() + ": " + demo + "/" + keys::Extrinsics(camera) + " is neither 4x4 nor one 4x4 per frame");
  }
  std::vector<double> repeated;
  repeated.reserve(n * 16);
  for (size_t t = 0; t < n; ++t) repeated.insert(repeated.end(), poses.begin(), poses.end());
  return repeated;
}

std::vector<std::uint8_t> Dataset::ReadFrames(const std::string& demo, const std::string& camera, hsize_t first, hsize_t count,
                                              std::vector<hsize_t>* dims, hsize_t stride) const {
  return Named(demo, [&] { return h5::ReadRows<std::uint8_t>(Demo(demo), keys::Image(camera), first, count, dims, stride); });
}

namespace {

// One array of an episode: its element class, rank, `n` rows and the trailing dimensions `tail` (0:
// any); a float array is read back and must be finite. A missing one is refused when `required`,
// else its shape is empty.
h5::DatasetShape CheckArray(const h5::Handle& g, std::int64_t n, const std::string& name, H5T_class_t cls, int rank, std::vector<hsize_t> tail,
                            bool required) {
  if (!h5::Exists(g, name)) {
    if (required) throw DatasetError("no " + name);
    return h5::DatasetShape{};
  }
  const h5::DatasetShape d = h5::Describe(g, name);
  if (d.type_class != cls)
    throw DatasetError(name + " has element type class " + std::to_string(d.type_class) + ", expected " + (cls == H5T_FLOAT ? "float" : "integer"));
  if (static_cast<int>(d.dims.size()) != rank)
    throw DatasetError(name + " has rank " + std::to_string(d.dims.size()) + ", expected " + std::to_string(rank));
  if (d.dims[0] != static_cast<hsize_t>(n)) {
    throw DatasetError(name + " has " + std::to_string(d.dims[0]) + " rows, but num_samples is " + std::to_string(n));
  }
  for (size_t k = 0; k < tail.size(); ++k) {
    if (tail[k] > 0 && d.dims[k + 1] != tail[k]) {
      throw DatasetError(name + " has dimension " + std::to_string(k + 1) + " of " + std::to_string(d.dims[k + 1]) + ", expected " +
                         std::to_string(tail[k]));
    }
  }
  if (cls == H5T_FLOAT) {
    std::vector<double> values;
    try {
      values = h5::ReadArray<double>(g, name);
    } catch (const DatasetError&) {
      throw DatasetError(name + " cannot be read back (damaged: checksum error)");
    }
    for (size_t i = 0; i < values.size(); ++i) {
      if (!std::isfinite(values[i])) {
        const hsize_t row_size = values.size() / d.dims[0];
        throw DatasetError(name + " has a non-finite value (" + std::to_string(values[i]) + ") at step " + std::to_string(i / row_size));
      }
    }
  }
  return d;
}

// Every array of an opened episode (frames of `size` px, read back too when `frames`) and its
// attributes.
void CheckEpisodeGroup(const h5::Handle& g, int size, bool frames) {
  if (!h5::HasAttr(g, "num_samples")) throw DatasetError("no num_samples attribute");
  const std::int64_t n = h5::GetIntAttr(g, "num_samples");
  if (n < 1) throw DatasetError("num_samples is " + std::to_string(n));
  auto check = [&](const std::string& name, H5T_class_t cls, int rank, std::vector<hsize_t> tail, bool required) {
    return CheckArray(g, n, name, cls, rank, std::move(tail), required);
  };
  check(keys::kActions, H5T_FLOAT, 2, {0}, true);
  check(keys::kStates, H5T_FLOAT, 2, {0}, true);
  check(keys::kRewards, H5T_FLOAT, 1, {}, true);
  check(keys::kDones, H5T_INTEGER, 1, {}, true);
  const auto joints = check(keys::kJointPos, H5T_FLOAT, 2, {0}, true);
  check(keys::kJointVel, H5T_FLOAT, 2, {joints.dims[1]}, true);
  check(keys::kEefPos, H5T_FLOAT, 2, {0}, true);
  const auto quat = check(keys::kEefQuat, H5T_FLOAT, 2, {0}, true);
  if (quat.dims[1] % 4 != 0 || quat.dims[1] == 0)
    throw DatasetError(std::string(keys::kEefQuat) + " has " + std::to_string(quat.dims[1]) + " columns, not 4 per site");
  check(keys::kGripperQpos, H5T_FLOAT, 2, {0}, false);
  const auto objects = check(keys::kObject, H5T_FLOAT, 2, {0}, false);
  if (!objects.dims.empty() && objects.dims[1] % 7 != 0)
    throw DatasetError("obs/object has " + std::to_string(objects.dims[1]) + " columns, not 7 per object");
  const auto sites = check(keys::kSitesPos, H5T_FLOAT, 2, {0}, false);
  if (!sites.dims.empty() && (sites.dims[1] % 3 != 0 || sites.dims[1] == 0))
    throw DatasetError(std::string(keys::kSitesPos) + " has " + std::to_string(sites.dims[1]) + " columns, not 3 per site");
  const auto ee = h5::Describe(g, keys::kEefPos);
  if (ee.dims[1] % 3 != 0 || ee.dims[1] == 0)
    throw DatasetError(std::string(keys::kEefPos) + " has " + std::to_string(ee.dims[1]) + " columns, not 3 per site");
  for (const std::string& key : h5::ListNames(g, "obs")) {
    if (key.size() < 6 || key.compare(key.size() - 6, 6, "_image") != 0) continue;
    const auto d = check("obs/" + key, H5T_INTEGER, 4, {static_cast<hsize_t>(size), static_cast<hsize_t>(size), 3}, true);
    if (d.type_size != 1 || d.is_signed) throw DatasetError("obs/" + key + " is not uint8");
    if (frames) {
      try {
        (void)h5::ReadArray<std::uint8_t>(g, "obs/" + key);
      } catch (const DatasetError&) {
        throw DatasetError("obs/" + key + " cannot be read back (damaged: checksum or compression error)");
      }
    }
  }
  if (h5::HasAttr(g, "randomization") && !nlohmann::json::accept(h5::GetStringAttr(g, "randomization"))) {
    throw DatasetError("its randomization attribute is not valid JSON");
  }
}

}  // namespace

void Dataset::CheckEpisode(const std::string& demo, bool frames) const {
  std::string where = path_.string() + ": " + demo;
  const auto target = targets_.find(demo);  // none: the demo is stored in the top file itself
  if (target != targets_.end()) {
    where += " (" + target->second.filename().string() + ")";
    std::error_code ec;
    if (!fs::exists(target->second, ec)) throw DatasetError(where + ": its episode file " + target->second.string() + " is missing");
  }
  h5::Handle g;
  try {
    g = Demo(demo);
  } catch (const DatasetError&) {
    throw DatasetError(where + ": cannot be opened (its episode file is not a readable HDF5 file: truncated or corrupt?)");
  }
  try {
    CheckEpisodeGroup(g, config_.is_object() ? config_.value("image_size", 0) : 0, frames);
  } catch (const DatasetError& e) {
    throw DatasetError(where + ": " + e.what());
  }
}

void Dataset::CheckAll(bool frames) const {
  for (const auto& demo : demos_) CheckEpisode(demo, frames);
}

std::pair<fs::path, std::string> Dataset::LinkTarget(const std::string& demo) const {
  h5::Handle data = h5::OpenGroup(file_, "data");
  H5L_info_t info;
  if (H5Lget_info(data, demo.c_str(), &info, H5P_DEFAULT) < 0 || info.type != H5L_TYPE_EXTERNAL) {
    throw DatasetError(path_.string() + ": /data/" + demo + " is not an external link");
  }
  std::vector<char> buffer(info.u.val_size);
  H5Lget_val(data, demo.c_str(), buffer.data(), buffer.size(), H5P_DEFAULT);
  const char *file = nullptr, *object = nullptr;
  unsigned flags = 0;
  H5Lunpack_elink_val(buffer.data(), buffer.size(), &flags, &file, &object);
  fs::path target = file;
  if (target.is_relative()) target = fs::absolute(path_).parent_path() / target;
  return {target.lexically_normal(), object};
}

}  // namespace embody::collect
