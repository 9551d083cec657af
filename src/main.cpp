#include "cli/app.h"

int main(int argc, char** argv) { return aios::cli::run(argc, argv); }
