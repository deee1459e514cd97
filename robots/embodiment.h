// The embodiment descriptor: which MJCF a robot lives in, which joints it controls, where its
// end effector is, its gripper, home pose, control rate and action scales. Built-in robots are
// described by the same JSON files a user writes for a robot of their own (assets/embodiments/).
#pragma once

#include <filesystem>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace embody::robots {

/// Thrown for every user-facing problem with an embodiment: unknown name, bad JSON, missing field.
class EmbodimentError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// What the actions of an embodiment mean.
enum class EmbodimentKind {
  kArm,       ///< 7-D end-effector delta [dx dy dz drx dry drz gripper] in [-1,1].
  kHumanoid,  ///< One normalized joint-target delta per controlled joint, in [-1,1].
};

/// Scales that map a normalized action in [-1,1] to physical units per control step.
struct ActionScale {
  double position = 0.05;  ///< metres of end-effector motion for |a| = 1 (arms).
  double rotation = 0.25;  ///< radians of end-effector rotation for |a| = 1 (arms).
  double joint = 0.1;      ///< radians of joint-target change for |a| = 1 (humanoids).
};

/// A robot as Embody sees it. Names refer to elements of the MJCF scene in `mjcf`.
struct Embodiment {
  std::string name;
  EmbodimentKind kind = EmbodimentKind::kArm;
  std::filesystem::path mjcf;         ///< Absolute path of the scene MJCF that holds the robot.
  std::string base_body;              ///< The robot's root body (FK reference, base randomization).
  std::vector<std::string> joints;    ///< Controlled joints, each driven by one position actuator.
  std::string ee_site;                ///< End-effector site (arms).
  std::vector<std::string> ee_sites;  ///< Sites of interest (humanoid hands); ee_site for arms.
  /// The MJCF camera mounted on the hand (arms; empty if none): recorded by `simcollect
  /// --eye-in-hand` under robomimic's name robot0_eye_in_hand. It moves with the hand.
  std::string eye_in_hand_camera;
  std::string gripper_actuator;      ///< Gripper position actuator (arms; empty if none).
  double gripper_open = 0.04;        ///< Gripper actuator target when open.
  double gripper_closed = 0.0;       ///< Gripper actuator target when closed.
  std::vector<double> home;          ///< Home position of `joints`.
  double control_hz = 20.0;          ///< Control (action) rate.
  bool gravity_compensation = true;  ///< Feed gravity/Coriolis torques forward on `joints`.
  double ik_damping = 0.05;          ///< Damping of the least-squares IK (arms).
  ActionScale action_scale;
  /// What the scripted humanoid tasks call a joint (e.g. "right_elbow") -> the robot's joint that
  /// plays that role. A role not listed here means the joint of the same name.
  std::map<std::string, std::string> roles;

  /// Index in `joints` of the joint playing `role`, or -1 when none of the controlled joints does.
  int JointForRole(const std::string& role) const;

  /// Dimension of the normalized action vector.
  int action_dim() const;
  /// Names of the action components, e.g. {"dx", ..., "gripper"} or joint names.
  std::vector<std::string> action_names() const;
};

/// Parses a descriptor. Relative `mjcf` paths are resolved against `base_dir`.
/// @throws EmbodimentError naming the missing or malformed field.
Embodiment EmbodimentFromJson(const std::string& json_text, const std::filesystem::path& base_dir);

/// Loads a descriptor file. @throws EmbodimentError when it is missing or malformed.
Embodiment LoadEmbodimentFile(const std::filesystem::path& json_file);

/// The folder holding Embody's MJCF assets: $EMBODY_ASSETS_DIR if set, else the source tree's assets/.
std::filesystem::path AssetsDir();

/// Names of the built-in embodiments, sorted.
std::vector<std::string> BuiltinEmbodimentNames();

/// A built-in embodiment by name, or a user descriptor when `name_or_path` ends in ".json".
/// @throws EmbodimentError for an unknown name; the message lists the known ones.
Embodiment FindEmbodiment(const std::string& name_or_path);

/// Whether a robot argument (--robot, --embodiment) is a descriptor path (ends in ".json") rather
/// than a built-in's name.
bool IsDescriptorPath(const std::string& name_or_path);

/// The name a robot argument declares: a descriptor's "name", else the argument itself. Datasets
/// and models key on it (data/<name>.h5, models/<name>/). @throws EmbodimentError for a descriptor
/// that cannot be read.
std::string RobotName(const std::string& name_or_path);

/// How outputs record a robot so that a program run from another folder finds it again: a
/// built-in by its name, a descriptor by its absolute path.
std::string RobotRecord(const std::string& name_or_path);

}  // namespace embody::robots
