#include "adapt/core/program_options.h"

#include <CLI/CLI.hpp>
#include <sstream>

namespace embody::adapt {
namespace {

// A JSON value as the strings CLI11 parses: numbers as JSON writes them (integers exactly).
std::vector<std::string> Inputs(const std::string& key, const nlohmann::json& value) {
  if (value.is_boolean()) return {value.get<bool>() ? "true" : "false"};
  if (value.is_number()) return {value.dump()};
  if (value.is_string()) return {value.get<std::string>()};
  if (value.is_array()) {
    std::vector<std::string> out;
    for (const auto& item : value) {
      if (item.is_array() || item.is_object()) throw CLI::ConversionError("option \"" + key + "\" in --config: a list of plain values expected");
      const auto one = Inputs(key, item);
      out.insert(out.end(), one.begin(), one.end());
    }
    return out;
  }
  throw CLI::ConversionError("option \"" + key + "\" in --config: a number, string, true/false or list expected, not " + value.dump());
}

// A value of the stored options, typed where it reads as a number (so that the file reads as
// written): an integer only where it is exact (a larger one parses as a float and would round), a
// float as given (1e-3 is stored as 0.001, which reads back to the same double).
nlohmann::json Typed(const std::string& text) {
  if (text.empty()) return text;
  const auto parsed = nlohmann::json::parse(text, nullptr, false);
  if (!parsed.is_number()) return text;
  if (parsed.is_number_float() && text.find_first_of(".eE") == std::string::npos) return text;
  return parsed;
}

class JsonConfig : public CLI::Config {
 public:
  explicit JsonConfig(const CLI::App* app) : app_(app) {}

  std::string to_config(const CLI::App* app, bool default_also, bool, std::string) const override {
    nlohmann::json j;
    for (const CLI::Option* opt : app->get_options({})) {
      if (opt->get_lnames().empty() || !opt->get_configurable() || opt == app->get_config_ptr() || opt == app->get_help_ptr() ||
          opt == app->get_help_all_ptr())
        continue;
      const std::string name = opt->get_lnames()[0];
      if (opt->get_expected_max() == 0) {  // a flag: stored when given (one not given may mean "decide", as --prefetch's does)
        if (opt->count() > 0) j[name] = opt->as<bool>();
      } else if (opt->count() > 0) {
        const auto& results = opt->results();
        if (opt->get_expected_max() > 1) {
          j[name] = nlohmann::json::array();
          for (const auto& r : results) j[name].push_back(Typed(r));
        } else {
          j[name] = Typed(results.empty() ? "" : results.back());
        }
      } else if (default_also && !opt->get_default_str().empty()) {
        j[name] = Typed(opt->get_default_str());
      }
    }
    return j.dump(2);
  }

  std::vector<CLI::ConfigItem> from_config(std::istream& input) const override {
    auto j = nlohmann::json::parse(input, nullptr, false);
    if (j.is_discarded() || !j.is_object()) throw CLI::ConversionError("--config: the file must hold one JSON object of options");
    // An output that stores the options it was made with (metrics.json, a results JSON): its "options".
    if (!app_->get_option_no_throw("--options") && j.contains("options") && j["options"].is_object()) j = j["options"];
    std::vector<CLI::ConfigItem> items;
    for (const auto& [key, value] : j.items()) {
      const CLI::Option* opt = app_->get_option_no_throw("--" + key);
      if (!opt || opt == app_->get_config_ptr() || opt == app_->get_help_ptr()) {
        throw CLI::ConversionError("--config: unknown option \"" + key + "\" (the keys are the long option names without the dashes: see --help)");
      }
      if (!opt->get_configurable()) {
        throw CLI::ConversionError("--config: option \"" + key + "\" is an action, not a setting: give --" + key + " on the command line");
      }
      CLI::ConfigItem item;
      item.name = key;
      item.inputs = Inputs(key, value);
      items.push_back(item);
    }
    return items;
  }

 private:
  const CLI::App* app_;
};

}  // namespace

void AddConfigOption(CLI::App& app) {
  app.config_formatter(std::make_shared<JsonConfig>(&app));
  app.set_config("--config", "", "Options as a JSON object (keys: the long option names without dashes; the command line wins over the file)");
  app.allow_config_extras(CLI::config_extras_mode::error);
}

nlohmann::json ProgramOptions(const CLI::App& app) { return nlohmann::json::parse(app.config_to_str(true, false)); }

}  // namespace embody::adapt
