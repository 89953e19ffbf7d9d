#pragma once
// Graphviz DOT pictures of the IR. A node per equation, labelled with its printed line (ir.h's
// grammar), an edge per operand from the node that defines it, ellipses for inputs and
// constants, and a box for the outputs. Higher-order equations are clusters nesting their
// regions, each drawn as a function of its own. make_ir(f)(...).dot() draws the traced
// program with FunctionDrawer as is; the backend (fusion_dot.cpp) draws the fused plan on the
// same drawer, grouping the equations into a cluster per kernel.
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ir/ir.h"

namespace tracejit::ir {

/// One digraph being written. Nodes and clusters go into the body as they are added (clusters
/// nest); edges are collected apart and written last, so that an edge never declares a node
/// inside the cluster that happens to be open.
class DotGraph {
 public:
  /// Adds a node and returns its id. Equation nodes are "e<n>", all others "v<n>".
  std::string node(std::string_view label, std::string_view attrs, bool equation = false);
  void edge(const std::string& from, const std::string& to, std::string_view label,
            std::string_view attrs = "");
  void open_cluster(std::string_view label, std::string_view attrs = "");
  void close_cluster();
  /// The whole graph, `digraph "title" { ... }`.
  std::string str(std::string_view title) const;

 private:
  std::string body_, edges_;
  int nodes_ = 0, clusters_ = 0, depth_ = 1;
};

/// `text` as the inside of a DOT double-quoted string.
std::string dot_escape(std::string_view text);

/// Draws one function onto a graph: inputs, equations (through body()), outputs, and the data
/// edges between them. Subclasses choose how equations are grouped and how regions are drawn.
class FunctionDrawer {
 public:
  FunctionDrawer(DotGraph& graph, const Function& fn);
  virtual ~FunctionDrawer() = default;
  void draw();

 protected:
  /// Every equation in program order; a higher-order one in a cluster of its own.
  virtual void body();
  /// Region r of equation `eqn`, inside the cluster named after it.
  virtual void region(int eqn, size_t r);
  /// Extra attributes of the edge carrying `v`.
  virtual std::string edge_attrs(VarId v) const { return ""; }
  /// Draws equation `eqn` (once; later calls do nothing): a node, followed for a higher-order
  /// equation by a cluster per region.
  void equation(int eqn, std::string_view attrs = "shape=box");
  bool drawn(int eqn) const { return !eqn_node_[static_cast<size_t>(eqn)].empty(); }

  DotGraph& graph_;
  const Function& fn_;
  std::vector<std::string> names_;  // per VarId, as the printer spells them

 private:
  std::vector<std::string> def_node_;  // per VarId: the node defining it ("" for literals)
  std::vector<std::string> eqn_node_;  // per equation
};

/// The traced program `fn` as a DOT digraph named `title`.
std::string to_dot(const Function& fn, std::string_view title);

}  // namespace tracejit::ir
