// Small text files that sit beside image data (class-name lists, annotation tables).
#pragma once
#include <string>
#include <vector>

namespace bp {

// The lines of `path` without their "\n" or "\r\n" endings; a missing final newline is fine.
// Throws bp::Error naming `path` when it cannot be read.
std::vector<std::string> read_text_lines(const std::string& path);

// `line` without leading and trailing spaces and tabs.
std::string trim_blanks(const std::string& line);

// `line` cut at every tab (an empty line gives one empty field).
std::vector<std::string> split_tabs(const std::string& line);

}  // namespace bp
