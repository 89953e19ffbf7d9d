#pragma once
// TRACEJIT_DUMP_DIR: each compilation's stages written as files, for reading outside the program.
#include <string>
#include <string_view>

#include "backend/compile.h"
#include "ir/ir.h"

namespace tracejit::detail {

/// True when TRACEJIT_DUMP_DIR is set (even to ""): compilations then keep every stage's text.
bool dumps_requested();

/// `name` as a file name that stays inside the dump directory: at most 100 characters of
/// [A-Za-z0-9_.-], no leading dot, no ".." and never empty; other characters become '_'.
std::string dump_file_name(std::string_view name);

/// Writes the stages of one compilation as DIR/NAME.SEQ.{traced.txt,optimized.txt,ll,opt.ll,s},
/// their pictures as NAME.SEQ.{traced,optimized}.dot and, when Graphviz's `dot` is on PATH, .svg
/// rendered from them; SEQ counts compilations in this process. Does nothing when TRACEJIT_DUMP_DIR
/// is unset or empty; a directory it cannot write gets one warning on stderr, never an error. NAME
/// is dump_file_name(name); the files are opened relative to DIR and never through a symlink.
void write_dumps(const std::string& name, const ir::Function& traced, const backend::Executable& exe);

}  // namespace tracejit::detail
