// The `aios` command line: subcommands prepare, train, inspect, tokenize, sample, eval, export and
// report, built with CLI11.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <string>

namespace aios::cli {

// Parses argv and runs the chosen subcommand. Returns the process exit status: 0 on success,
// 2 for a usage error, 1 for any other error. Errors are printed as one line on stderr.
int run(int argc, char** argv);

// What a subcommand does once the whole command line (and any --config file) parsed cleanly.
using CommandAction = std::function<int()>;  // returns the process's exit status

// Each subcommand binds its options (one flag per option struct field) and returns its action.
CommandAction add_prepare_command(CLI::App& app);
CommandAction add_train_command(CLI::App& app);
CommandAction add_inspect_command(CLI::App& app);
CommandAction add_tokenize_command(CLI::App& app);
CommandAction add_sample_command(CLI::App& app);  // sample, eval and export: cli/model_commands.cpp
CommandAction add_eval_command(CLI::App& app);
CommandAction add_export_command(CLI::App& app);
CommandAction add_report_command(CLI::App& app);
CommandAction add_plan_command(CLI::App& app);

// Lets a subcommand read its options from a TOML file (--config FILE). After parsing,
// apply_config_file sets every option the command line did not give from the file (validators
// included) and refuses unknown keys.
void enable_config_file(CLI::App& command);
void apply_config_file(CLI::App& command);

std::string version_report();

}  // namespace aios::cli
