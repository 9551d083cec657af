#include "cli/app.h"

#include <mpi.h>

#include <iostream>
#include <map>

#include "base/error.h"
#include "distributed/comm.h"

namespace aios::cli {

void enable_config_file(CLI::App& command) {
  command
      .add_option("--config", "Read options from a TOML file (keys are the long option names; the command line wins)")
      ->check(CLI::ExistingFile);
}

// CLI11's own config handling differs between 2.1 (which ignores a subcommand's config file, and
// its unknown keys) and 2.4; applying the file here behaves the same with both.
void apply_config_file(CLI::App& command) {
  const CLI::Option* config = command.get_option_no_throw("--config");
  if (config == nullptr || config->count() == 0) return;
  const std::string path = config->as<std::string>();
  std::vector<CLI::ConfigItem> items;
  try {
    items = CLI::ConfigTOML().from_file(path);
  } catch (const CLI::Error& e) {
    throw Error(path, std::string("is not a valid TOML config: ") + e.what());
  }
  for (const auto& item : items) {
    if (item.name.empty() || item.name == "++" || item.name == "--") continue;  // section markers
    CLI::Option* option = item.parents.empty() ? command.get_option_no_throw("--" + item.name) : nullptr;
    if (option == nullptr || item.name == "config") {
      throw Error(path, "unknown key '" + item.fullname() + "'",
                  "long option names of `aios " + command.get_name() + "` (see --help)");
    }
    if (option->count() > 0) continue;  // given on the command line
    option->add_result(item.inputs);
    option->run_callback();
  }
}

// Under mpirun a rank that stops must take the whole job down: its peers may be waiting for it in
// a collective, and a plain exit (MPI_Finalize) could wait for them in turn. Nothing here may be a
// collective itself (the peers are elsewhere): rank and size are asked of MPI directly.
int fail(const std::string& message) {
  int initialized = 0;
  if (launched_by_mpi()) MPI_Initialized(&initialized);
  if (initialized) {
    int rank = 0, world = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &world);
    std::cerr << "aios: rank " << rank << " of " << world << ": " << message << std::endl;
    if (world > 1) MPI_Abort(MPI_COMM_WORLD, 1);
    return 1;
  }
  std::cerr << "aios: " << message << "\n";
  return 1;
}

// CLI11's help, less the "{false}" it prints after a negatable flag's names (the flag's help says
// its default instead).
class HelpFormatter : public CLI::Formatter {
 public:
  std::string make_option_name(const CLI::Option* option, bool positional) const override {
    std::string name = CLI::Formatter::make_option_name(option, positional);
    for (auto open = name.find('{'); open != std::string::npos; open = name.find('{')) {
      const auto close = name.find('}', open);
      if (close == std::string::npos) break;
      name.erase(open, close - open + 1);
    }
    return name;
  }
};

int run(int argc, char** argv) {
  CLI::App app{"aios: trains decoder-only transformer language models (GPT-2 family) from text", "aios"};
  app.formatter(std::make_shared<HelpFormatter>());
  app.require_subcommand(1);
  app.set_version_flag(
      "--version", [] { return version_report(); }, "Print versions of aios and its libraries");
  const std::map<std::string, CommandAction> actions = {
      {"prepare", add_prepare_command(app)}, {"train", add_train_command(app)}, {"inspect", add_inspect_command(app)}};

  try {
    // Parse everything first: CLI11 checks unknown config keys only after subcommand callbacks.
    app.parse(argc, argv);
    CLI::App* command = app.get_subcommands().front();
    apply_config_file(*command);
    return actions.at(command->get_name())();
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
    return fail(std::string("error: ") + e.what());
  } catch (const std::exception& e) {
    return fail(std::string("internal error: ") + e.what());
  }
  return 0;
}

}  // namespace aios::cli
