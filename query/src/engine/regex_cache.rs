//! Compiled `=~`/`!~` matchers kept across queries. Dashboards send the same selectors on every
//! refresh, and compiling a regex cost a small panel's query more than reading its series did
//! (about 40% of `sum(irate(x{svc=~"a.b"}[5m]))` over 20 series). A compiled regex depends only
//! on its pattern, so a process-wide table is safe; it is bounded by emptying it when full.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock, PoisonError};

use meshfed_model::{MatchOp, Matcher};

use crate::error::{QueryError, Result};

/// Most distinct (label, operator, pattern) entries kept.
const CAPACITY: usize = 1024;

type Key = (String, bool, String);

static CACHE: OnceLock<Mutex<HashMap<Key, Matcher>>> = OnceLock::new();

/// The regex matcher `name op pattern` (`op` is `Regex` or `NotRegex`), compiled once.
pub(crate) fn regex_matcher(op: MatchOp, name: &str, pattern: &str) -> Result<Matcher> {
    let key = (name.to_owned(), op == MatchOp::NotRegex, pattern.to_owned());
    let cache = CACHE.get_or_init(Default::default);
    // Poisoning only follows a panic elsewhere; the table itself is never left half-updated.
    if let Some(m) = cache.lock().unwrap_or_else(PoisonError::into_inner).get(&key) {
        return Ok(m.clone());
    }
    let m = Matcher::new(op, name, pattern).map_err(|e| QueryError::bad(e.to_string()))?;
    let mut table = cache.lock().unwrap_or_else(PoisonError::into_inner);
    if table.len() >= CAPACITY {
        table.clear();
    }
    table.insert(key, m.clone());
    Ok(m)
}
