// The scene runner shared by `plan` and `surprise`: one arm, one camera (more for a world model of
// several views), episodes drawn as `simcollect` draws them for a seed of their own. Torch-free.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "collect/config.h"
#include "collect/episode.h"

namespace embody::adapt {

/// A runner for `robot`'s scenes at `randomization`, rendering one camera of `image_size`; `config`
/// receives the configuration it was made with. @throws AdaptError when the robot is not an arm
/// (`program` names who needs one, e.g. "plan"); CollectError/SimError from the scene.
std::unique_ptr<collect::EpisodeRunner> MakeArmSceneRunner(const std::string& robot, const collect::RandomizationConfig& randomization,
                                                           int image_size, std::uint64_t seed, const std::string& program,
                                                           collect::CollectConfig* config);

/// Gives a one-camera draw `views` cameras: cameras 1.. placed as simcollect --cameras `views` places
/// them, drawn from `rng`, a stream of their own, so that the scene (camera 0 included) stays the
/// one-camera scene. No-op for views <= 1.
void AddCameras(const collect::SceneRandomizer& randomizer, const collect::RandomizationConfig& randomization, int views, collect::Rng rng,
                collect::Draw* draw);

}  // namespace embody::adapt
