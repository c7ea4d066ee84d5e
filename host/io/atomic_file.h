// Whole-file I/O for checkpoints and other outputs that must never be seen half-written.
#pragma once
#include <string>
#include <string_view>

namespace bp {

// Replaces `path` with `bytes` so that a crash leaves either the old or the new contents:
// writes `path + ".tmp.<pid>"` in the same directory, fsyncs it, renames it over `path`,
// then fsyncs the directory so the rename itself is durable. On failure the temporary file
// is removed and bp::Error names `path` and the system's reason.
void write_file_atomic(const std::string& path, std::string_view bytes);

// Removes the temporary files (NAME.tmp.PID) that write_file_atomic calls killed mid-write left
// in `dir`; with `only_dead_writers`, only those whose PID no longer runs (for a directory that
// several processes may write at once). Returns how many it removed.
int remove_temporary_files(const std::string& dir, bool only_dead_writers);

// Renames `from` over `to` (same directory) and syncs the directory, so the rename survives a
// crash; throws bp::Error naming both and the system's reason.
void rename_file_durable(const std::string& from, const std::string& to);

// The whole contents of `path`; throws bp::Error naming `path` if it cannot be opened or read.
std::string read_file(const std::string& path);

}  // namespace bp
