#pragma once
// TRACEJIT_DUMP_DIR: each compilation's stages written as files, for reading outside the program.
#include <string>

#include "backend/compile.h"
#include "ir/ir.h"

namespace tracejit::detail {

/// True when TRACEJIT_DUMP_DIR is set (even to ""): compilations then keep every stage's text.
bool dumps_requested();

/// Writes the stages of one compilation as DIR/NAME.SEQ.{traced.txt,optimized.txt,ll,opt.ll,s},
/// SEQ counting compilations in this process. Does nothing when TRACEJIT_DUMP_DIR is unset or
/// empty; a directory it cannot write gets one warning on stderr, never an error.
void write_dumps(const std::string& name, const ir::Function& traced, const backend::Executable& exe);

}  // namespace tracejit::detail
