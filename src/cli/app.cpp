#include "cli/app.h"

#include <iostream>
#include <map>

#include "base/error.h"

namespace aios::cli {

void enable_config_file(CLI::App& command) {
  command.set_config("--config", "", "Read options from a TOML file (keys are the long option names; the command line wins)");
  command.allow_config_extras(CLI::config_extras_mode::error);
}

namespace {

// CLI11 2.1 silently drops unknown keys of a subcommand's config file, whatever
// allow_config_extras says; check every key against the subcommand's options ourselves.
void check_config_keys(const CLI::App& command) {
  const CLI::Option* config = command.get_config_ptr();
  if (config == nullptr || config->count() == 0) return;
  const std::string path = config->as<std::string>();
  for (const auto& item : CLI::ConfigTOML().from_file(path)) {
    const std::string key = item.fullname();
    if (item.name.empty() || item.name == "++" || item.name == "--") continue;  // section markers
    if (!item.parents.empty() || command.get_option_no_throw("--" + item.name) == nullptr) {
      throw Error(path, "unknown key '" + key + "'",
                  "long option names of `aios " + command.get_name() + "` (see --help)");
    }
  }
}

}  // namespace

int run(int argc, char** argv) {
  CLI::App app{"aios: trains decoder-only transformer language models (GPT-2 family) from text", "aios"};
  app.require_subcommand(1);
  // CLI11 hands a subcommand's unmatched config keys to its parent: refuse them there too.
  app.allow_config_extras(CLI::config_extras_mode::error);
  app.set_version_flag("--version", [] { return version_report(); }, "Print versions of aios and its libraries");
  const std::map<std::string, CommandAction> actions = {{"prepare", add_prepare_command(app)},
                                                        {"train", add_train_command(app)},
                                                        {"inspect", add_inspect_command(app)}};

  try {
    // Parse everything first: CLI11 checks unknown config keys only after subcommand callbacks.
    app.parse(argc, argv);
    const CLI::App* command = app.get_subcommands().front();
    check_config_keys(*command);
    actions.at(command->get_name())();
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help, --version
    std::string message = e.what();
    for (auto& c : message) {
      if (c == '\n') c = ' ';
    }
    const auto* command = app.get_subcommands().empty() ? &app : app.get_subcommands().front();
    std::cerr << "aios: error: " << message << " (see `" << command->get_display_name(true) << " --help`)\n";
    return 2;
  } catch (const Error& e) {
    std::cerr << "aios: error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}

}  // namespace aios::cli
