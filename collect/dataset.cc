#include "collect/dataset.h"

#include <algorithm>
#include <cstdio>

namespace embody::collect {
namespace {

namespace fs = std::filesystem;

void RenameOver(const fs::path& from, const fs::path& to) {
  std::error_code ec;
  fs::rename(from, to, ec);
  if (ec) {
    fs::remove(from, ec);
    throw DatasetError("cannot move " + from.string() + " to " + to.string() + ": " + ec.message());
  }
}

template <typename T>
void WriteMatrix(hid_t group, const std::string& name, const std::vector<T>& data, hsize_t rows) {
  const hsize_t cols = rows > 0 ? data.size() / rows : 0;
  h5::WriteArray<T>(group, name, {rows, cols}, data.data());
}

}  // namespace

fs::path PartsDir(const fs::path& path) { return fs::path(path.string() + ".parts"); }

std::string EpisodeFileName(std::int64_t index) {
  char name[64];
  std::snprintf(name, sizeof(name), "episode_%07lld.h5", static_cast<long long>(index));
  return name;
}

std::string DemoName(std::int64_t index) { return "demo_" + std::to_string(index); }

bool IsValidationEpisode(std::int64_t index) { return index % 10 == 9; }

void WriteEpisodeFile(const fs::path& parts_dir, const EpisodeData& ep, const nlohmann::json& meta) {
  const fs::path final_path = parts_dir / EpisodeFileName(ep.index);
  const fs::path tmp = final_path.string() + ".tmp";
  {
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
      if (value.is_number_integer()) h5::SetAttr(g, key, value.get<std::int64_t>());
      else if (value.is_number()) h5::SetAttr(g, key, value.get<double>());
      else h5::SetAttr(g, key, value.is_string() ? value.get<std::string>() : value.dump());
    }
    for (const auto& [name, series] : ep.extra_series) h5::WriteArray(g, name, {series.size()}, series.data());

    WriteMatrix(g, "actions", ep.actions, n);
    WriteMatrix(g, "action_dict/joint_position", ep.joint_targets, n);
    WriteMatrix(g, "states", ep.states, n);
    h5::WriteArray(g, "rewards", {n}, ep.rewards.data());
    h5::WriteArray(g, "dones", {n}, ep.dones.data());
    WriteMatrix(g, "obs/robot0_joint_pos", ep.joint_pos, n);
    WriteMatrix(g, "obs/robot0_joint_vel", ep.joint_vel, n);
    WriteMatrix(g, "obs/robot0_eef_pos", ep.eef_pos, n);
    WriteMatrix(g, "obs/robot0_eef_quat", ep.eef_quat, n);
    if (ep.gripper_dim > 0) WriteMatrix(g, "obs/robot0_gripper_qpos", ep.gripper_qpos, n);
    WriteMatrix(g, "obs/object", ep.object, n);
    const hsize_t s = ep.image_size;
    for (int c = 0; c < ep.num_cameras; ++c) {
      const std::string cam = "camera" + std::to_string(c);
      if (!ep.images.empty() && !ep.images[c].empty()) {
        // One chunk per frame, deflate 1: frames stay independently readable and cheap to write.
        h5::WriteArray(g, "obs/" + cam + "_image", {n, s, s, 3}, ep.images[c].data(), 1, 1);
      }
      h5::WriteArray(g, "camera/" + cam + "/intrinsics", {3, 3}, ep.intrinsics[c].data());
      h5::WriteArray(g, "camera/" + cam + "/extrinsics", {4, 4}, ep.extrinsics[c].data());
    }
    // robomimic reads next_obs by default (train.hdf5_load_next_obs): every obs key again, one step
    // ahead, the last step repeated, as views over obs (no frames copied).
    for (const std::string& key : h5::ListNames(g, "obs")) {
      h5::WriteNextRowView(g, "next_obs/" + key, "/" + DemoName(ep.index) + "/obs/" + key);
    }
  }
  RenameOver(tmp, final_path);
}

std::int64_t ReadEpisodeFileSamples(const fs::path& file, std::int64_t index) {
  h5::Handle f = h5::OpenFile(file.string());
  h5::Handle g = h5::OpenGroup(f, DemoName(index));
  return h5::GetIntAttr(g, "num_samples");
}

void WriteTopFile(const fs::path& path, const std::map<std::int64_t, EpisodeEntry>& episodes,
                  const nlohmann::json& env_args, const nlohmann::json& config, const nlohmann::json& meta) {
  const fs::path tmp = path.string() + ".tmp";
  {
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
  }
  RenameOver(tmp, path);
}

Dataset::Dataset(const fs::path& path) : path_(path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) throw DatasetError(path.string() + ": no such file");
  try {
    file_ = h5::OpenFile(path.string());
  } catch (const DatasetError&) {
    throw DatasetError(path.string() + ": not a readable HDF5 file (truncated or corrupt?)");
  }
  if (!h5::Exists(file_, "data")) throw DatasetError(path.string() + ": not an Embody/robomimic dataset (no /data group)");
  h5::Handle data = h5::OpenGroup(file_, "data");
  try {
    total_ = h5::HasAttr(data, "total") ? h5::GetIntAttr(data, "total") : 0;
    if (h5::HasAttr(data, "env_args")) env_args_ = nlohmann::json::parse(h5::GetStringAttr(data, "env_args"));
    if (h5::HasAttr(data, "embody_config")) config_ = nlohmann::json::parse(h5::GetStringAttr(data, "embody_config"));
    if (h5::HasAttr(data, "embody_meta")) meta_ = nlohmann::json::parse(h5::GetStringAttr(data, "embody_meta"));
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
}

std::vector<std::string> Dataset::Mask(const std::string& name) const {
  return h5::Exists(file_, "mask/" + name) ? h5::ReadStrings(file_, "mask/" + name) : std::vector<std::string>{};
}

h5::Handle Dataset::Demo(const std::string& demo) const {
  try {
    return h5::OpenGroup(file_, "data/" + demo);
  } catch (const DatasetError&) {
    throw DatasetError(path_.string() + ": cannot open /data/" + demo + " (its episode file is missing or corrupt)");
  }
}

std::int64_t Dataset::NumSamples(const std::string& demo) const { return h5::GetIntAttr(Demo(demo), "num_samples"); }
std::string Dataset::StringAttr(const std::string& demo, const std::string& name) const {
  return h5::GetStringAttr(Demo(demo), name);
}
std::int64_t Dataset::IntAttr(const std::string& demo, const std::string& name) const {
  return h5::GetIntAttr(Demo(demo), name);
}
double Dataset::DoubleAttr(const std::string& demo, const std::string& name) const {
  return h5::GetDoubleAttr(Demo(demo), name);
}
bool Dataset::HasDataset(const std::string& demo, const std::string& name) const {
  return h5::Exists(Demo(demo), name);
}

template <typename T>
std::vector<T> Dataset::Read(const std::string& demo, const std::string& name, std::vector<hsize_t>* dims) const {
  return h5::ReadArray<T>(Demo(demo), name, dims);
}
template std::vector<float> Dataset::Read<float>(const std::string&, const std::string&, std::vector<hsize_t>*) const;
template std::vector<double> Dataset::Read<double>(const std::string&, const std::string&, std::vector<hsize_t>*) const;
template std::vector<std::int32_t> Dataset::Read<std::int32_t>(const std::string&, const std::string&, std::vector<hsize_t>*) const;
template std::vector<std::uint8_t> Dataset::Read<std::uint8_t>(const std::string&, const std::string&, std::vector<hsize_t>*) const;

std::vector<std::uint8_t> Dataset::ReadFrames(const std::string& demo, const std::string& camera, hsize_t first,
                                              hsize_t count, std::vector<hsize_t>* dims) const {
  return h5::ReadRows<std::uint8_t>(Demo(demo), "obs/" + camera + "_image", first, count, dims);
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
