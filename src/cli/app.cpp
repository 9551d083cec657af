#include "cli/app.h"

#include <mpi.h>

#include <cctype>
#include <cstdlib>
#include <iostream>
#include <map>
#include <sstream>

#include "base/error.h"
#include "base/files.h"
#include "distributed/comm.h"

namespace aios::cli {

void enable_config_file(CLI::App& command) {
  command
      .add_option("--config", "Read options from a TOML file (keys are the long option names; the command line wins)")
      ->check(CLI::ExistingFile);
}

namespace {

std::string trimmed(const std::string& text) {
  const auto first = text.find_first_not_of(" \t\r");
  if (first == std::string::npos) return "";
  return text.substr(first, text.find_last_not_of(" \t\r") - first + 1);
}

// The text before a '#' that is not inside quotes.
std::string without_comment(const std::string& line) {
  char quote = 0;
  for (std::size_t i = 0; i < line.size(); ++i) {
    if (quote != 0) {
      if (line[i] == quote) quote = 0;
    } else if (line[i] == '"' || line[i] == '\'') {
      quote = line[i];
    } else if (line[i] == '#') {
      return line.substr(0, i);
    }
  }
  return line;
}

bool is_toml_number(std::string value) {
  if (!value.empty() && (value[0] == '+' || value[0] == '-')) value = value.substr(1);
  if (value == "inf" || value == "nan") return true;
  if (value.empty() || !(std::isdigit(static_cast<unsigned char>(value[0])) || value[0] == '.')) return false;
  char* end = nullptr;
  std::strtod(value.c_str(), &end);
  return end != nullptr && *end == '\0';
}

// The subset of TOML a config file uses, one `key = value` per line (value: a number, true or
// false, a quoted string or a one-line array), comments and [sections], checked line by line so
// that a mistake is reported with its file and line: CLI11's reader would turn some of them into
// an unrelated error about an option's count, or silently drop them.
void check_config_lines(const std::string& path) {
  std::istringstream lines(read_text_file(path));
  std::string raw;
  for (int number = 1; std::getline(lines, raw); ++number) {
    const std::string line = trimmed(without_comment(raw));
    const std::string where = path + ":" + std::to_string(number);
    if (line.empty()) continue;
    if (line.front() == '[') {
      if (line.back() != ']') throw Error(where, "section header '" + line + "' has no closing ']'", "[name]");
      continue;
    }
    const auto equals = line.find('=');
    if (equals == std::string::npos) {
      throw Error(where, "'" + line + "' is not a key = value line", "key = value, e.g. batch-size = 8");
    }
    const std::string key = trimmed(line.substr(0, equals)), value = trimmed(line.substr(equals + 1));
    if (key.empty() || key.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.") !=
                           std::string::npos) {
      throw Error(where, "'" + key + "' is not an option name", "a long option name without the dashes");
    }
    if (value.empty()) throw Error(where, "key '" + key + "' has no value", key + " = VALUE");
    const char first = value.front();
    const bool quoted = (first == '"' || first == '\'') && value.size() >= 2 && value.back() == first;
    if ((first == '"' || first == '\'') && !quoted) {
      throw Error(where, "the string value of '" + key + "' is not closed", std::string(1, first) + "...");
    }
    if (first == '[' && value.back() != ']') {
      throw Error(where, "the array value of '" + key + "' has no closing ']' on its line", "[a, b] on one line");
    }
    if (!quoted && first != '[' && value != "true" && value != "false" && !is_toml_number(value)) {
      throw Error(where, "value '" + value + "' of '" + key + "' is not a number, true, false or a quoted string",
                  key + " = \"" + value + "\" if it is text");
    }
  }
}

}  // namespace

// CLI11's own config handling differs between 2.1 (which ignores a subcommand's config file, and
// its unknown keys) and 2.4; applying the file here behaves the same with both.
void apply_config_file(CLI::App& command) {
  const CLI::Option* config = command.get_option_no_throw("--config");
  if (config == nullptr || config->count() == 0) return;
  const std::string path = config->as<std::string>();
  check_config_lines(path);
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
      {"prepare", add_prepare_command(app)}, {"train", add_train_command(app)},
      {"inspect", add_inspect_command(app)}, {"tokenize", add_tokenize_command(app)},
      {"sample", add_sample_command(app)},   {"eval", add_eval_command(app)},
      {"export", add_export_command(app)},   {"report", add_report_command(app)},
      {"plan", add_plan_command(app)}};

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
