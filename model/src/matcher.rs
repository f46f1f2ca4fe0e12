//! Label matchers (`=`, `!=`, `=~`, `!~`) with Prometheus semantics: regexes are fully anchored and
//! an absent label matches as the empty string.

use regex::Regex;

/// The four matcher operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MatchOp {
    /// `=`
    Equal,
    /// `!=`
    NotEqual,
    /// `=~`
    Regex,
    /// `!~`
    NotRegex,
}

/// An invalid matcher, e.g. a regex that does not compile.
#[derive(Debug, thiserror::Error)]
#[error("invalid regex {pattern:?} for label {name:?}: {source}")]
pub struct MatcherError {
    /// The label the matcher applies to.
    pub name: String,
    /// The pattern as written.
    pub pattern: String,
    /// Why it failed.
    #[source]
    pub source: regex::Error,
}

/// One label matcher.
#[derive(Clone, Debug)]
pub struct Matcher {
    /// Label name.
    pub name: String,
    /// Operator.
    pub op: MatchOp,
    /// The literal value or regex source as written.
    pub value: String,
    re: Option<Regex>,
}

impl Matcher {
    /// Creates a matcher, compiling (and anchoring) the regex for `=~`/`!~`.
    pub fn new(op: MatchOp, name: impl Into<String>, value: impl Into<String>) -> Result<Self, MatcherError> {
        let name = name.into();
        let value = value.into();
        let re = match op {
            MatchOp::Regex | MatchOp::NotRegex => Some(Regex::new(&format!("^(?s:{value})$")).map_err(
                |source| MatcherError {
                    name: name.clone(),
                    pattern: value.clone(),
                    source,
                },
            )?),
            _ => None,
        };
        Ok(Self { name, op, value, re })
    }

    /// `name="value"`.
    pub fn equal(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            op: MatchOp::Equal,
            value: value.into(),
            re: None,
        }
    }

    /// Whether a label value (`""` when the label is absent) matches.
    pub fn matches(&self, value: &str) -> bool {
        match self.op {
            MatchOp::Equal => self.value == value,
            MatchOp::NotEqual => self.value != value,
            MatchOp::Regex => self.re.as_ref().is_some_and(|r| r.is_match(value)),
            MatchOp::NotRegex => !self.re.as_ref().is_some_and(|r| r.is_match(value)),
        }
    }

    /// Whether this matcher matches the empty string, i.e. also selects series lacking the label.
    pub fn matches_empty(&self) -> bool {
        self.matches("")
    }
}

impl PartialEq for Matcher {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.op == other.op && self.value == other.value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regex_is_anchored() {
        let m = Matcher::new(MatchOp::Regex, "job", "api").expect("valid regex");
        assert!(m.matches("api"));
        assert!(!m.matches("web-api"));
        let m = Matcher::new(MatchOp::Regex, "job", "web-.*").expect("valid regex");
        assert!(m.matches("web-api"));
        let m = Matcher::new(MatchOp::Regex, "x", "a|b").expect("valid regex");
        assert!(m.matches("a") && m.matches("b") && !m.matches("ab"));
    }

    #[test]
    fn empty_matches_absent() {
        assert!(Matcher::equal("x", "").matches_empty());
        assert!(
            Matcher::new(MatchOp::NotRegex, "x", ".+")
                .expect("valid regex")
                .matches_empty()
        );
        assert!(
            !Matcher::new(MatchOp::Regex, "x", ".+")
                .expect("valid regex")
                .matches_empty()
        );
    }

    #[test]
    fn bad_regex_is_an_error() {
        assert!(Matcher::new(MatchOp::Regex, "x", "(").is_err());
    }
}
