#pragma once
// Shrinking a failing program to a small reproducer.
#include <functional>

#include "program.h"

namespace difftest {

/// Deletes equations of `p` while `fails` still holds of the result: an equation is replaced
/// by one of its operands of the same type, or by a new input holding the value it computed
/// (so the values downstream stay the same); outputs are dropped; dead nodes are removed.
/// Inside control flow, at any depth: a body's node is replaced by one of its operands, and a
/// result nothing reads is dropped (a cond output, a scan's ys, a loop carry with its init).
/// Every candidate is rechecked with the program rules first. Returns the smallest failing
/// program found.
Program shrink(const Program& p, const std::function<bool(const Program&)>& fails);

}  // namespace difftest
