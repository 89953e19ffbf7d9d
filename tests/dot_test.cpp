// Pictures of the IR (ir/dot.h, backend fusion_dot.cpp): make_ir(f)(...).dot() and
// jit(f).lower(...).dot() are Graphviz digraphs that dot parses, with every equation of the
// printed program drawn exactly once.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "external_tools.h"
#include "tracejit/tracejit.h"

namespace tj = tracejit;
using testing::HasSubstr;
using tj::Array;

namespace {

int count(const std::string& text, const std::string& what) {
  int n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

// Equation nodes are the ones named e<n>.
int equation_nodes(const std::string& dot) {
  static const std::regex node(R"(^\s*e\d+ \[label=)");
  int n = 0;
  for (absl::string_view line : absl::StrSplit(dot, '\n'))
    if (std::regex_search(std::string(line), node)) ++n;
  return n;
}

// The equation lines of a printed program at its top level (four spaces in, " = " or an
// effect), without the nested regions' lines.
std::vector<std::string> top_equations(const std::string& text,
                                       const std::string& indent = "    ") {
  std::vector<std::string> out;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (!absl::ConsumePrefix(&line, indent) || line.empty() || line[0] == ' ') continue;
    if (absl::StartsWith(line, "kernel ") || absl::StartsWith(line, "region ")) continue;
    absl::ConsumePrefix(&line, "host: ");
    out.emplace_back(line);
  }
  return out;
}

// The DOT label of a line of the printed program (quotes and backslashes escaped).
std::string label(const std::string& line) {
  std::string out = "label=\"";
  for (char c : line) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

// Renders `dot` with Graphviz when it is installed; true when it parsed and gave an SVG.
void expect_renders(const std::string& dot, const std::string& tag) {
  if (!tracejit_test::on_path("dot")) return;
  auto dir = std::filesystem::temp_directory_path() /
             ("tracejit-dot-" + tag + "-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "g.dot") << dot;
  int rc =
      tracejit_test::run_shell("dot -Tsvg '" + (dir / "g.dot").string() + "' -o '" +
                               (dir / "g.svg").string() + "' 2>'" + (dir / "err").string() + "'");
  std::ifstream err(dir / "err"), svg(dir / "g.svg");
  std::string err_text((std::istreambuf_iterator<char>(err)), {});
  std::string svg_text((std::istreambuf_iterator<char>(svg)), {});
  EXPECT_EQ(rc, 0) << err_text << "\n" << dot;
  EXPECT_EQ(err_text, "") << dot;  // no syntax warnings either
  EXPECT_THAT(svg_text, HasSubstr("<svg"));
  std::filesystem::remove_all(dir);
}

Array loss(const Array& w, const Array& x, const Array& y) {
  return tj::mean(tj::square(w * x + 1.f - y));
}

TEST(Dot, TracedProgramHasEveryEquationOnce) {
  Array x = tj::ones({8, 1}), y = tj::zeros({8, 1});
  tj::IR ir = tj::make_ir(tj::grad(loss))(Array(2.f), x, y);
  const std::string text = ir.str(), dot = ir.dot();
  std::vector<std::string> eqns = top_equations(text);
  ASSERT_GT(eqns.size(), 5u) << text;
  EXPECT_EQ(equation_nodes(dot), static_cast<int>(eqns.size())) << dot;
  for (const std::string& e : eqns) EXPECT_EQ(count(dot, label(e)), 1) << e << "\n" << dot;
  EXPECT_THAT(dot, testing::StartsWith("digraph "));
  expect_renders(dot, "traced");
}

TEST(Dot, LoopsAndBranchesAreNestedClusters) {
  auto f = [](const Array& x) {
    auto body = [](const Array& i, const Array& c) {
      return tj::cond(
          i < 2, [](const Array& v) { return v * 2.f; }, [](const Array& v) { return v + 1.f; }, c);
    };
    return tj::fori_loop(0, 4, body, x);
  };
  tj::IR ir = tj::make_ir(f)(tj::ones({3}));
  const std::string dot = ir.dot();
  // The fori_loop's scan, its body (lt, cond, the counter's add), and both branches' equations.
  int eqns = 0;
  for (absl::string_view line : absl::StrSplit(ir.str(), '\n'))
    if (absl::StrContains(line, " = ")) ++eqns;
  EXPECT_EQ(equation_nodes(dot), eqns) << ir.str() << "\n" << dot;
  EXPECT_THAT(dot, HasSubstr("label=\"scan\""));
  EXPECT_THAT(dot, HasSubstr("label=\"body\""));
  EXPECT_THAT(dot, HasSubstr("label=\"true_branch\""));
  EXPECT_THAT(dot, HasSubstr("label=\"false_branch\""));
  EXPECT_GE(count(dot, "subgraph cluster_"), 5) << dot;  // scan, body, cond, two branches
  expect_renders(dot, "loops");
}

TEST(Dot, FusedPlanHasAClusterPerKernelAndEveryEquationOnce) {
  auto step = tj::jit([](const Array& w, const Array& x, const Array& y) {
    Array g = tj::grad(loss)(w, x, y);
    tj::debug::print("g = {}", g);
    return w - g * 0.1f;
  });
  tj::Lowered lowered = step.lower(Array(2.f), tj::ones({64, 1}), tj::zeros({64, 1}));
  const std::string text = lowered.optimized_ir(), dot = lowered.dot();
  const int kernels = count(text, "    kernel ");
  ASSERT_GT(kernels, 0) << text;
  EXPECT_EQ(count(dot, "label=\"kernel "), kernels) << dot;
  // An equation a second kernel recomputes is listed twice in the text, drawn once.
  std::vector<std::string> eqns = top_equations(text, "      ");
  for (const std::string& h : top_equations(text)) eqns.push_back(h);  // the host step
  std::set<std::string> distinct(eqns.begin(), eqns.end());
  EXPECT_EQ(equation_nodes(dot), static_cast<int>(distinct.size())) << text << "\n" << dot;
  for (const std::string& e : distinct) EXPECT_EQ(count(dot, label(e)), 1) << e << "\n" << dot;
  EXPECT_THAT(dot, HasSubstr("debug_print[fmt='g = {}']"));
  EXPECT_THAT(dot, HasSubstr("shape=note"));  // the host step
  expect_renders(dot, "fused");
}

TEST(Dot, FusedLoopNestsItsBodysPlan) {
  auto train = tj::jit([](const Array& w0, const Array& x) {
    return tj::fori_loop(
        0, 10,
        [&](const Array&, const Array& w) {
          return w -
                 tj::grad([&](const Array& v) { return tj::sum(tj::square(v * x)); })(w) * 0.01f;
        },
        w0);
  });
  tj::Lowered lowered = train.lower(Array(1.f), tj::ones({16}));
  const std::string dot = lowered.dot();
  EXPECT_THAT(dot, HasSubstr("label=\"region "));
  EXPECT_THAT(dot, HasSubstr("label=\"body\""));
  EXPECT_GE(count(dot, "label=\"kernel "), 2) << lowered.optimized_ir() << "\n" << dot;
  expect_renders(dot, "fused-loop");
}

TEST(Dot, LabelsEscapeQuotesAndBackslashes) {
  tj::IR ir = tj::make_ir([](const Array& x) {
    tj::debug::print("say \"{}\" \\ done", x);
    return x;
  })(Array(1.f));
  const std::string dot = ir.dot();
  // The printer's escapes (\" and \\), each escaped again for DOT.
  EXPECT_THAT(dot, HasSubstr(R"(debug_print[fmt='say \\\"{}\\\" \\\\ done'])")) << dot;
  expect_renders(dot, "escape");
}

}  // namespace
