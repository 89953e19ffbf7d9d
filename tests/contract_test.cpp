// dot, tensordot and einsum (src/frontend/contract.cpp): hand-computed products, promotion,
// derivatives against f64 finite differences, the matmuls einsum contracts into, and the
// errors that name the bad subscript.
#include <gtest/gtest.h>

#include <vector>

#include "throw_message.h"
#include "tracejit/tracejit.h"

namespace tj = tracejit;
using tj::Array;
using tj::DType;

namespace {

const Array kA = tj::array({1.f, 2.f, 3.f, 4.f, 5.f, 6.f}, {2, 3});   // [[1 2 3] [4 5 6]]
const Array kB = tj::array({1.f, 0.f, 2.f, 1.f, 0.f, 3.f}, {3, 2});   // [[1 0] [2 1] [0 3]]
const std::vector<float> kAB = {5, 11, 14, 23};                         // kA @ kB by hand

std::vector<float> floats(const Array& a) { return a.to_vector<float>(); }

TEST(Contract, Dot) {
  EXPECT_EQ(tj::dot(tj::array({1.f, 2.f}), tj::array({3.f, 4.f})).item<float>(), 11.f);
  EXPECT_EQ(floats(tj::dot(kA, kB)), kAB);
  EXPECT_EQ(floats(tj::dot(Array(2.f), tj::array({1.f, 2.f}))), (std::vector<float>{2, 4}));
  // N-d: sum over a's last axis and b's second to last: [1,2,3] . [3,2] -> [1,2,2].
  Array r = tj::dot(tj::reshape(kA, {1, 2, 3}), kB);
  EXPECT_EQ(r.shape(), (tj::Shape{1, 2, 2}));
  EXPECT_EQ(floats(r), kAB);
  EXPECT_EQ(tj::dot(tj::array({1, 2}), tj::array({0.5f, 0.25f})).dtype(), DType::f32);
}

TEST(Contract, Tensordot) {
  EXPECT_EQ(floats(tj::tensordot(kA, kB, 1)), kAB);
  EXPECT_EQ(tj::tensordot(kA, kA, 2).item<float>(), 91.f);  // sum of squares 1..6
  // a's axis 0 with b's axis 1: A^T B^T, [3,3]; element (0,0) = 1*1 + 4*0 = 1.
  Array t = tj::tensordot(kA, kB, {{0}, {1}});
  EXPECT_EQ(t.shape(), (tj::Shape{3, 3}));
  EXPECT_EQ(floats(t), (std::vector<float>{1, 6, 12, 2, 9, 15, 3, 12, 18}));
  EXPECT_THROW(tj::tensordot(kA, kA, {{0}, {0, 1}}), tj::ShapeError);
  tj::check_grads([](const Array& a, const Array& b) { return tj::tensordot(a, b, {{1}, {0}}); },
                  std::tuple{tj::astype(kA, DType::f64), tj::astype(kB, DType::f64)});
}

TEST(Contract, EinsumExplicitImplicitAndSeveralOperands) {
  auto mm = [](const Array& a, const Array& b) { return tj::einsum("ij,jk->ik", a, b); };
  EXPECT_EQ(floats(mm(kA, kB)), kAB);
  EXPECT_EQ(floats(tj::jit(mm)(kA, kB)), kAB);
  const std::string ir = tj::make_ir(mm)(kA, kB).str();
  EXPECT_NE(ir.find("matmul"), std::string::npos) << ir;
  EXPECT_EQ(floats(tj::einsum("ij,jk", kA, kB)), kAB);                 // implicit: output ik
  EXPECT_EQ(floats(tj::einsum("ij->ji", kA)), (std::vector<float>{1, 4, 2, 5, 3, 6}));
  EXPECT_EQ(tj::einsum("ij->", kA).item<float>(), 21.f);
  EXPECT_EQ(floats(tj::einsum("ij->j", kA)), (std::vector<float>{5, 7, 9}));
  EXPECT_EQ(tj::einsum("ii", tj::reshape(tj::arange(9), {3, 3})).item<int32_t>(), 12);  // trace 0+4+8
  EXPECT_EQ(floats(tj::einsum("i,i->i", tj::array({1.f, 2.f}), tj::array({3.f, 4.f}))), (std::vector<float>{3, 8}));
  // Three operands: (A B) C with C = [[1], [1]]: row sums of A B.
  const Array c = tj::ones({2, 1});
  EXPECT_EQ(floats(tj::einsum("ij,jk,kl->il", kA, kB, c)), (std::vector<float>{16, 37}));
  // Batched: bij,bjk->bik with b = 2 copies.
  const Array a2 = tj::stack({kA, kA}), b2 = tj::stack({kB, kB});
  Array bmm = tj::einsum("bij,bjk->bik", a2, b2);
  EXPECT_EQ(bmm.shape(), (tj::Shape{2, 2, 2}));
  EXPECT_EQ(floats(bmm), (std::vector<float>{5, 11, 14, 23, 5, 11, 14, 23}));
  tj::check_grads([](const Array& a, const Array& b) { return tj::einsum("bij,bjk->bik", a, b); },
                  std::tuple{tj::astype(a2, DType::f64), tj::astype(b2, DType::f64)});
  tj::check_grads([](const Array& a, const Array& b) { return tj::einsum("ij,jk->", a, b); },
                  std::tuple{tj::astype(kA, DType::f64), tj::astype(kB, DType::f64)});
}

TEST(Contract, EinsumErrorsNameTheSubscript) {
  auto has = [](const std::string& msg, const char* part) { return msg.find(part) != std::string::npos; };
  std::string m1 = ThrowMessage<tj::ShapeError>([] { tj::einsum("ij,jk->iz", kA, kB); });
  EXPECT_TRUE(has(m1, "'z'") && has(m1, "[einsum]")) << m1;
  std::string m2 = ThrowMessage<tj::ShapeError>([] { tj::einsum("ij,ik->jk", kA, kB); });
  EXPECT_TRUE(has(m2, "'i'") && has(m2, "size 2") && has(m2, "size 3")) << m2;
  std::string m3 = ThrowMessage<tj::ShapeError>([] { tj::einsum("i3,jk", kA, kB); });
  EXPECT_TRUE(has(m3, "'3'")) << m3;
  std::string m4 = ThrowMessage<tj::ShapeError>([] { tj::einsum("ijk,jk", kA, kB); });
  EXPECT_TRUE(has(m4, "'ijk'")) << m4;
  std::string m5 = ThrowMessage<tj::ShapeError>([] { tj::einsum("ij", kA, kB); });
  EXPECT_TRUE(has(m5, "1 operand subscripts for 2 operands")) << m5;
}

}  // namespace
