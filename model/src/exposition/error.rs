//! Parse errors with a 1-based line and column and a short excerpt of the offending input.

use std::fmt;

/// The most characters of input quoted in an error.
const EXCERPT_CHARS: usize = 32;

/// A problem in an exposition body.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct ParseError {
    /// 1-based line number.
    pub line: usize,
    /// 1-based column, counted in characters.
    pub column: usize,
    /// What is wrong.
    pub reason: String,
    /// The input from the error position to the end of the line, cut to a few dozen characters.
    pub excerpt: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: {} (near {:?})",
            self.line, self.column, self.reason, self.excerpt
        )
    }
}

impl ParseError {
    /// An error at byte offset `pos` of `body`, on line `line` (1-based) starting at byte
    /// `line_start`. Offsets inside a character are moved back to its start, so this never panics.
    pub(crate) fn at(
        body: &str,
        line: usize,
        line_start: usize,
        pos: usize,
        reason: impl Into<String>,
    ) -> Self {
        let pos = floor_char_boundary(body, pos.min(body.len()));
        let line_start = floor_char_boundary(body, line_start.min(pos));
        let column = body[line_start..pos].chars().count() + 1;
        let rest = &body[pos..];
        let rest = &rest[..rest.find('\n').unwrap_or(rest.len())];
        let excerpt: String = rest.chars().take(EXCERPT_CHARS).collect();
        Self {
            line,
            column,
            reason: reason.into(),
            excerpt,
        }
    }
}

/// The largest char boundary `<= pos`.
fn floor_char_boundary(s: &str, mut pos: usize) -> usize {
    while pos > 0 && !s.is_char_boundary(pos) {
        pos -= 1;
    }
    pos
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_counts_characters_and_excerpt_stops_at_newline() {
        let body = "ok 1\näb{x} 2\nnext";
        let e = ParseError::at(body, 2, 5, 8, "bad");
        assert_eq!((e.line, e.column), (2, 3));
        assert_eq!(e.excerpt, "{x} 2");
        assert_eq!(e.to_string(), "2:3: bad (near \"{x} 2\")");
    }

    #[test]
    fn offsets_inside_a_character_do_not_panic() {
        let body = "ääää";
        let e = ParseError::at(body, 1, 1, 3, "bad");
        assert_eq!(e.column, 2);
    }
}
