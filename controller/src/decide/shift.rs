//! Weight arithmetic: integer percentages that always add up to 100.

use std::collections::BTreeMap;

/// Weights by cluster, only non-zero entries.
pub(crate) type Weights = BTreeMap<String, u32>;

/// `total` split evenly over `clusters` (in order; the remainder goes to the first ones).
pub(crate) fn even(clusters: &[&str], total: u32) -> Weights {
    let mut out = Weights::new();
    let n = u32::try_from(clusters.len()).unwrap_or(u32::MAX);
    if n == 0 {
        return out;
    }
    let (base, mut rem) = (total / n, total % n);
    for c in clusters {
        let w = base + u32::from(rem > 0);
        rem = rem.saturating_sub(1);
        if w > 0 {
            *out.entry((*c).to_owned()).or_default() += w;
        }
    }
    out
}

/// Adds `extra` into `into`.
pub(crate) fn add(into: &mut Weights, extra: &Weights) {
    for (c, w) in extra {
        *into.entry(c.clone()).or_default() += w;
    }
}

/// Percentage points that must move to get from `from` to `to`.
pub(crate) fn distance(from: &Weights, to: &Weights) -> u32 {
    to.iter()
        .map(|(c, w)| w.saturating_sub(from.get(c).copied().unwrap_or(0)))
        .sum()
}

/// Moves at most `budget` points from `from` toward `to`. Points leave the clusters with excess
/// in reverse `order` (least preferred first) and arrive in `order` (most preferred first).
/// Returns the new weights and the (source, destination, points) moves made.
pub(crate) fn step(
    from: &Weights,
    to: &Weights,
    order: &[&str],
    budget: u32,
) -> (Weights, Vec<(String, String, u32)>) {
    let get = |m: &Weights, c: &str| m.get(c).copied().unwrap_or(0);
    let rank = |c: &str| order.iter().position(|o| *o == c).unwrap_or(usize::MAX);
    let mut givers: Vec<(String, u32)> = from
        .iter()
        .filter_map(|(c, w)| {
            w.checked_sub(get(to, c))
                .filter(|d| *d > 0)
                .map(|d| (c.clone(), d))
        })
        .collect();
    givers.sort_by(|a, b| rank(&b.0).cmp(&rank(&a.0)).then_with(|| b.0.cmp(&a.0)));
    let mut takers: Vec<(String, u32)> = to
        .iter()
        .filter_map(|(c, w)| {
            w.checked_sub(get(from, c))
                .filter(|d| *d > 0)
                .map(|d| (c.clone(), d))
        })
        .collect();
    takers.sort_by(|a, b| rank(&a.0).cmp(&rank(&b.0)).then_with(|| a.0.cmp(&b.0)));

    let mut out = from.clone();
    let mut moves = Vec::new();
    let mut budget = budget;
    let (mut gi, mut ti) = (0, 0);
    while budget > 0 && gi < givers.len() && ti < takers.len() {
        let n = budget.min(givers[gi].1).min(takers[ti].1);
        budget -= n;
        givers[gi].1 -= n;
        takers[ti].1 -= n;
        if let Some(w) = out.get_mut(&givers[gi].0) {
            *w -= n;
        }
        *out.entry(takers[ti].0.clone()).or_default() += n;
        moves.push((givers[gi].0.clone(), takers[ti].0.clone(), n));
        if givers[gi].1 == 0 {
            gi += 1;
        }
        if takers[ti].1 == 0 {
            ti += 1;
        }
    }
    out.retain(|_, w| *w > 0);
    (out, moves)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(pairs: &[(&str, u32)]) -> Weights {
        pairs.iter().map(|(c, n)| ((*c).to_owned(), *n)).collect()
    }

    #[test]
    fn even_split_keeps_total() {
        assert_eq!(even(&["a", "b", "c"], 100), w(&[("a", 34), ("b", 33), ("c", 33)]));
        assert_eq!(even(&["a"], 100), w(&[("a", 100)]));
        assert!(even(&[], 100).is_empty());
    }

    #[test]
    fn step_respects_budget_and_order() {
        let (out, moves) = step(&w(&[("b", 100)]), &w(&[("a", 100)]), &["a", "b"], 30);
        assert_eq!(out, w(&[("a", 30), ("b", 70)]));
        assert_eq!(moves, vec![("b".into(), "a".into(), 30)]);
        let (out, _) = step(
            &w(&[("b", 50), ("c", 50)]),
            &w(&[("a", 100)]),
            &["a", "b", "c"],
            60,
        );
        assert_eq!(out, w(&[("a", 60), ("b", 40)]));
        assert_eq!(distance(&w(&[("b", 50), ("c", 50)]), &w(&[("a", 100)])), 100);
    }
}
