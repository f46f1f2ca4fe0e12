//! Binary operators: scalar/scalar, vector/scalar, vector/vector with `on`/`ignoring`,
//! `group_left`/`group_right`, `bool` and the set operators.

use std::collections::HashMap;

use meshfed_model::{Labels, METRIC_NAME};
use promql_parser::parser::token::{self, TokenId};
use promql_parser::parser::{BinaryExpr, LabelModifier, VectorMatchCardinality};

use super::Evaluator;
use crate::error::{QueryError, Result};
use crate::value::{StepSeries, Val};

pub(crate) fn is_comparison(op: TokenId) -> bool {
    matches!(
        op,
        token::T_EQLC | token::T_NEQ | token::T_GTR | token::T_LSS | token::T_GTE | token::T_LTE
    )
}

fn is_set(op: TokenId) -> bool {
    matches!(op, token::T_LAND | token::T_LOR | token::T_LUNLESS)
}

/// Applies `op`; comparisons return `(lhs, matched)`, arithmetic `(result, true)`.
pub(crate) fn elem(op: TokenId, l: f64, r: f64) -> (f64, bool) {
    match op {
        token::T_ADD => (l + r, true),
        token::T_SUB => (l - r, true),
        token::T_MUL => (l * r, true),
        token::T_DIV => (l / r, true),
        token::T_MOD => (l % r, true),
        token::T_POW => (l.powf(r), true),
        token::T_ATAN2 => (l.atan2(r), true),
        token::T_EQLC => (l, l == r),
        token::T_NEQ => (l, l != r),
        token::T_GTR => (l, l > r),
        token::T_LSS => (l, l < r),
        token::T_GTE => (l, l >= r),
        token::T_LTE => (l, l <= r),
        _ => (f64::NAN, false),
    }
}

/// The labels two series are matched on.
fn signature(labels: &Labels, on: bool, names: &[String]) -> Labels {
    if on {
        labels.keep(names)
    } else {
        let mut drop: Vec<&str> = names.iter().map(String::as_str).collect();
        drop.push(METRIC_NAME);
        labels.drop_names(&drop)
    }
}

struct Matching {
    on: bool,
    names: Vec<String>,
    card: VectorMatchCardinality,
    fill_lhs: Option<f64>,
    fill_rhs: Option<f64>,
}

fn matching(b: &BinaryExpr) -> Matching {
    let (on, names) = match b.modifier.as_ref().and_then(|m| m.matching.as_ref()) {
        Some(LabelModifier::Include(l)) => (true, l.labels.clone()),
        Some(LabelModifier::Exclude(l)) => (false, l.labels.clone()),
        None => (false, Vec::new()),
    };
    let card = b
        .modifier
        .as_ref()
        .map(|m| m.card.clone())
        .unwrap_or(VectorMatchCardinality::OneToOne);
    let fill = b
        .modifier
        .as_ref()
        .map(|m| m.fill_values.clone())
        .unwrap_or_default();
    Matching {
        on,
        names,
        card,
        fill_lhs: fill.lhs,
        fill_rhs: fill.rhs,
    }
}

impl Evaluator<'_> {
    pub fn eval_binary(&mut self, b: &BinaryExpr) -> Result<Val> {
        let op = b.op.id();
        let rb = b.return_bool();
        let lhs = self.eval(&b.lhs)?;
        let rhs = self.eval(&b.rhs)?;
        match (lhs, rhs) {
            (Val::Scalar(mut l), Val::Scalar(r)) => {
                for (x, y) in l.iter_mut().zip(r) {
                    let (v, keep) = elem(op, *x, y);
                    *x = if is_comparison(op) {
                        if keep { 1.0 } else { 0.0 }
                    } else {
                        v
                    };
                }
                Ok(Val::Scalar(l))
            }
            (Val::Vector(v), Val::Scalar(s)) => Ok(Val::Vector(vector_scalar(v, &s, op, rb, false))),
            (Val::Scalar(s), Val::Vector(v)) => Ok(Val::Vector(vector_scalar(v, &s, op, rb, true))),
            (Val::Vector(l), Val::Vector(r)) => {
                let m = matching(b);
                if is_set(op) {
                    Ok(Val::Vector(self.set_op(op, l, r, &m)))
                } else {
                    Ok(Val::Vector(self.vector_vector(op, rb, l, r, &m)?))
                }
            }
            (l, r) => Err(QueryError::bad(format!(
                "binary expression must contain only scalar and instant vector types, got {} and {}",
                l.type_name(),
                r.type_name()
            ))),
        }
    }

    fn set_op(
        &self,
        op: TokenId,
        lhs: Vec<StepSeries>,
        rhs: Vec<StepSeries>,
        m: &Matching,
    ) -> Vec<StepSeries> {
        let steps = self.steps;
        let lsig: Vec<Labels> = lhs.iter().map(|s| signature(&s.labels, m.on, &m.names)).collect();
        let rsig: Vec<Labels> = rhs.iter().map(|s| signature(&s.labels, m.on, &m.names)).collect();
        // Per signature: at which steps any series of the other side has a value.
        let presence = |series: &[StepSeries], sigs: &[Labels]| {
            let mut p: HashMap<Labels, Vec<bool>> = HashMap::new();
            for (s, sig) in series.iter().zip(sigs) {
                let e = p.entry(sig.clone()).or_insert_with(|| vec![false; steps]);
                for (k, v) in s.vals.iter().enumerate() {
                    e[k] |= v.is_some();
                }
            }
            p
        };
        match op {
            token::T_LAND | token::T_LUNLESS => {
                let rp = presence(&rhs, &rsig);
                let keep_if_present = op == token::T_LAND;
                let mut out = Vec::with_capacity(lhs.len());
                for (mut s, sig) in lhs.into_iter().zip(lsig) {
                    let p = rp.get(&sig);
                    for (k, v) in s.vals.iter_mut().enumerate() {
                        let present = p.is_some_and(|p| p[k]);
                        if present != keep_if_present {
                            *v = None;
                        }
                    }
                    if !s.is_empty() {
                        out.push(s);
                    }
                }
                out
            }
            _ => {
                let lp = presence(&lhs, &lsig);
                let mut out = lhs;
                for (mut s, sig) in rhs.into_iter().zip(rsig) {
                    if let Some(p) = lp.get(&sig) {
                        for (k, v) in s.vals.iter_mut().enumerate() {
                            if p[k] {
                                *v = None;
                            }
                        }
                    }
                    if !s.is_empty() {
                        out.push(s);
                    }
                }
                out
            }
        }
    }

    fn vector_vector(
        &self,
        op: TokenId,
        rb: bool,
        lhs: Vec<StepSeries>,
        rhs: Vec<StepSeries>,
        m: &Matching,
    ) -> Result<Vec<StepSeries>> {
        let steps = self.steps;
        let (include, one_to_one) = match &m.card {
            VectorMatchCardinality::ManyToOne(l) | VectorMatchCardinality::OneToMany(l) => {
                (l.labels.clone(), false)
            }
            _ => (Vec::new(), true),
        };
        let swapped = matches!(m.card, VectorMatchCardinality::OneToMany(_));
        let (many, one) = if swapped { (rhs, lhs) } else { (lhs, rhs) };
        let mut groups: HashMap<Labels, usize> = HashMap::new();
        let mut members: Vec<Vec<usize>> = Vec::new();
        for (j, s) in one.iter().enumerate() {
            let sig = signature(&s.labels, m.on, &m.names);
            let g = *groups.entry(sig).or_insert_with(|| {
                members.push(Vec::new());
                members.len() - 1
            });
            members[g].push(j);
        }
        // The "one" side must be unique per signature at every step.
        for (sig, &g) in &groups {
            if members[g].len() < 2 {
                continue;
            }
            for k in 0..steps {
                let present: Vec<usize> = members[g]
                    .iter()
                    .copied()
                    .filter(|&j| one[j].vals[k].is_some())
                    .collect();
                if present.len() > 1 {
                    let side = if swapped { "left" } else { "right" };
                    let mut pair = [
                        go_labels(&one[present[0]].labels),
                        go_labels(&one[present[1]].labels),
                    ];
                    pair.sort();
                    return Err(QueryError::exec(format!(
                        "found duplicate series for the match group {} on the {side} hand-side of the operation: [{}, {}];many-to-many matching not allowed: matching labels must be unique on one side",
                        go_labels(sig),
                        pair[0],
                        pair[1]
                    )));
                }
            }
        }
        let many_group: Vec<Option<usize>> = many
            .iter()
            .map(|s| groups.get(&signature(&s.labels, m.on, &m.names)).copied())
            .collect();
        // Prometheus applies fill_left to the internal (possibly swapped) left side.
        let (fill_many, fill_one) = (m.fill_lhs, m.fill_rhs);
        let drop_name = rb || !is_comparison(op);
        let mut out = Output {
            series: Vec::new(),
            index: HashMap::new(),
            steps,
            drop_name,
        };
        let mut pair_out: HashMap<(usize, usize), usize> = HashMap::new();
        let mut matched_at = vec![usize::MAX; members.len()];
        let mut many_seen = vec![usize::MAX; members.len()];
        for k in 0..steps {
            for (i, s) in many.iter().enumerate() {
                let Some(mv) = s.vals[k] else { continue };
                if let Some(g) = many_group[i] {
                    many_seen[g] = k;
                }
                let matched = many_group[i].and_then(|g| {
                    members[g]
                        .iter()
                        .copied()
                        .find(|&j| one[j].vals[k].is_some())
                        .map(|j| (g, j))
                });
                let (ov, j) = match matched {
                    Some((g, j)) => {
                        // Checked before filtering, so a comparison cannot hide an ambiguous match.
                        if one_to_one {
                            if matched_at[g] == k {
                                return Err(QueryError::exec(
                                    "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)",
                                ));
                            }
                            matched_at[g] = k;
                        }
                        (one[j].vals[k].unwrap_or(f64::NAN), j)
                    }
                    None => match fill_one {
                        Some(f) => (f, usize::MAX),
                        None => continue,
                    },
                };
                let (l, r) = if swapped { (ov, mv) } else { (mv, ov) };
                let Some(value) = apply(op, rb, l, r) else {
                    continue;
                };
                let o = match pair_out.get(&(i, j)) {
                    Some(&o) => o,
                    None => {
                        let empty = Labels::empty();
                        let one_labels = one.get(j).map_or(&empty, |s| &s.labels);
                        let labels = result_labels(&s.labels, one_labels, m, one_to_one, &include);
                        let o = out.slot(labels);
                        pair_out.insert((i, j), o);
                        o
                    }
                };
                out.set(o, k, value)?;
            }
            // One-side series without any many-side partner: the many side is filled.
            let Some(f) = fill_many else { continue };
            for (sig, &g) in &groups {
                if many_seen[g] == k {
                    continue;
                }
                for &j in &members[g] {
                    let Some(ov) = one[j].vals[k] else { continue };
                    let (l, r) = if swapped { (ov, f) } else { (f, ov) };
                    let Some(value) = apply(op, rb, l, r) else {
                        continue;
                    };
                    let o = match pair_out.get(&(usize::MAX, j)) {
                        Some(&o) => o,
                        None => {
                            let o = out.slot(sig.clone());
                            pair_out.insert((usize::MAX, j), o);
                            o
                        }
                    };
                    out.set(o, k, value)?;
                }
            }
        }
        Ok(out.series)
    }
}

/// Labels as Go's `labels.Labels.String()` prints them: `{__name__="x", a="b"}`.
pub(crate) fn go_labels(l: &Labels) -> String {
    let parts: Vec<String> = l.iter().map(|l| format!("{}={:?}", l.name, l.value)).collect();
    format!("{{{}}}", parts.join(", "))
}

/// `op` on one pair; `None` when a comparison filters it out.
fn apply(op: TokenId, rb: bool, l: f64, r: f64) -> Option<f64> {
    let (value, keep) = elem(op, l, r);
    if rb {
        Some(if keep { 1.0 } else { 0.0 })
    } else {
        keep.then_some(value)
    }
}

/// Output series of a vector/vector operation, keyed by labels.
struct Output {
    series: Vec<StepSeries>,
    index: HashMap<Labels, usize>,
    steps: usize,
    drop_name: bool,
}

impl Output {
    fn slot(&mut self, labels: Labels) -> usize {
        if let Some(&o) = self.index.get(&labels) {
            return o;
        }
        self.series
            .push(StepSeries::new(labels.clone(), self.drop_name, self.steps));
        self.index.insert(labels, self.series.len() - 1);
        self.series.len() - 1
    }

    fn set(&mut self, o: usize, k: usize, value: f64) -> Result<()> {
        let slot = &mut self.series[o].vals[k];
        if slot.is_some() {
            return Err(QueryError::exec(
                "multiple matches for labels: grouping labels must ensure unique matches",
            ));
        }
        *slot = Some(value);
        Ok(())
    }
}

fn result_labels(many: &Labels, one: &Labels, m: &Matching, one_to_one: bool, include: &[String]) -> Labels {
    let base = if one_to_one {
        if m.on {
            many.keep(&m.names)
        } else {
            many.drop_names(&m.names)
        }
    } else {
        many.clone()
    };
    if include.is_empty() {
        return base;
    }
    let mut b = base.to_builder();
    for name in include {
        match one.get(name) {
            Some(v) => b.set(name.clone(), v.to_string()),
            None => b.del(name),
        };
    }
    b.build()
}

fn vector_scalar(mut v: Vec<StepSeries>, s: &[f64], op: TokenId, rb: bool, swapped: bool) -> Vec<StepSeries> {
    let cmp = is_comparison(op);
    for series in &mut v {
        series.drop_name |= rb || !cmp;
        for (k, slot) in series.vals.iter_mut().enumerate() {
            let Some(x) = *slot else { continue };
            let (l, r) = if swapped { (s[k], x) } else { (x, s[k]) };
            let (mut value, keep) = elem(op, l, r);
            if cmp && swapped {
                value = r;
            }
            if rb {
                value = if keep { 1.0 } else { 0.0 };
            } else if !keep {
                *slot = None;
                continue;
            }
            *slot = Some(value);
        }
    }
    v.retain(|s| !s.is_empty());
    v
}
