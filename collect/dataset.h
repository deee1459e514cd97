// The dataset on disk (robomimic-compatible superset, see docs/ARCHITECTURE.md).
//
//   data/franka.h5                  the file users open: /data (attrs total, env_args, embody_config),
//                                   /data/demo_N (HDF5 external links), /mask/train, /mask/valid
//   data/franka.h5.parts/episode_0000042.h5
//                                   one finished episode: /demo_42 with actions, states, rewards,
//                                   dones, obs/..., action_dict/joint_position, camera/..., attrs
//
// Crash safety: an episode file is written under a temporary name and renamed when complete; the
// top file is rewritten to a temporary name and renamed over the old one. Both renames are atomic,
// so after a kill at any moment the top file is a valid, complete HDF5 file whose every episode is
// complete; episodes finished after its last rewrite are picked up by --resume.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "collect/episode_data.h"
#include "collect/hdf5_util.h"

namespace embody::collect {

/// The keys of an episode group (/data/demo_N), named once: the writer (WriteEpisodeFile), the
/// checks (Dataset::CheckEpisode) and every reader (stage one and two, the viewer) use these.
namespace keys {
inline constexpr char kActions[] = "actions";  ///< (N, A) float, in [-1, 1]
inline constexpr char kStates[] = "states";    ///< (N, D) the full MuJoCo state, for exact replay
inline constexpr char kRewards[] = "rewards";  ///< (N,) 1 where the task's goal holds
inline constexpr char kDones[] = "dones";      ///< (N,) 1 at the last step
inline constexpr char kJointPos[] = "obs/robot0_joint_pos";
inline constexpr char kJointVel[] = "obs/robot0_joint_vel";
inline constexpr char kEefPos[] = "obs/robot0_eef_pos";    ///< (N, 3) per end-effector site
inline constexpr char kEefQuat[] = "obs/robot0_eef_quat";  ///< (N, 4) per end-effector site, w x y z
inline constexpr char kGripperQpos[] = "obs/robot0_gripper_qpos";
inline constexpr char kSitesPos[] = "obs/robot0_sites_pos";  ///< (N, 3 x sites): a humanoid's hands
inline constexpr char kObject[] = "obs/object";              ///< (N, 7 x objects): position and quaternion
/// The camera on the hand (simcollect --eye-in-hand), under robomimic's name. Unlike the agent views
/// camera0, camera1, ..., it moves: its extrinsics are (N, 4, 4), one pose per frame.
inline constexpr char kEyeInHand[] = "robot0_eye_in_hand";
/// obs/<camera>_image: (N, S, S, 3) uint8.
inline std::string Image(const std::string& camera) { return "obs/" + camera + "_image"; }
/// camera/<camera>/intrinsics: (3, 3), row-major pinhole.
inline std::string Intrinsics(const std::string& camera) { return "camera/" + camera + "/intrinsics"; }
/// camera/<camera>/extrinsics: (4, 4) camera-to-world, OpenGL axes; (N, 4, 4) for a camera that moves
/// (Dataset::CameraPoses reads either).
inline std::string Extrinsics(const std::string& camera) { return "camera/" + camera + "/extrinsics"; }
}  // namespace keys

/// The dataset-level metadata (/data attribute embody_meta, copied onto every episode group): one
/// list of keys for the writer (collect::DatasetMeta) and every reader (Dataset::metadata()).
struct DatasetMetadata {
  std::string embodiment;
  std::vector<std::string> action_names;  ///< one per action dimension
  double position_scale = 0, rotation_scale = 0, joint_scale = 0;
  std::vector<std::string> joint_names;  ///< the controlled joints
  nlohmann::json ToJson() const;
  /// @throws DatasetError naming the missing or mistyped key.
  static DatasetMetadata FromJson(const nlohmann::json& j);
};

/// Folder of the episode files that belong to the dataset `path`.
std::filesystem::path PartsDir(const std::filesystem::path& path);
/// The name of episode `index`'s file in PartsDir.
std::string EpisodeFileName(std::int64_t index);
/// robomimic demo name of episode `index`.
std::string DemoName(std::int64_t index);
/// Whether episode `index` belongs to /mask/valid (every tenth episode: 90/10 by episode).
bool IsValidationEpisode(std::int64_t index);

/// What the top file needs to know of a finished episode.
struct EpisodeEntry {
  std::string file;    ///< external link target file, relative to the top file's folder
  std::string object;  ///< group inside it ("/demo_N")
  std::int64_t num_samples = 0;
};

/// Writes one finished episode into `parts_dir` (temporary name, then rename).
/// `meta` holds per-dataset attributes copied onto the episode group (embodiment, action space).
/// @throws DatasetError.
void WriteEpisodeFile(const std::filesystem::path& parts_dir, const EpisodeData& ep, const nlohmann::json& meta);

/// Rewrites the top file atomically. `episodes` maps global episode index to its entry.
/// @throws DatasetError.
void WriteTopFile(const std::filesystem::path& path, const std::map<std::int64_t, EpisodeEntry>& episodes, const nlohmann::json& env_args,
                  const nlohmann::json& config, const nlohmann::json& meta);

/// Reads the num_samples of a finished episode file. @throws DatasetError when it is not one.
std::int64_t ReadEpisodeFileSamples(const std::filesystem::path& file, std::int64_t index);

/// Read access to a dataset (top file plus the episodes it links).
class Dataset {
 public:
  /// @throws DatasetError when the file is missing, corrupt, or not an Embody/robomimic dataset.
  explicit Dataset(const std::filesystem::path& path);

  const std::filesystem::path& path() const { return path_; }
  const nlohmann::json& config() const { return config_; }  ///< embody_config (empty if not Embody)
  const nlohmann::json& env_args() const { return env_args_; }
  const nlohmann::json& meta() const { return meta_; }  ///< embody_meta as stored (empty if not Embody)
  /// embody_meta, typed. @throws DatasetError when the dataset has none (not written by simcollect).
  const DatasetMetadata& metadata() const;
  /// The control rate (env_args' env_kwargs.control_hz). @throws DatasetError when absent.
  double control_hz() const;
  std::int64_t total() const { return total_; }
  /// Demo names, in episode order.
  const std::vector<std::string>& demos() const { return demos_; }
  std::vector<std::string> Mask(const std::string& name) const;
  /// The agent views the dataset was collected with (camera0 .. camera{N-1}, simcollect --cameras N;
  /// camera0 for a dataset that does not say). The hand camera is not among them.
  std::vector<std::string> AgentCameras() const;

  std::int64_t NumSamples(const std::string& demo) const;
  std::string StringAttr(const std::string& demo, const std::string& name) const;
  std::int64_t IntAttr(const std::string& demo, const std::string& name) const;
  double DoubleAttr(const std::string& demo, const std::string& name) const;
  bool HasDataset(const std::string& demo, const std::string& name) const;
  bool HasAttr(const std::string& demo, const std::string& name) const;
  /// A dataset under the demo group, e.g. keys::kEefPos. dims receives its shape.
  template <typename T>
  std::vector<T> Read(const std::string& demo, const std::string& name, std::vector<hsize_t>* dims = nullptr) const;
  /// The camera-to-world pose of `camera` at every frame (N x 16, row-major 4x4 each): a fixed
  /// camera's one pose repeated, a moving one's (the eye in hand) as recorded. @throws DatasetError.
  std::vector<double> CameraPoses(const std::string& demo, const std::string& camera) const;
  /// Whether `camera` moves during `demo` (its extrinsics hold one pose per frame).
  bool CameraMoves(const std::string& demo, const std::string& camera) const;
  /// `count` frames of obs/<camera>_image from `first`, `stride` apart (1: [first, first+count)).
  std::vector<std::uint8_t> ReadFrames(const std::string& demo, const std::string& camera, hsize_t first, hsize_t count,
                                       std::vector<hsize_t>* dims = nullptr, hsize_t stride = 1) const;
  /// Checks that an episode is what the format says: its file opens; num_samples N >= 1; actions,
  /// states, rewards, dones and the obs arrays exist with N rows, float (images uint8 of the dataset's
  /// size, proprio widths consistent) and finite; the randomization attribute is JSON. With
  /// `frames`, every frame is also read (decompressed, and checked against its checksum).
  /// @throws DatasetError naming the dataset, the episode, its file and what is wrong.
  void CheckEpisode(const std::string& demo, bool frames = false) const;
  /// CheckEpisode for every episode (programs that train on the data call it, with frames, before
  /// any output).
  void CheckAll(bool frames = false) const;

  /// Where /data/<demo> links to (absolute file path, object path). @throws DatasetError if not a link.
  std::pair<std::filesystem::path, std::string> LinkTarget(const std::string& demo) const;

 private:
  h5::Handle Demo(const std::string& demo) const;
  template <typename F>
  auto Named(const std::string& demo, F&& read) const -> decltype(read());

  std::filesystem::path path_;
  h5::Handle file_;
  /// Link access with the top file's folder as the external-link prefix: episode files resolve next
  /// to the dataset, never against the working directory (HDF5 tries that first otherwise).
  h5::Handle links_;
  std::map<std::string, std::filesystem::path> targets_;  ///< demo -> its episode file (external links)
  nlohmann::json config_, env_args_, meta_;
  DatasetMetadata metadata_;
  bool has_metadata_ = false;
  std::int64_t total_ = 0;
  std::vector<std::string> demos_;
};

}  // namespace embody::collect
