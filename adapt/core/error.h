// The one error type of adapt/: bad user input to the stage-one and stage-two programs and their
// uses (plan, surprise). Torch-free, so every room and the viewer can include it cheaply.
#pragma once

#include <stdexcept>

namespace embody::adapt {

/// Bad user input to the stage-one and stage-two programs: the message says what was wrong and
/// what to do.
class AdaptError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace embody::adapt
