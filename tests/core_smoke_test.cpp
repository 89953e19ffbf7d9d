#include <gtest/gtest.h>
#include "tracejit/ops.h"
namespace tj = tracejit;
TEST(CoreSmoke, AddScalars) {
  tj::Array a = tj::array({1.f, 2.f, 3.f}, {3});
  EXPECT_EQ((a + 1).to_vector<float>(), (std::vector<float>{2, 3, 4}));
}
