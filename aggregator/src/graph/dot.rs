//! The graph as Graphviz DOT: one subgraph (box) per cluster, nodes labelled with their name and
//! namespace, edges with request rate and error percentage; edges with errors are red.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::graph::view::Graph;

/// Renders `g` as a DOT digraph.
pub fn render(g: &Graph) -> String {
    let mut out = String::from("digraph meshfed {\n  rankdir=LR;\n  node [shape=box, style=rounded];\n");
    let mut by_cluster: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, n) in g.nodes.iter().enumerate() {
        by_cluster.entry(&n.cluster).or_default().push(i);
    }
    for (ci, (cluster, nodes)) in by_cluster.iter().enumerate() {
        let _ = writeln!(out, "  subgraph cluster_{ci} {{\n    label={};", quote(cluster));
        for &i in nodes {
            let n = &g.nodes[i];
            let _ = writeln!(
                out,
                "    {} [label={}];",
                quote(&n.id),
                quote(&format!("{}\n{}", n.name, n.namespace))
            );
        }
        out.push_str("  }\n");
    }
    for e in &g.edges {
        let colour = if e.error_rate_percent > 0.0 {
            "red"
        } else {
            "black"
        };
        let _ = writeln!(
            out,
            "  {} -> {} [label={}, color={colour}{}];",
            quote(&e.source),
            quote(&e.target),
            quote(&format!(
                "{:.2} rps, {:.1}% err",
                e.request_rate, e.error_rate_percent
            )),
            if e.cross_cluster { ", style=dashed" } else { "" },
        );
    }
    out.push_str("}\n");
    out
}

/// A DOT double-quoted string; a newline becomes a DOT line break.
fn quote(s: &str) -> String {
    let mut q = String::with_capacity(s.len() + 2);
    q.push('"');
    for c in s.chars() {
        match c {
            '"' => q.push_str("\\\""),
            '\\' => q.push_str("\\\\"),
            '\n' => q.push_str("\\n"),
            _ => q.push(c),
        }
    }
    q.push('"');
    q
}
