//! Byte-level scanning shared by both parsers: names, quoted strings, numbers and line tracking.
//!
//! Every stop byte the scanner looks for is ASCII, so every offset it produces is a char boundary
//! and slicing the body never panics.

use std::borrow::Cow;

use super::ParseError;
use crate::labels::{CompactString, Label, Labels, METRIC_NAME, known_name};

/// A raw label pair borrowed from the body; the value is unescaped (owned only if it had escapes).
pub(super) type RawLabel<'a> = (&'a str, Cow<'a, str>);

/// Where a label scanner puts the pairs it finds: a `Vec` when building label sets, `()` when only
/// checking the syntax (streaming).
pub(super) trait LabelSink<'a> {
    /// Takes one pair; `value` is as written between the quotes, `escaped` when it has escapes.
    fn push(&mut self, name: &'a str, value: &'a str, escaped: bool);
}

impl<'a> LabelSink<'a> for Vec<RawLabel<'a>> {
    #[inline]
    fn push(&mut self, name: &'a str, value: &'a str, escaped: bool) {
        let value = if escaped {
            Cow::Owned(unescape(value, true))
        } else {
            Cow::Borrowed(value)
        };
        Vec::push(self, (name, value));
    }
}

impl<'a> LabelSink<'a> for () {
    #[inline]
    fn push(&mut self, _: &'a str, _: &'a str, _: bool) {}
}

/// A cursor over an exposition body that knows the current line.
pub(super) struct Lexer<'a> {
    pub src: &'a str,
    pub b: &'a [u8],
    pub pos: usize,
    /// 1-based number of the line `line_start` begins.
    pub line: usize,
    pub line_start: usize,
}

/// A scan failure: where and why. Turned into a [`ParseError`] by [`Lexer::error`].
pub(super) struct Fail {
    pub pos: usize,
    pub reason: Cow<'static, str>,
}

pub(super) type Scan<T> = Result<T, Fail>;

/// Fails at `pos` with `reason`.
pub(super) fn fail<T>(pos: usize, reason: impl Into<Cow<'static, str>>) -> Scan<T> {
    Err(Fail {
        pos,
        reason: reason.into(),
    })
}

impl<'a> Lexer<'a> {
    pub fn new(src: &'a str) -> Self {
        Self {
            src,
            b: src.as_bytes(),
            pos: 0,
            line: 1,
            line_start: 0,
        }
    }

    pub fn at_end(&self) -> bool {
        self.pos >= self.b.len()
    }

    pub fn peek(&self) -> Option<u8> {
        self.b.get(self.pos).copied()
    }

    /// True at a newline or the end of the body.
    pub fn at_eol(&self) -> bool {
        matches!(self.peek(), None | Some(b'\n'))
    }

    /// Consumes `c` if it is next.
    pub fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// Skips spaces and tabs.
    pub fn skip_blanks(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.pos += 1;
        }
    }

    /// The offset of the end of the current line (its `\n` or the end of the body).
    pub fn line_end(&self) -> usize {
        let from = self.pos.min(self.b.len());
        memchr::memchr(b'\n', &self.b[from..]).map_or(self.b.len(), |i| from + i)
    }

    /// Moves past the end of the current line and starts the next.
    pub fn next_line(&mut self) {
        let end = self.line_end();
        self.pos = (end + 1).min(self.b.len());
        if end < self.b.len() {
            self.line += 1;
            self.line_start = self.pos;
        }
    }

    /// Turns a scan failure into an error positioned on the current line.
    pub fn error(&self, f: Fail) -> ParseError {
        ParseError::at(self.src, self.line, self.line_start, f.pos, f.reason)
    }

    /// Scans a metric name (`[a-zA-Z_:][a-zA-Z0-9_:]*`) or a label name (no `:`).
    #[inline]
    pub fn name(&mut self, metric: bool) -> Option<&'a str> {
        let start = self.pos;
        let (first, rest) = if metric {
            (METRIC_START, METRIC_CONT)
        } else {
            (LABEL_START, LABEL_CONT)
        };
        if self
            .peek()
            .is_none_or(|c| NAME_CLASS[usize::from(c)] & first == 0)
        {
            return None;
        }
        let tail = &self.b[start + 1..];
        let len = tail
            .iter()
            .position(|&c| NAME_CLASS[usize::from(c)] & rest == 0)
            .unwrap_or(tail.len());
        self.pos = start + 1 + len;
        Some(&self.src[start..self.pos])
    }

    /// Scans bytes up to (not including) the first one for which `stop` holds.
    pub fn token(&mut self, stop: impl Fn(u8) -> bool) -> &'a str {
        let start = self.pos;
        while self.peek().is_some_and(|c| !stop(c)) {
            self.pos += 1;
        }
        &self.src[start..self.pos]
    }

    /// Scans a double-quoted label value at the cursor: the text between the quotes as written (any
    /// UTF-8; `\\`, `\"` and `\n` are escapes, see [`unescape`]), and whether it contains escapes.
    /// A raw newline inside the quotes is allowed only when `multiline` (the 0.0.4 lexer accepts it).
    #[inline]
    pub fn quoted_raw(&mut self, multiline: bool) -> Scan<(&'a str, bool)> {
        let open = self.pos;
        if !self.eat(b'"') {
            return fail(open, "expected '\"' to start a label value");
        }
        let start = self.pos;
        let (line, line_start) = (self.line, self.line_start);
        let mut escaped = false;
        loop {
            let next = value_stop(&self.b[self.pos..]);
            let Some(i) = next else {
                self.pos = self.b.len();
                (self.line, self.line_start) = (line, line_start);
                return fail(open, "unterminated label value");
            };
            self.pos += i;
            match self.b[self.pos] {
                b'"' => break,
                b'\\' if !matches!(self.b.get(self.pos + 1), None | Some(b'\n')) => {
                    escaped = true;
                    self.pos += 2;
                }
                b'\n' if multiline => {
                    self.pos += 1;
                    self.line += 1;
                    self.line_start = self.pos;
                }
                _ => {
                    (self.line, self.line_start) = (line, line_start);
                    return fail(open, "unterminated label value");
                }
            }
        }
        let raw = &self.src[start..self.pos];
        self.pos += 1;
        Ok((raw, escaped))
    }
}

/// How many bytes of a label value are scanned eight at a time before handing over to memchr.
const SHORT_VALUE: usize = 64;

/// The offset of the first `"`, `\\` or newline in `b`: the end of a run of plain label-value
/// text. Label values are mostly short (Istio's are 3–60 bytes), where memchr's setup costs more
/// than the search, so the first [`SHORT_VALUE`] bytes are tested a word at a time.
#[inline]
fn value_stop(b: &[u8]) -> Option<usize> {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    /// High bit set in each byte of `w` equal to `c`, and possibly in bytes above such a byte
    /// (so only the lowest set bit is exact).
    #[inline]
    fn matches(w: u64, c: u8) -> u64 {
        let x = w ^ (ONES * u64::from(c));
        x.wrapping_sub(ONES) & !x & HIGHS
    }
    let head = &b[..b.len().min(SHORT_VALUE)];
    let mut words = head.chunks_exact(8);
    let mut at = 0;
    for chunk in &mut words {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(chunk);
        let w = u64::from_le_bytes(bytes);
        let m = matches(w, b'"') | matches(w, b'\\') | matches(w, b'\n');
        if m != 0 {
            return Some(at + m.trailing_zeros() as usize / 8);
        }
        at += 8;
    }
    if let Some(i) = words
        .remainder()
        .iter()
        .position(|&c| matches!(c, b'"' | b'\\' | b'\n'))
    {
        return Some(at + i);
    }
    at += words.remainder().len();
    memchr::memchr3(b'"', b'\\', b'\n', &b[at..]).map(|i| i + at)
}

const METRIC_START: u8 = 1;
const METRIC_CONT: u8 = 2;
const LABEL_START: u8 = 4;
const LABEL_CONT: u8 = 8;

/// Which name positions each byte may take, as bit flags (`[a-zA-Z_]` anywhere, digits after the
/// first byte, `:` only in metric names).
static NAME_CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        let alpha = b.is_ascii_alphabetic() || b == b'_';
        if alpha {
            t[c] = METRIC_START | METRIC_CONT | LABEL_START | LABEL_CONT;
        } else if b.is_ascii_digit() {
            t[c] = METRIC_CONT | LABEL_CONT;
        } else if b == b':' {
            t[c] = METRIC_START | METRIC_CONT;
        }
        c += 1;
    }
    t
};

/// Replaces `\\` and `\n` (and `\"` when `quote`) by the characters they stand for; any other
/// escape is kept as written (as Prometheus and `prometheus_client` do).
pub(super) fn unescape(raw: &str, quote: bool) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('n') => out.push('\n'),
            Some('"') if quote => out.push('"'),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

/// Unescapes `# HELP` text (`\\` and `\n` only), borrowing when there is nothing to do.
pub(super) fn unescape_help(raw: &str) -> String {
    if raw.contains('\\') {
        unescape(raw, false)
    } else {
        raw.to_owned()
    }
}

/// Parses a sample value: a decimal float, `NaN`, `+Inf`/`-Inf`/`Inf` (any case), no underscores or
/// hex. Integers of up to 15 digits take a fast exact path.
pub(super) fn parse_float(s: &str) -> Option<f64> {
    let b = s.as_bytes();
    if !b.is_empty() && b.len() <= 15 && b.iter().all(u8::is_ascii_digit) {
        return Some(b.iter().fold(0u64, |acc, &c| acc * 10 + u64::from(c - b'0')) as f64);
    }
    // Rust's grammar is the Prometheus one minus hex floats; reject its extras explicitly.
    if b.is_empty() || b.contains(&b'_') {
        return None;
    }
    s.parse::<f64>().ok()
}

/// Parses an integer millisecond timestamp (0.0.4).
pub(super) fn parse_ms(s: &str) -> Option<i64> {
    let digits = s.strip_prefix('-').unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    s.parse::<i64>().ok()
}

/// Parses an OpenMetrics timestamp (float seconds) into whole milliseconds, truncating toward zero
/// as Prometheus does. Plain decimals are converted exactly; the seconds are returned too, for
/// ordering checks. `None` for NaN, infinities and malformed input.
pub(super) fn parse_secs(s: &str) -> Option<(i64, f64)> {
    let secs = parse_float(s).filter(|f| f.is_finite())?;
    let body = s.strip_prefix(['-', '+']).unwrap_or(s);
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    let exact = !int.is_empty()
        && int.len() <= 15
        && int.bytes().all(|c| c.is_ascii_digit())
        && frac.bytes().all(|c| c.is_ascii_digit());
    let ms = if exact {
        let whole: i64 = int.parse().ok()?;
        let sub = frac
            .bytes()
            .chain(std::iter::repeat(b'0'))
            .take(3)
            .fold(0i64, |a, c| a * 10 + i64::from(c - b'0'));
        let ms = whole * 1000 + sub;
        if s.starts_with('-') { -ms } else { ms }
    } else {
        // `as` saturates, so huge timestamps clamp instead of wrapping.
        (secs * 1000.0) as i64
    };
    Some((ms, secs))
}

/// Builds a sorted [`Labels`] from a sample name and its raw labels, failing with the first
/// duplicated label name. Empty values are dropped after the duplicate check.
pub(super) fn build_labels<'a>(name: Option<&'a str>, raw: &mut Vec<RawLabel<'a>>) -> Result<Labels, String> {
    LabelSorter::default().build(name, raw)
}

/// Turns raw label pairs into sorted [`Labels`], remembering the sort order of the last few
/// label-name layouts: a family's samples nearly always repeat one (Envoy writes every series of a
/// family with the same names in the same order), and a histogram alternates between two (buckets
/// with `le`, then `_sum`/`_count` without), so a sample with a known layout skips the sort and the
/// duplicate check.
#[derive(Default)]
pub(super) struct LabelSorter<'a> {
    /// Up to [`LAYOUTS`] layouts, replaced round-robin.
    layouts: Vec<Layout<'a>>,
    /// The layout the previous sample used: tried first.
    last: usize,
    /// The layout replaced next when all slots are taken.
    evict: usize,
}

/// `a == b` for label names, compared a word at a time in line: names are short (Istio's are
/// 2–30 bytes) and a sample compares every one of its names with its layout's, where a `memcmp`
/// call per name cost more than the comparison.
#[inline]
fn same_name(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let (mut wa, mut wb) = (a.chunks_exact(8), b.chunks_exact(8));
    for (x, y) in (&mut wa).zip(&mut wb) {
        let word = |c: &[u8]| {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            u64::from_ne_bytes(w)
        };
        if word(x) != word(y) {
            return false;
        }
    }
    wa.remainder().iter().zip(wb.remainder()).all(|(x, y)| x == y)
}

/// Layouts remembered by a [`LabelSorter`].
const LAYOUTS: usize = 4;

#[derive(Default)]
struct Layout<'a> {
    /// The label names, in input order (`__name__` first when present).
    names: Vec<&'a str>,
    /// Input indices in label-name order.
    order: Vec<usize>,
    /// The names in label-name order, as the output's names: cloning one that is inline or a
    /// [`known_name`] copies 24 bytes, where `String` names were an allocation per label.
    owned: Vec<CompactString>,
    /// The first repeated name of that layout.
    duplicate: Option<&'a str>,
}

impl<'a> LabelSorter<'a> {
    /// Builds the label set of a sample named `name` (or of an exemplar, without a name) from its
    /// raw labels, draining them.
    pub fn build(&mut self, name: Option<&'a str>, raw: &mut Vec<RawLabel<'a>>) -> Result<Labels, String> {
        let skip = usize::from(name.is_none());
        let n = raw.len() + 1 - skip;
        let name_at = |i: usize| {
            if i + skip == 0 {
                METRIC_NAME
            } else {
                raw[i + skip - 1].0
            }
        };
        let same = |l: &Layout<'a>| l.names.len() == n && (0..n).all(|i| same_name(l.names[i], name_at(i)));
        let known = if self.layouts.get(self.last).is_some_and(same) {
            Some(self.last)
        } else {
            self.layouts.iter().position(same)
        };
        let at = match known {
            Some(at) => at,
            None => {
                let at = if self.layouts.len() < LAYOUTS {
                    self.layouts.push(Layout::default());
                    self.layouts.len() - 1
                } else {
                    self.evict = (self.evict + 1) % LAYOUTS;
                    self.evict
                };
                let l = &mut self.layouts[at];
                l.names.clear();
                l.names.extend((0..n).map(name_at));
                l.order.clear();
                l.order.extend(0..n);
                let names = &l.names;
                l.order.sort_unstable_by(|&a, &b| names[a].cmp(names[b]));
                l.duplicate = l
                    .order
                    .windows(2)
                    .find(|w| names[w[0]] == names[w[1]])
                    .map(|w| names[w[0]]);
                l.owned.clear();
                l.owned.extend(l.order.iter().map(|&i| known_name(names[i])));
                at
            }
        };
        self.last = at;
        let layout = &self.layouts[at];
        if let Some(d) = layout.duplicate {
            raw.clear();
            return Err(format!("duplicate label name {d:?}"));
        }
        let mut v = Vec::with_capacity(n);
        for (&i, owned) in layout.order.iter().zip(&layout.owned) {
            let i = i + skip;
            if i == 0 {
                if let Some(name) = name.filter(|n| !n.is_empty()) {
                    v.push(Label {
                        name: owned.clone(),
                        value: CompactString::new(name),
                    });
                }
                continue;
            }
            let value = &mut raw[i - 1].1;
            if value.is_empty() {
                continue;
            }
            v.push(Label {
                name: owned.clone(),
                value: CompactString::from(std::mem::take(value)),
            });
        }
        raw.clear();
        Ok(Labels::from_sorted_unique(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats() {
        for (s, v) in [
            ("1", 1.0),
            ("-1.5", -1.5),
            ("1e3", 1000.0),
            ("+Inf", f64::INFINITY),
            ("-Inf", -f64::INFINITY),
        ] {
            assert_eq!(parse_float(s), Some(v), "{s}");
        }
        assert!(parse_float("NaN").is_some_and(f64::is_nan));
        for s in ["", "1_2", "0x1", "0x1p-3", "a", " 1", "1 "] {
            assert_eq!(parse_float(s), None, "{s}");
        }
        assert_eq!(parse_float("16440392441958861461"), Some(16440392441958861461.0));
    }

    #[test]
    fn seconds_to_ms_exactly() {
        assert_eq!(parse_secs("1.234").map(|t| t.0), Some(1234));
        assert_eq!(parse_secs("-1.5").map(|t| t.0), Some(-1500));
        assert_eq!(parse_secs("1.5e3").map(|t| t.0), Some(1_500_000));
        assert_eq!(parse_secs("000").map(|t| t.0), Some(0));
        assert_eq!(parse_secs("NaN"), None);
        assert_eq!(parse_secs("Inf"), None);
    }

    #[test]
    fn value_stop_finds_the_first_stop_byte() {
        let naive = |b: &[u8]| b.iter().position(|&c| matches!(c, b'"' | b'\\' | b'\n'));
        let fill = "aé\u{80}\u{ff}zZ09,={}".as_bytes();
        for len in 0..150 {
            let plain: Vec<u8> = (0..len).map(|i| fill[i % fill.len()]).collect();
            assert_eq!(value_stop(&plain), None, "{len}");
            for at in 0..len {
                for stop in [b'"', b'\\', b'\n'] {
                    let mut b = plain.clone();
                    b[at] = stop;
                    if at + 1 < len {
                        b[at + 1] = b'"';
                    }
                    assert_eq!(value_stop(&b), naive(&b), "{len} {at}");
                }
            }
        }
    }

    #[test]
    fn same_name_is_string_equality() {
        let names = [
            "",
            "a",
            "b",
            "ab",
            "le",
            "abcdefgh",
            "abcdefgi",
            "abcdefghi",
            "abcdefghj",
        ];
        for a in names {
            for b in names {
                assert_eq!(same_name(a, b), a == b, "{a:?} {b:?}");
            }
        }
        let long = "destination_canonical_revision";
        let copy = String::from_utf8(long.as_bytes().to_vec()).unwrap_or_default();
        assert!(same_name(long, &copy));
        assert!(!same_name(long, "destination_canonical_revisioN"));
    }

    #[test]
    fn unescaping_keeps_unknown_escapes() {
        assert_eq!(unescape(r#"a\\b\"c\nd\z"#, true), "a\\b\"c\nd\\z");
        assert_eq!(unescape_help(r#"\"\n"#), "\\\"\n");
    }
}
