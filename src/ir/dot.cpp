#include "ir/dot.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/errors.h"

namespace tracejit::ir {

std::string dot_escape(std::string_view text) {
  std::string out;
  for (char c : text) {
    if (c == '"' || c == '\\') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

std::string DotGraph::node(std::string_view label, std::string_view attrs, bool equation) {
  std::string id = absl::StrCat(equation ? "e" : "v", nodes_++);
  absl::StrAppend(&body_, std::string(static_cast<size_t>(2 * depth_), ' '), id, " [label=\"",
                  dot_escape(label), "\"", attrs.empty() ? "" : ", ", detail::str_part(attrs),
                  "];\n");
  return id;
}

void DotGraph::edge(const std::string& from, const std::string& to, std::string_view label,
                    std::string_view attrs) {
  absl::StrAppend(&edges_, "  ", from, " -> ", to, " [label=\"", dot_escape(label), "\"",
                  attrs.empty() ? "" : ", ", detail::str_part(attrs), "];\n");
}

void DotGraph::open_cluster(std::string_view label, std::string_view attrs) {
  absl::StrAppend(&body_, std::string(static_cast<size_t>(2 * depth_), ' '), "subgraph cluster_",
                  clusters_++, " {\n", std::string(static_cast<size_t>(2 * depth_ + 2), ' '),
                  "label=\"", dot_escape(label), "\";", attrs.empty() ? "" : " ",
                  detail::str_part(attrs), "\n");
  ++depth_;
}

void DotGraph::close_cluster() {
  --depth_;
  absl::StrAppend(&body_, std::string(static_cast<size_t>(2 * depth_), ' '), "}\n");
}

std::string DotGraph::str(std::string_view title) const {
  return absl::StrCat("digraph \"", dot_escape(title), "\" {\n",
                      "  node [fontname=\"monospace\", fontsize=10];\n",
                      "  edge [fontname=\"monospace\", fontsize=9];\n", body_, edges_, "}\n");
}

FunctionDrawer::FunctionDrawer(DotGraph& graph, const Function& fn)
    : graph_(graph),
      fn_(fn),
      names_(var_names(fn)),
      def_node_(static_cast<size_t>(fn.num_vars())),
      eqn_node_(fn.eqns.size()) {}

void FunctionDrawer::draw() {
  auto binder = [&](VarId v) {
    return absl::StrCat(names_[static_cast<size_t>(v)], ":", type_str(fn_.type(v)));
  };
  for (VarId v : fn_.const_vars)
    if (!fn_.type(v).shape.empty())
      def_node_[static_cast<size_t>(v)] =
          graph_.node(absl::StrCat("const ", binder(v)), "shape=ellipse, style=dashed");
  for (VarId v : fn_.captures)
    def_node_[static_cast<size_t>(v)] =
        graph_.node(absl::StrCat("capture ", binder(v)), "shape=ellipse, style=dashed");
  for (VarId v : fn_.inputs)
    def_node_[static_cast<size_t>(v)] = graph_.node(binder(v), "shape=ellipse");
  body();
  for (size_t i = 0; i < fn_.eqns.size(); ++i) equation(static_cast<int>(i));  // any left over
  std::vector<std::string> outs;
  for (VarId v : fn_.outputs) outs.push_back(names_[static_cast<size_t>(v)]);
  std::string out =
      graph_.node(absl::StrCat("in (", absl::StrJoin(outs, ", "), ")"), "shape=box, style=rounded");
  for (size_t i = 0; i < fn_.eqns.size(); ++i)
    for (VarId v : fn_.eqns[i].in)
      if (!def_node_[static_cast<size_t>(v)].empty())
        graph_.edge(def_node_[static_cast<size_t>(v)], eqn_node_[i], names_[static_cast<size_t>(v)],
                    edge_attrs(v));
  for (VarId v : fn_.outputs)
    if (!def_node_[static_cast<size_t>(v)].empty())
      graph_.edge(def_node_[static_cast<size_t>(v)], out, names_[static_cast<size_t>(v)],
                  edge_attrs(v));
}

void FunctionDrawer::body() {
  for (size_t i = 0; i < fn_.eqns.size(); ++i) {
    const Eqn& e = fn_.eqns[i];
    if (!has_regions(e.prim)) {
      equation(static_cast<int>(i));
      continue;
    }
    graph_.open_cluster(prim_name(e.prim), "style=rounded;");
    equation(static_cast<int>(i));
    graph_.close_cluster();
  }
}

void FunctionDrawer::region(int eqn, size_t r) {
  FunctionDrawer(graph_, *fn_.eqns[static_cast<size_t>(eqn)].params.regions[r]).draw();
}

void FunctionDrawer::equation(int eqn, std::string_view attrs) {
  if (drawn(eqn)) return;
  const Eqn& e = fn_.eqns[static_cast<size_t>(eqn)];
  std::string id = graph_.node(eqn_str(fn_, e, names_), has_effect(e.prim) ? "shape=note" : attrs,
                               /*equation=*/true);
  eqn_node_[static_cast<size_t>(eqn)] = id;
  for (VarId v : e.out) def_node_[static_cast<size_t>(v)] = id;
  for (size_t r = 0; r < e.params.regions.size(); ++r) {
    graph_.open_cluster(region_name(e.prim, r, e.params.regions.size()), "style=dashed;");
    region(eqn, r);
    graph_.close_cluster();
  }
}

std::string to_dot(const Function& fn, std::string_view title) {
  DotGraph graph;
  FunctionDrawer(graph, fn).draw();
  return graph.str(title);
}

}  // namespace tracejit::ir
