// What the programs take when a flag is not given, found from what earlier steps wrote:
// - the robot a program that runs a trained model acts with (plan, surprise): a built-in by name,
//   your own by its descriptor's path, or your own by the name it declares once a model folder
//   recorded its descriptor (adapt writes the dataset's record of the robot to <model>/metrics.json);
// - the frozen encoder: the one the model folder was trained on (metrics.json "encoder"), else
//   models/encoder.pt, else the only encoder in models/.
// Torch-free (the viewer uses it).
#pragma once

#include <string>

namespace embody::adapt {

struct RobotArg {
  std::string name;  ///< the declared name: world models and datasets key on it
  std::string ref;   ///< what robots::FindEmbodiment loads: a built-in's name or a descriptor path
};

/// Resolves `--embodiment` given `arg` (empty: the robot of `model_dir`'s metrics.json, else franka)
/// and `model_dir` (--model; empty: models/<name>). @throws AdaptError for a name that is neither a
/// built-in nor recorded by the model folder, naming both and the valid command.
RobotArg ResolveRobotArg(const std::string& arg, const std::string& model_dir);

struct EncoderArg {
  std::string path;
  std::string why;  ///< how it was chosen when --encoder was not given ("" when it was)
};

/// `given` (--encoder) when not empty; else the encoder `model_dir` (may be empty) was trained on when
/// that file exists, else models/encoder.pt, else the only *.pt in models/. @throws AdaptError
/// naming the encoders that exist (or the pretrain command) when none of these picks one.
EncoderArg ResolveEncoderArg(const std::string& given, const std::string& model_dir);

/// What a program that runs a trained model (plan, surprise) resolves from --embodiment, --model and
/// --encoder: the robot (ResolveRobotArg), the model folder (models/<name> when not given) and the
/// encoder (ResolveEncoderArg; which one it took and why said on stderr, as `program`).
struct ModelArgs {
  RobotArg robot;
  std::string model_dir, encoder;
};
ModelArgs ResolveModelArgs(const std::string& program, const std::string& robot, const std::string& model_dir, const std::string& encoder);

}  // namespace embody::adapt
