// tracejit-fuzz: libFuzzer drives the difftest generator from its input bytes (ByteRng), runs
// every check, and aborts on a disagreement, so that libFuzzer keeps the input; crashes and
// hangs inside tracejit are caught by libFuzzer itself. Built with -DTRACEJIT_FUZZ=ON (clang).
#include <cstdint>
#include <cstdlib>
#include <iostream>

#include "checks.h"
#include "generator.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  difftest::ByteRng rng({data, size});
  difftest::Program p = difftest::generate(rng, difftest::GenOptions{}, /*id=*/size);
  difftest::CheckStats stats;
  if (std::optional<difftest::Mismatch> m =
          difftest::check_program(p, difftest::CheckOptions{}, stats)) {
    std::cerr << "MISMATCH (check " << m->check << "): " << m->detail << "\n" << p.listing();
    std::abort();
  }
  return 0;
}
