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
    Matching { on, names, card }
}

impl Evaluator<'_> {
    pub fn eval_binary(&mut self, b: &BinaryExpr) -> Result<Val> {
        let op = b.op.id();
        if b.modifier
            .as_ref()
            .is_some_and(|m| m.fill_values.lhs.is_some() || m.fill_values.rhs.is_some())
        {
            return Err(QueryError::Unsupported("fill modifiers".into()));
        }
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
        let drop_name = rb || !is_comparison(op);
        let mut out: Vec<StepSeries> = Vec::new();
        let mut out_index: HashMap<Labels, usize> = HashMap::new();
        let mut pair_out: HashMap<(usize, usize), usize> = HashMap::new();
        let mut matched_at = vec![usize::MAX; members.len()];
        for k in 0..steps {
            for (i, s) in many.iter().enumerate() {
                let (Some(mv), Some(g)) = (s.vals[k], many_group[i]) else {
                    continue;
                };
                let Some(&j) = members[g].iter().find(|&&j| one[j].vals[k].is_some()) else {
                    continue;
                };
                let Some(ov) = one[j].vals[k] else { continue };
                // Checked before filtering, so a comparison cannot hide an ambiguous match.
                if one_to_one {
                    if matched_at[g] == k {
                        return Err(QueryError::exec(
                            "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)",
                        ));
                    }
                    matched_at[g] = k;
                }
                let (l, r) = if swapped { (ov, mv) } else { (mv, ov) };
                let (mut value, keep) = elem(op, l, r);
                if rb {
                    value = if keep { 1.0 } else { 0.0 };
                } else if !keep {
                    continue;
                }
                let o = match pair_out.get(&(i, j)) {
                    Some(&o) => o,
                    None => {
                        let labels = result_labels(&s.labels, &one[j].labels, m, one_to_one, &include);
                        let o = *out_index.entry(labels.clone()).or_insert_with(|| {
                            out.push(StepSeries::new(labels, drop_name, steps));
                            out.len() - 1
                        });
                        pair_out.insert((i, j), o);
                        o
                    }
                };
                if out[o].vals[k].is_some() {
                    return Err(QueryError::exec(
                        "multiple matches for labels: grouping labels must ensure unique matches",
                    ));
                }
                out[o].vals[k] = Some(value);
            }
        }
        Ok(out)
    }
}

/// Labels as Go's `labels.Labels.String()` prints them: `{__name__="x", a="b"}`.
pub(crate) fn go_labels(l: &Labels) -> String {
    let parts: Vec<String> = l.iter().map(|l| format!("{}={:?}", l.name, l.value)).collect();
    format!("{{{}}}", parts.join(", "))
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
