//! Which `WHERE` conjuncts a scan can use, and what they become: store matchers, a time range
//! and a set of series ids.
//!
//! Everything here is reported to DataFusion as `Inexact`: DataFusion applies the filter again
//! above the scan, so the scan only has to return a superset of the matching rows. That keeps the
//! translation simple (`ts > t` reads from `t`, `labels['x'] != 'a'` also keeps series without
//! `x`) and never wrong.

use datafusion::common::ScalarValue;
use datafusion::logical_expr::expr::{Between, BinaryExpr, InList, ScalarFunction};
use datafusion::logical_expr::{Expr, Operator};
use meshfed_model::labels::METRIC_NAME;
use meshfed_model::{MatchOp, Matcher};

/// What the conjuncts pushed into one scan allow it to skip.
#[derive(Clone, Debug)]
pub(crate) struct ScanFilter {
    /// Store matchers every returned series satisfies (`__name__ =~ ".*"` when none).
    pub matchers: Vec<Matcher>,
    /// Only these series ids, when some conjunct named them.
    pub series_ids: Option<Vec<u64>>,
    /// Inclusive lower time bound in ms.
    pub mint_ms: i64,
    /// Inclusive upper time bound in ms.
    pub maxt_ms: i64,
}

/// A column a filter can be about.
enum Target {
    Name,
    Label(String),
    SeriesId,
    Ts,
}

/// A literal a filter compares with.
enum Lit {
    Str(String),
    Int(i128),
    /// A timestamp as (floor, ceil) milliseconds.
    Time(i64, i64),
}

impl Default for ScanFilter {
    fn default() -> Self {
        Self {
            matchers: Vec::new(),
            series_ids: None,
            mint_ms: i64::MIN,
            maxt_ms: i64::MAX,
        }
    }
}

impl ScanFilter {
    /// The filter for a scan given the conjuncts DataFusion pushed down.
    pub fn from_exprs(exprs: &[Expr], has_ts: bool) -> Self {
        let mut f = Self::default();
        for e in exprs {
            f.absorb(e, has_ts);
        }
        f
    }

    /// The matchers to select with: never empty, since an empty list selects nothing.
    pub fn select_matchers(&self) -> Vec<Matcher> {
        if self.matchers.is_empty() {
            // `=~".*"` is no constraint for the postings index: every series.
            match Matcher::new(MatchOp::Regex, METRIC_NAME, ".*") {
                Ok(m) => vec![m],
                Err(_) => Vec::new(),
            }
        } else {
            self.matchers.clone()
        }
    }

    /// Whether `id` passes the series-id conjuncts.
    pub fn wants_id(&self, id: u64) -> bool {
        self.series_ids.as_ref().is_none_or(|ids| ids.contains(&id))
    }

    /// Whether `e` is a conjunct this scan understands (without changing anything).
    pub fn understands(e: &Expr, has_ts: bool) -> bool {
        Self::default().absorb(e, has_ts)
    }

    /// Narrows the filter by `e` if it is understood; returns whether it was.
    fn absorb(&mut self, e: &Expr, has_ts: bool) -> bool {
        match e {
            Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
                if let (Some(t), Some(l)) = (target(left), literal(right)) {
                    self.compare(t, *op, l, has_ts)
                } else if let (Some(t), Some(l), Some(op)) = (target(right), literal(left), op.swap()) {
                    self.compare(t, op, l, has_ts)
                } else {
                    false
                }
            }
            Expr::Between(Between {
                expr,
                negated: false,
                low,
                high,
            }) => match (target(expr), literal(low), literal(high)) {
                (Some(Target::Ts), Some(lo), Some(hi)) if has_ts => {
                    self.compare(Target::Ts, Operator::GtEq, lo, has_ts)
                        && self.compare(Target::Ts, Operator::LtEq, hi, has_ts)
                }
                _ => false,
            },
            Expr::InList(InList {
                expr,
                list,
                negated: false,
            }) => self.in_list(expr, list),
            _ => false,
        }
    }

    fn in_list(&mut self, expr: &Expr, list: &[Expr]) -> bool {
        let Some(lits) = list.iter().map(literal).collect::<Option<Vec<_>>>() else {
            return false;
        };
        match target(expr) {
            Some(Target::SeriesId) => {
                let ids = lits
                    .iter()
                    .filter_map(|l| match l {
                        Lit::Int(i) => u64::try_from(*i).ok(),
                        _ => None,
                    })
                    .collect();
                self.narrow_ids(ids);
                true
            }
            Some(t @ (Target::Name | Target::Label(_))) => {
                let mut alts = Vec::with_capacity(lits.len());
                for l in &lits {
                    let Lit::Str(s) = l else { return false };
                    alts.push(regex::escape(s));
                }
                let name = match t {
                    Target::Label(n) => n,
                    _ => METRIC_NAME.to_string(),
                };
                if alts.is_empty() {
                    return false;
                }
                match Matcher::new(MatchOp::Regex, name, alts.join("|")) {
                    Ok(m) => {
                        self.matchers.push(m);
                        true
                    }
                    Err(_) => false,
                }
            }
            _ => false,
        }
    }

    fn narrow_ids(&mut self, mut ids: Vec<u64>) {
        if let Some(prev) = &self.series_ids {
            ids.retain(|i| prev.contains(i));
        }
        self.series_ids = Some(ids);
    }

    fn compare(&mut self, t: Target, op: Operator, l: Lit, has_ts: bool) -> bool {
        match (t, l) {
            (Target::Name, Lit::Str(v)) => self.matcher(METRIC_NAME.to_string(), op, v),
            (Target::Label(n), Lit::Str(v)) => self.matcher(n, op, v),
            (Target::SeriesId, Lit::Int(i)) if op == Operator::Eq => {
                self.narrow_ids(u64::try_from(i).into_iter().collect());
                true
            }
            (Target::Ts, Lit::Time(floor, ceil)) if has_ts => {
                match op {
                    Operator::Eq => {
                        self.mint_ms = self.mint_ms.max(floor);
                        self.maxt_ms = self.maxt_ms.min(ceil);
                    }
                    Operator::Gt | Operator::GtEq => self.mint_ms = self.mint_ms.max(floor),
                    Operator::Lt | Operator::LtEq => self.maxt_ms = self.maxt_ms.min(ceil),
                    _ => return false,
                }
                true
            }
            _ => false,
        }
    }

    fn matcher(&mut self, name: String, op: Operator, value: String) -> bool {
        let op = match op {
            Operator::Eq => MatchOp::Equal,
            Operator::NotEq => MatchOp::NotEqual,
            _ => return false,
        };
        match Matcher::new(op, name, value) {
            Ok(m) => {
                self.matchers.push(m);
                true
            }
            Err(_) => false,
        }
    }
}

/// The column (or `labels['key']`) an expression reads, if it is one of ours.
fn target(e: &Expr) -> Option<Target> {
    match e {
        Expr::Column(c) => match c.name.as_str() {
            "name" => Some(Target::Name),
            "series_id" => Some(Target::SeriesId),
            "ts" => Some(Target::Ts),
            _ => None,
        },
        Expr::ScalarFunction(ScalarFunction { func, args }) if func.name() == "get_field" => {
            match args.as_slice() {
                [Expr::Column(c), key] if c.name == "labels" => match literal(key) {
                    Some(Lit::Str(k)) if k != METRIC_NAME => Some(Target::Label(k)),
                    _ => None,
                },
                _ => None,
            }
        }
        _ => None,
    }
}

fn literal(e: &Expr) -> Option<Lit> {
    let Expr::Literal(v, _) = e else { return None };
    Some(match v {
        ScalarValue::Utf8(Some(s)) | ScalarValue::Utf8View(Some(s)) | ScalarValue::LargeUtf8(Some(s)) => {
            Lit::Str(s.clone())
        }
        ScalarValue::Int8(Some(i)) => Lit::Int(i128::from(*i)),
        ScalarValue::Int16(Some(i)) => Lit::Int(i128::from(*i)),
        ScalarValue::Int32(Some(i)) => Lit::Int(i128::from(*i)),
        ScalarValue::Int64(Some(i)) => Lit::Int(i128::from(*i)),
        ScalarValue::UInt8(Some(i)) => Lit::Int(i128::from(*i)),
        ScalarValue::UInt16(Some(i)) => Lit::Int(i128::from(*i)),
        ScalarValue::UInt32(Some(i)) => Lit::Int(i128::from(*i)),
        ScalarValue::UInt64(Some(i)) => Lit::Int(i128::from(*i)),
        ScalarValue::TimestampSecond(Some(s), _) => {
            let ms = s.saturating_mul(1000);
            Lit::Time(ms, ms)
        }
        ScalarValue::TimestampMillisecond(Some(ms), _) => Lit::Time(*ms, *ms),
        ScalarValue::TimestampMicrosecond(Some(us), _) => Lit::Time(us.div_euclid(1000), ceil_div(*us, 1000)),
        ScalarValue::TimestampNanosecond(Some(ns), _) => {
            Lit::Time(ns.div_euclid(1_000_000), ceil_div(*ns, 1_000_000))
        }
        _ => return None,
    })
}

fn ceil_div(a: i64, b: i64) -> i64 {
    let q = a.div_euclid(b);
    if a.rem_euclid(b) == 0 { q } else { q + 1 }
}

#[cfg(test)]
mod tests {
    use datafusion::prelude::{col, lit};

    use super::*;

    #[test]
    fn name_and_time_bounds() {
        let exprs = [
            col("name").eq(lit("up")),
            col("ts").gt_eq(Expr::Literal(
                ScalarValue::TimestampMillisecond(Some(1000), None),
                None,
            )),
            Expr::Literal(ScalarValue::TimestampNanosecond(Some(2_500_000), None), None).gt(col("ts")),
        ];
        let f = ScanFilter::from_exprs(&exprs, true);
        assert_eq!(f.matchers.len(), 1);
        assert_eq!(f.matchers[0].value, "up");
        assert_eq!((f.mint_ms, f.maxt_ms), (1000, 3));
    }

    #[test]
    fn ids_and_unknown() {
        let exprs = [
            col("series_id").in_list(vec![lit(3u64), lit(4u64)], false),
            col("series_id").eq(lit(4u64)),
        ];
        let f = ScanFilter::from_exprs(&exprs, false);
        assert_eq!(f.series_ids, Some(vec![4]));
        assert!(!ScanFilter::understands(&col("value").gt(lit(1.0)), true));
        assert!(!ScanFilter::understands(&col("ts").gt(lit(1i64)), true));
        assert!(!ScanFilter::understands(
            &col("ts").gt(Expr::Literal(
                ScalarValue::TimestampMillisecond(Some(1), None),
                None
            )),
            false
        ));
    }
}
