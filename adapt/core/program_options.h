// The options of a program as one JSON object: `--config FILE` on every program of adapt/ and the
// viewer (simcollect has its own, collect/config.h), and the options a run used, stored with what
// it wrote (a model folder's metrics.json, a results JSON, an encoder's eval.json, a screenshot's
// layout) so that `--config` on that object runs it again.
#pragma once

#include <nlohmann/json.hpp>

namespace CLI {
class App;
}

namespace embody::adapt {

/// Adds `--config FILE` to `app`: a JSON object whose keys are the program's long option names
/// without the dashes ({"steps": 1500, "camera": ["camera0", "camera1"], "freeze-trunk": true}).
/// The command line wins over the file; a key the program does not have is refused, naming it. A
/// file that stores a run's options under "options" (what ProgramOptions wrote into a model's
/// metrics.json or a results JSON) is read as those options: `plan --config out/plan.json` reruns.
/// Call after the program's own options, before parsing.
void AddConfigOption(CLI::App& app);

/// The options `app` parsed, as `--config` reads them: every option given (command line or file)
/// with its value, and every other option that shows a default, with that default (a flag only
/// when given: one left out may mean "decide", as pretrain's --prefetch does). Options marked
/// `configurable(false)` (actions such as --export) and `--config` itself are left out.
nlohmann::json ProgramOptions(const CLI::App& app);

}  // namespace embody::adapt
