// Shape and dtype rules: the output types of each primitive, and the user-facing errors when its
// operands do not fit. The public ops check what they can phrase better first (broadcasting,
// weak-type promotion); everything else is caught here, once, for eager, traced and verified IR.
#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/debug_format.h"
#include "base/errors.h"
#include "ir/ir.h"

namespace tracejit::ir {
namespace {

using detail::raise;

std::string operands_str(std::span<const Type> in) {
  return absl::StrJoin(in, ", ", [](std::string* out, const Type& t) {
    absl::StrAppend(out, type_str(t));
  });
}

bool all_weak(std::span<const Type> in) {
  return std::all_of(in.begin(), in.end(), [](const Type& t) { return t.weak; });
}

// Which dtypes an elementwise primitive accepts; the fix suggested when it does not.
void check_dtype(Prim p, std::span<const Type> in) {
  DType d = in.empty() ? DType::f32 : in.back().dtype;
  bool ok = true;
  const char* fix = "";
  switch (p) {
    case Prim::kExp: case Prim::kLog: case Prim::kLog1p: case Prim::kSin: case Prim::kCos:
    case Prim::kTanh: case Prim::kSqrt:
      ok = is_float(d);
      fix = "convert with tj::astype(x, tj::DType::f32)";
      break;
    case Prim::kPow:
      ok = d != DType::bool_;
      fix = "convert with tj::astype(x, tj::DType::i32) or a float dtype";
      break;
    case Prim::kNeg: case Prim::kAbs: case Prim::kSign: case Prim::kAdd: case Prim::kMul:
    case Prim::kDiv: case Prim::kReduceSum: case Prim::kMatmul:
      ok = d != DType::bool_;
      fix = "convert with tj::astype first; use | and ^ for logic on bools";
      break;
    case Prim::kAnd: case Prim::kOr: case Prim::kXor:
      ok = !is_float(d);
      fix = "bitwise operations take bool, i32 or u32";
      break;
    case Prim::kShl: case Prim::kShr:
      ok = is_integer(d);
      fix = "shifts take i32 or u32";
      break;
    case Prim::kAllSum:
      ok = d != DType::bool_;
      fix = "sum counts instead: tj::astype(x, tj::DType::i32)";
      break;
    case Prim::kDebugPrint:
    case Prim::kStopGradient: case Prim::kConvert: case Prim::kBitcast: case Prim::kMax:
    case Prim::kMin: case Prim::kEq: case Prim::kNe: case Prim::kLt: case Prim::kLe:
    case Prim::kGt: case Prim::kGe: case Prim::kSelect: case Prim::kReduceMax:
    case Prim::kBroadcast: case Prim::kReshape: case Prim::kTranspose: case Prim::kSlice:
    case Prim::kConcatenate: case Prim::kIota: case Prim::kCall: case Prim::kCond:
    case Prim::kWhile: case Prim::kScan: case Prim::kCustomVjp:
      break;
  }
  if (!ok)
    raise<TypeError>(prim_name(p), "does not accept dtype ", dtype_name(d), " (operands ",
                     operands_str(in), "); ", fix);
}

void check_same_types(Prim p, std::span<const Type> in, size_t first) {
  for (size_t i = first + 1; i < in.size(); ++i) {
    if (in[i].dtype != in[first].dtype)
      raise<TypeError>(prim_name(p), "operands have different dtypes: ", operands_str(in),
                       "; convert one with tj::astype");
    if (in[i].shape != in[first].shape)
      raise<ShapeError>(prim_name(p), "operands have different shapes: ", operands_str(in),
                        "; broadcast them first");
  }
}

// Normalised, distinct, in-range axes of operand `x`. The messages name the operand's type and
// the valid range, as every user error must (API.md, "Errors").
void check_axes(Prim p, const std::vector<int64_t>& axes, const Type& x, const char* what) {
  const int64_t rank = x.rank();
  std::vector<bool> seen(static_cast<size_t>(rank), false);
  for (int64_t a : axes) {
    if (a < 0 || a >= rank)
      raise<IndexError>(prim_name(p), what, " ", a, " is out of range for ", type_str(x),
                        "; axes of a rank-", rank, " array run from ", -rank, " to ", rank - 1);
    if (seen[static_cast<size_t>(a)])
      raise<IndexError>(prim_name(p), what, " ", a, " appears twice in (",
                        absl::StrJoin(axes, ", "), ") for ", type_str(x),
                        "; list each axis at most once");
    seen[static_cast<size_t>(a)] = true;
  }
}

void check_dims(Prim p, const Shape& shape) { detail::check_shape(prim_name(p), shape); }

Type reduce_type(Prim p, const Type& x, const Params& params) {
  check_axes(p, params.axes, x, "axis");
  Type out{x.dtype, {}, x.weak};
  for (int64_t i = 0; i < x.rank(); ++i)
    if (std::find(params.axes.begin(), params.axes.end(), i) == params.axes.end())
      out.shape.push_back(x.shape[static_cast<size_t>(i)]);
  return out;
}

Type broadcast_type(Prim p, const Type& x, const Params& params) {
  check_dims(p, params.shape);
  const auto& dims = params.axes;
  if (static_cast<int64_t>(dims.size()) != x.rank())
    raise<ShapeError>(prim_name(p), "operand ", type_str(x), " needs ", x.rank(),
                      " broadcast dimensions, got ", dims.size());
  int64_t out_rank = static_cast<int64_t>(params.shape.size());
  for (size_t i = 0; i < dims.size(); ++i) {
    if (dims[i] < 0 || dims[i] >= out_rank || (i > 0 && dims[i] <= dims[i - 1]))
      raise<ShapeError>(prim_name(p), "broadcast dimensions (", absl::StrJoin(dims, ", "),
                        ") must be increasing and below the result rank ", out_rank);
    int64_t in_d = x.shape[i], out_d = params.shape[static_cast<size_t>(dims[i])];
    if (in_d != 1 && in_d != out_d)
      raise<ShapeError>(prim_name(p), "cannot broadcast ", type_str(x), " to ",
                        shape_str(params.shape), ": dimension ", i, " has size ", in_d,
                        ", which is neither 1 nor ", out_d);
  }
  return Type{x.dtype, params.shape, x.weak};
}

Type slice_type(Prim p, const Type& x, const Params& params) {
  const auto& st = params.axes;
  const auto& lim = params.limits;
  if (static_cast<int64_t>(st.size()) != x.rank() || static_cast<int64_t>(lim.size()) != x.rank())
    raise<ShapeError>(prim_name(p), "operand ", type_str(x), " needs ", x.rank(),
                      " start and limit indices");
  Type out{x.dtype, {}, x.weak};
  for (size_t i = 0; i < st.size(); ++i) {
    if (st[i] < 0 || lim[i] < st[i] || lim[i] > x.shape[i])  // the hint gives the valid range
      raise<IndexError>(prim_name(p), "slice [", st[i], ", ", lim[i], ") of dimension ", i,
                        " is out of range for ", type_str(x), "; it needs 0 <= start <= limit <= ",
                        x.shape[i]);
    out.shape.push_back(lim[i] - st[i]);
  }
  return out;
}

Type concatenate_type(Prim p, std::span<const Type> in, const Params& params) {
  if (in.empty()) raise<ShapeError>(prim_name(p), "needs at least one operand");
  const Type& first = in[0];
  if (params.axis < 0 || params.axis >= first.rank())  // the hint gives the valid axes
    raise<IndexError>(prim_name(p), "axis ", params.axis, " is out of range for operands ",
                      operands_str(in), "; axes of rank-", first.rank(), " operands run from ",
                      -first.rank(), " to ", first.rank() - 1);
  Type out = first;
  out.shape[static_cast<size_t>(params.axis)] = 0;
  for (const Type& t : in) {
    if (t.dtype != first.dtype)
      raise<TypeError>(prim_name(p), "operands have different dtypes: ", operands_str(in));
    bool same = t.rank() == first.rank();
    for (int64_t i = 0; same && i < t.rank(); ++i)
      same = i == params.axis || t.shape[static_cast<size_t>(i)] == first.shape[static_cast<size_t>(i)];
    if (!same)
      raise<ShapeError>(prim_name(p), "operands ", operands_str(in),
                        " must have equal shapes except along axis ", params.axis);
    out.shape[static_cast<size_t>(params.axis)] += t.shape[static_cast<size_t>(params.axis)];
    out.weak = out.weak && t.weak;
  }
  return out;
}

Type matmul_type(Prim p, const Type& a, const Type& b) {
  if (a.dtype != b.dtype)
    raise<TypeError>(prim_name(p), "operands have different dtypes: ", type_str(a), ", ",
                     type_str(b), "; convert one with tj::astype");
  // [..., m, k] x [..., k, n] with equal leading (batch) dimensions; tj::matmul broadcasts them.
  const int64_t r = a.rank();
  const bool batch_ok = r >= 2 && b.rank() == r &&
                        std::equal(a.shape.begin(), a.shape.end() - 2, b.shape.begin());
  if (!batch_ok || a.shape[static_cast<size_t>(r - 1)] != b.shape[static_cast<size_t>(r - 2)])
    raise<ShapeError>(prim_name(p), "cannot multiply ", type_str(a), " by ", type_str(b),
                      ": needs [..., m, k] x [..., k, n] with equal batch dimensions");
  Shape out(a.shape.begin(), a.shape.end() - 1);
  out.push_back(b.shape.back());
  return Type{a.dtype, out, a.weak && b.weak};
}

// Region signatures. The public control-flow functions check types first and name the leaf
// paths; these rules re-check what the IR must satisfy, for the verifier and for replays.
bool same_value(const Type& a, const Type& b) { return a.dtype == b.dtype && a.shape == b.shape; }

void check_region_inputs(Prim p, const Function& f, std::string_view which,
                         std::span<const Type> in) {
  bool ok = f.inputs.size() == in.size();
  for (size_t i = 0; ok && i < in.size(); ++i) ok = same_value(f.type(f.inputs[i]), in[i]);
  if (!ok) {
    std::vector<Type> want;
    for (VarId v : f.inputs) want.push_back(f.type(v));
    raise<TypeError>(prim_name(p), which, " takes (", operands_str(want), ") but is given (",
                     operands_str(in), ")");
  }
}

std::vector<Type> region_outputs(const Function& f) {
  std::vector<Type> out;
  for (VarId v : f.outputs) out.push_back(f.type(v));
  return out;
}

void check_carry(Prim p, std::span<const Type> carry, std::span<const Type> out) {
  bool ok = out.size() >= carry.size();
  for (size_t i = 0; ok && i < carry.size(); ++i) ok = same_value(carry[i], out[i]);
  if (!ok)
    raise<TypeError>(prim_name(p), "body returns (", operands_str(out), ") for the carry (",
                     operands_str(carry), ")");
}

std::vector<Type> concat_types(std::span<const Type> a, std::span<const Type> b) {
  std::vector<Type> out(a.begin(), a.end());
  out.insert(out.end(), b.begin(), b.end());
  return out;
}

Type stacked(const Type& t, int64_t length) {
  Type s = t;
  s.shape.insert(s.shape.begin(), length);
  s.weak = false;
  return s;
}

// Checks that params hold `regions` sub-programs and `groups` operand groups that fit `in`.
void check_layout(Prim p, std::span<const Type> in, const Params& params, size_t regions,
                  size_t groups) {
  if (params.regions.size() != regions || params.groups.size() != groups)
    raise<Error>(prim_name(p), "needs ", regions, " regions and ", groups, " operand groups");
  int64_t sum = 0;
  for (int64_t g : params.groups) sum += g;
  if (sum < 0 || static_cast<size_t>(sum) > in.size())
    raise<Error>(prim_name(p), "operand groups exceed the operands");
}

std::vector<Type> call_types(std::span<const Type> in, const Params& params) {
  check_layout(Prim::kCall, in, params, 1, 0);
  check_region_inputs(Prim::kCall, *params.regions[0], "the called function", in);
  return region_outputs(*params.regions[0]);
}

std::vector<Type> custom_vjp_types(std::span<const Type> in, const Params& params) {
  const Prim p = Prim::kCustomVjp;
  check_layout(p, in, params, 3, 3);
  const auto& rs = params.regions;
  const size_t nf = static_cast<size_t>(params.groups[0]), nfwd = static_cast<size_t>(params.groups[1]);
  const size_t nbwd = static_cast<size_t>(params.groups[2]);
  const std::span<const Type> args = in.subspan(nf + nfwd + nbwd);
  check_region_inputs(p, *rs[0], "fn", concat_types(in.subspan(0, nf), args));
  check_region_inputs(p, *rs[1], "fwd", concat_types(in.subspan(nf, nfwd), args));
  const std::vector<Type> out = region_outputs(*rs[0]), fwd = region_outputs(*rs[1]);
  bool ok = fwd.size() >= out.size();
  for (size_t i = 0; ok && i < out.size(); ++i) ok = same_value(fwd[i], out[i]);
  if (!ok)
    raise<TypeError>(prim_name(p), "fwd returns (", operands_str(fwd), "), which does not begin with fn's results (",
                     operands_str(out), ")");
  // bwd takes its consts, the residuals and the results' cotangents; returns the args' cotangents.
  std::vector<Type> bwd_in(in.begin() + static_cast<ptrdiff_t>(nf + nfwd),
                           in.begin() + static_cast<ptrdiff_t>(nf + nfwd + nbwd));
  bwd_in.insert(bwd_in.end(), fwd.begin() + static_cast<ptrdiff_t>(out.size()), fwd.end());
  bwd_in.insert(bwd_in.end(), out.begin(), out.end());
  check_region_inputs(p, *rs[2], "bwd", bwd_in);
  const std::vector<Type> cts = region_outputs(*rs[2]);
  ok = cts.size() == args.size();
  for (size_t i = 0; ok && i < args.size(); ++i) ok = same_value(cts[i], args[i]);
  if (!ok)
    raise<TypeError>(prim_name(p), "bwd returns (", operands_str(cts), ") for arguments (",
                     operands_str(args), ")");
  return out;
}

std::vector<Type> cond_types(std::span<const Type> in, const Params& params) {
  const Prim p = Prim::kCond;
  const auto& rs = params.regions;
  if (rs.empty()) raise<Error>(prim_name(p), "needs at least one branch");
  check_layout(p, in, params, rs.size(), 0);
  if (in.empty() || in[0].dtype != DType::i32 || !in[0].shape.empty())
    raise<TypeError>(prim_name(p), "the branch index must be i32[], got ",
                     in.empty() ? std::string("nothing") : type_str(in[0]));
  std::vector<Type> out = region_outputs(*rs[0]);
  for (size_t b = 0; b < rs.size(); ++b) {
    check_region_inputs(p, *rs[b], detail::cat("branch ", b), in.subspan(1));
    std::vector<Type> ob = region_outputs(*rs[b]);
    bool ok = ob.size() == out.size();
    for (size_t i = 0; ok && i < ob.size(); ++i) {
      ok = same_value(ob[i], out[i]);
      out[i].weak = out[i].weak && ob[i].weak;
    }
    if (!ok)
      raise<TypeError>(prim_name(p), "branch ", b, " returns (", operands_str(ob),
                       ") but branch 0 returns (", operands_str(region_outputs(*rs[0])), ")");
  }
  return out;
}

std::vector<Type> while_types(std::span<const Type> in, const Params& params) {
  const Prim p = Prim::kWhile;
  check_layout(p, in, params, 2, 2);
  const auto& rs = params.regions;
  const size_t nc = static_cast<size_t>(params.groups[0]), nb = static_cast<size_t>(params.groups[1]);
  std::span<const Type> carry = in.subspan(nc + nb);
  check_region_inputs(p, *rs[0], "cond", concat_types(in.subspan(0, nc), carry));
  check_region_inputs(p, *rs[1], "body", concat_types(in.subspan(nc, nb), carry));
  std::vector<Type> c = region_outputs(*rs[0]);
  if (c.size() != 1 || c[0].dtype != DType::bool_ || !c[0].shape.empty())
    raise<TypeError>(prim_name(p), "cond must return one bool[], got (", operands_str(c), ")");
  std::vector<Type> b = region_outputs(*rs[1]);
  check_carry(p, carry, b);
  if (b.size() != carry.size()) raise<TypeError>(prim_name(p), "body returns extra values");
  std::vector<Type> out(carry.begin(), carry.end());
  if (params.trajectory) {
    if (params.length < 0) raise<Error>(prim_name(p), "a trajectory needs max_iterations");
    out.push_back(Type{DType::i32, {}, false});
    for (const Type& t : carry) out.push_back(stacked(t, params.length));
  }
  return out;
}

std::vector<Type> scan_types(std::span<const Type> in, const Params& params) {
  const Prim p = Prim::kScan;
  check_layout(p, in, params, 1, 2);
  const size_t nk = static_cast<size_t>(params.groups[0]), nc = static_cast<size_t>(params.groups[1]);
  if (params.length < 0) raise<ShapeError>(prim_name(p), "length ", params.length, " is negative");
  std::span<const Type> carry = in.subspan(nk, nc), xs = in.subspan(nk + nc);
  std::vector<Type> body_in(in.begin(), in.begin() + static_cast<ptrdiff_t>(nk + nc));
  for (const Type& x : xs) {
    if (x.shape.empty() || x.shape[0] != params.length)
      raise<ShapeError>(prim_name(p), "xs operand ", type_str(x), " does not have length ",
                        params.length, " on its leading axis");
    Type slice = x;
    slice.shape.erase(slice.shape.begin());
    body_in.push_back(slice);
  }
  check_region_inputs(p, *params.regions[0], "body", body_in);
  std::vector<Type> b = region_outputs(*params.regions[0]);
  check_carry(p, carry, b);
  std::vector<Type> out(carry.begin(), carry.end());
  for (size_t i = nc; i < b.size(); ++i) out.push_back(stacked(b[i], params.length));
  return out;
}

}  // namespace

namespace {

std::vector<Type> infer(Prim p, std::span<const Type> in, const Params& params) {
  const PrimInfo& info = prim_info(p);
  if (info.arity >= 0 && static_cast<int>(in.size()) != info.arity)
    raise<Error>(info.name, "takes ", info.arity, " operands, got ", in.size());
  check_dtype(p, in);
  switch (p) {
    case Prim::kNeg: case Prim::kExp: case Prim::kLog: case Prim::kLog1p: case Prim::kSin:
    case Prim::kCos: case Prim::kTanh: case Prim::kSqrt: case Prim::kAbs: case Prim::kSign:
    case Prim::kStopGradient:
      return {in[0]};
    case Prim::kConvert:
      return {Type{params.dtype, in[0].shape, params.weak_type}};
    case Prim::kBitcast:
      if (dtype_size(params.dtype) != dtype_size(in[0].dtype) || params.dtype == DType::bool_ ||
          in[0].dtype == DType::bool_)
        raise<TypeError>(info.name, "cannot reinterpret ", type_str(in[0]), " as ",
                         dtype_name(params.dtype), ": bitcasts need two non-bool dtypes of one size");
      return {Type{params.dtype, in[0].shape, false}};
    case Prim::kAdd: case Prim::kMul: case Prim::kDiv: case Prim::kPow: case Prim::kMax:
    case Prim::kMin: case Prim::kAnd: case Prim::kOr: case Prim::kXor: case Prim::kShl:
    case Prim::kShr:
      check_same_types(p, in, 0);
      return {Type{in[0].dtype, in[0].shape, all_weak(in)}};
    case Prim::kEq: case Prim::kNe: case Prim::kLt: case Prim::kLe: case Prim::kGt: case Prim::kGe:
      check_same_types(p, in, 0);
      return {Type{DType::bool_, in[0].shape, false}};
    case Prim::kSelect:
      if (in[0].dtype != DType::bool_)
        raise<TypeError>(info.name, "condition must be bool, got ", type_str(in[0]),
                         "; compare it, e.g. x != 0");
      if (in[0].shape != in[1].shape)
        raise<ShapeError>(info.name, "condition ", type_str(in[0]), " and operands ",
                          operands_str(in.subspan(1)), " must have one shape");
      check_same_types(p, in, 1);
      return {Type{in[1].dtype, in[1].shape, in[1].weak && in[2].weak}};
    case Prim::kReduceSum: case Prim::kReduceMax:
      return {reduce_type(p, in[0], params)};
    case Prim::kBroadcast:
      return {broadcast_type(p, in[0], params)};
    case Prim::kReshape:
      check_dims(p, params.shape);
      if (shape_size(params.shape) != in[0].size())  // the hint says what size would fit
        raise<ShapeError>(info.name, "cannot reshape ", type_str(in[0]), " to ",
                          shape_str(params.shape), ": sizes ", in[0].size(), " and ",
                          shape_size(params.shape), " differ; the new shape must have ",
                          in[0].size(), " elements (one dimension may be -1)");
      return {Type{in[0].dtype, params.shape, in[0].weak}};
    case Prim::kTranspose: {
      if (static_cast<int64_t>(params.axes.size()) != in[0].rank())
        raise<ShapeError>(info.name, "permutation (", absl::StrJoin(params.axes, ", "),
                          ") does not fit ", type_str(in[0]), ": it needs ", in[0].rank(),
                          " axes");
      check_axes(p, params.axes, in[0], "axis");
      Type out{in[0].dtype, {}, in[0].weak};
      for (int64_t a : params.axes) out.shape.push_back(in[0].shape[static_cast<size_t>(a)]);
      return {out};
    }
    case Prim::kSlice:
      return {slice_type(p, in[0], params)};
    case Prim::kConcatenate:
      return {concatenate_type(p, in, params)};
    case Prim::kIota:
      check_dims(p, params.shape);
      if (params.axis < 0 || params.axis >= static_cast<int64_t>(params.shape.size()))
        raise<IndexError>(info.name, "dimension ", params.axis, " is out of range for shape ",
                          shape_str(params.shape));
      if (params.dtype == DType::bool_)
        raise<TypeError>(info.name, "cannot count in bool; use i32, u32 or a float dtype");
      return {Type{params.dtype, params.shape, false}};
    case Prim::kMatmul:
      return {matmul_type(p, in[0], in[1])};
    case Prim::kDebugPrint:
      if (detail::count_placeholders(params.text) != static_cast<int64_t>(in.size()))
        raise<Error>(info.name, "the format '", params.text, "' has ",
                     detail::count_placeholders(params.text), " placeholders for ", in.size(), " operands");
      return {};
    case Prim::kAllSum:
      return {in[0]};
    case Prim::kCall: return call_types(in, params);
    case Prim::kCond: return cond_types(in, params);
    case Prim::kWhile: return while_types(in, params);
    case Prim::kScan: return scan_types(in, params);
    case Prim::kCustomVjp: return custom_vjp_types(in, params);
  }
  detail::fail_internal(__FILE__, __LINE__, "unknown primitive");
}

}  // namespace

std::vector<Type> infer_types(Prim p, std::span<const Type> in, const Params& params) {
  std::vector<Type> out = infer(p, in, params);
  for (const Type& t : out) detail::check_shape(prim_name(p), t.shape);  // overflowing products
  return out;
}

}  // namespace tracejit::ir
