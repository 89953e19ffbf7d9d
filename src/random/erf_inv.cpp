// erf_inv as XLA computes it. Each branch's polynomial is evaluated over the whole array and
// the branch is chosen with tj::where: the arithmetic per element is the same as XLA's
// select-per-coefficient form, and the code stays traceable.
#include "random/erf_inv.h"

#include <array>
#include <limits>
#include <string>

#include "base/errors.h"
#include "tracejit/ops.h"

namespace tracejit::detail {
namespace {

// f32, highest power first: w < 5 uses w - 2.5, otherwise sqrt(w) - 3.
constexpr std::array<float, 9> kF32Below5 = {2.81022636e-08f,  3.43273939e-07f, -3.5233877e-06f,
                                             -4.39150654e-06f, 0.00021858087f,  -0.00125372503f,
                                             -0.00417768164f,  0.246640727f,    1.50140941f};
constexpr std::array<float, 9> kF32Above5 = {-0.000200214257f, 0.000100950558f, 0.00134934322f,
                                             -0.00367342844f,  0.00573950773f,  -0.0076224613f,
                                             0.00943887047f,   1.00167406f,     2.83297682f};

// f64: w < 6.25 uses w - 3.125; w < 16 uses sqrt(w) - 3.25; otherwise sqrt(w) - 5.
constexpr std::array<double, 23> kF64Below6_25 = {
    -3.6444120640178196996e-21, -1.685059138182016589e-19,  1.2858480715256400167e-18,
    1.115787767802518096e-17,   -1.333171662854620906e-16,  2.0972767875968561637e-17,
    6.6376381343583238325e-15,  -4.0545662729752068639e-14, -8.1519341976054721522e-14,
    2.6335093153082322977e-12,  -1.2975133253453532498e-11, -5.4154120542946279317e-11,
    1.051212273321532285e-09,   -4.1126339803469836976e-09, -2.9070369957882005086e-08,
    4.2347877827932403518e-07,  -1.3654692000834678645e-06, -1.3882523362786468719e-05,
    0.0001867342080340571352,   -0.00074070253416626697512, -0.0060336708714301490533,
    0.24015818242558961693,     1.6536545626831027356};
constexpr std::array<double, 19> kF64Below16 = {
    2.2137376921775787049e-09, 9.0756561938885390979e-08, -2.7517406297064545428e-07,
    1.8239629214389227755e-08, 1.5027403968909827627e-06, -4.013867526981545969e-06,
    2.9234449089955446044e-06, 1.2475304481671778723e-05, -4.7318229009055733981e-05,
    6.8284851459573175448e-05, 2.4031110387097893999e-05, -0.0003550375203628474796,
    0.00095328937973738049703, -0.0016882755560235047313, 0.0024914420961078508066,
    -0.0037512085075692412107, 0.005370914553590063617,   1.0052589676941592334,
    3.0838856104922207635};
constexpr std::array<double, 17> kF64Above16 = {
    -2.7109920616438573243e-11, -2.5556418169965252055e-10, 1.5076572693500548083e-09,
    -3.7894654401267369937e-09, 7.6157012080783393804e-09,  -1.4960026627149240478e-08,
    2.9147953450901080826e-08,  -6.7711997758452339498e-08, 2.2900482228026654717e-07,
    -9.9298272942317002539e-07, 4.5260625972231537039e-06,  -1.9681778105531670567e-05,
    7.5995277030017761139e-05,  -0.00021503011930044477347, -0.00013871931833623122026,
    1.0103004648645343977,      4.8499064014085844221};

// A constant of w's dtype (the coefficients are exact in it).
Array c(const Array& like, double v) { return Array::scalar(like.dtype(), v, /*weak=*/true); }

// Horner's rule as XLA unrolls it: p = c[0]; p = c[i] + p * w.
template <class T, size_t N>
Array horner(const std::array<T, N>& coeffs, const Array& w) {
  Array p = c(w, coeffs[0]);
  for (size_t i = 1; i < N; ++i) p = c(w, coeffs[i]) + p * w;
  return p;
}

}  // namespace

Array erf_inv(const Array& x) {
  TJ_CHECK(x.dtype() == DType::f32 || x.dtype() == DType::f64, "erf_inv of ",
           std::string(dtype_name(x.dtype())));
  const Array w = -log1p(x * -x);  // -log(1 - x^2), accurate near 0
  Array p;
  if (x.dtype() == DType::f32) {
    p = where(w < c(w, 5), horner(kF32Below5, w - c(w, 2.5)),
              horner(kF32Above5, sqrt(w) - c(w, 3)));
  } else {
    const Array s = sqrt(w);
    p = where(
        w < c(w, 6.25), horner(kF64Below6_25, w - c(w, 3.125)),
        where(w < c(w, 16), horner(kF64Below16, s - c(w, 3.25)), horner(kF64Above16, s - c(w, 5))));
  }
  // At |x| == 1 the polynomials are indeterminate; the limit is +-inf.
  return where(abs(x) == c(x, 1), x * c(x, std::numeric_limits<double>::infinity()), p * x);
}

}  // namespace tracejit::detail
