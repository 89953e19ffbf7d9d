#pragma once
// Strict dtype promotion for the lifetime of a scope (tests of the mixed-dtype TypeErrors).
#include "tracejit/dtype.h"

struct StrictPromotion {
  StrictPromotion() { tracejit::set_dtype_promotion(tracejit::DTypePromotion::strict); }
  ~StrictPromotion() { tracejit::set_dtype_promotion(tracejit::DTypePromotion::standard); }
  StrictPromotion(const StrictPromotion&) = delete;
  StrictPromotion& operator=(const StrictPromotion&) = delete;
};
