//! OpenMetrics 1.0.0: line syntax and family assembly.
//!
//! The syntax is strict (single spaces, no blank lines, mandatory `# EOF`, `# ` lines only for
//! `HELP`/`TYPE`/`UNIT`/`EOF`). Families are assembled the way the reference parser does it: a
//! metadata line for a new name or a sample outside the current family's allowed names starts the
//! next family; the semantic rules live in [`super::om_rules`].

use std::collections::HashSet;

use super::lexer::{
    Fail, LabelSink, LabelSorter, Lexer, RawLabel, Scan, build_labels, fail, parse_float, parse_secs,
    unescape_help,
};
use super::om_rules::{self, Group};
use super::text::Emit;
use super::{Exemplar, ExpositionSample, Format, MetricFamily, MetricType, ParseError, RawSample};

/// The most characters an exemplar's label names and values may have together.
const EXEMPLAR_MAX_CHARS: usize = 128;

/// Where a line starts: its 1-based number and byte offset.
#[derive(Clone, Copy, Debug)]
pub(super) struct LinePos {
    pub line: usize,
    pub start: usize,
}

/// The family being assembled (always the last of `families`).
pub(super) struct Current {
    /// Whether `# TYPE` was given (a family started by a sample counts as typed `unknown`).
    pub typed: bool,
    pub at: LinePos,
    /// Where each sample of the family is, for errors found when the family is complete.
    pub sample_at: Vec<LinePos>,
    pub group: Group,
}

struct OmParser<'a, 'f> {
    /// Whether to apply the semantic rules ([`super::Validation::Strict`]).
    strict: bool,
    lx: Lexer<'a>,
    families: Vec<MetricFamily>,
    cur: Option<Current>,
    /// Every sample name a finished family may use, to detect clashes and interleaving.
    seen_names: HashSet<String>,
    labels: Vec<RawLabel<'a>>,
    /// Scratch for an exemplar's label names when streaming.
    names: Vec<&'a str>,
    sorter: LabelSorter<'a>,
    eof: bool,
    errors: Vec<ParseError>,
    /// Where samples go when streaming; `None` collects them into `families` (which then hold
    /// only names and types).
    emit: Option<Emit<'f, 'a>>,
}

/// Parses an OpenMetrics body, pushing errors; stops at the first when `fail_fast`. Only syntax is
/// checked unless `strict`.
pub(super) fn parse(
    body: &str,
    strict: bool,
    errors: &mut Vec<ParseError>,
    fail_fast: bool,
) -> Vec<MetricFamily> {
    let mut p = OmParser::new(body, strict, None);
    p.run(fail_fast);
    errors.append(&mut p.errors);
    p.families
}

/// Streams the samples of an OpenMetrics body (scrape validation) to `emit` without building label
/// sets; stops at the first error.
pub(super) fn for_each<'a>(body: &'a str, emit: Emit<'_, 'a>) -> Result<(), ParseError> {
    let mut p = OmParser::new(body, false, Some(emit));
    p.run(true);
    p.errors.into_iter().next().map_or(Ok(()), Err)
}

/// Scans the label pairs of an OpenMetrics series text (`name{...}`) into `out`.
pub(super) fn series_labels<'a>(series: &'a str, out: &mut Vec<RawLabel<'a>>) -> Scan<()> {
    let mut lx = Lexer::new(series);
    lx.name(true);
    if lx.eat(b'{') {
        label_set(&mut lx, out)?;
    }
    Ok(())
}

impl<'a, 'f> OmParser<'a, 'f> {
    fn new(body: &'a str, strict: bool, emit: Option<Emit<'f, 'a>>) -> Self {
        OmParser {
            strict,
            lx: Lexer::new(body),
            families: Vec::new(),
            cur: None,
            seen_names: HashSet::new(),
            labels: Vec::new(),
            names: Vec::new(),
            sorter: LabelSorter::default(),
            eof: false,
            errors: Vec::new(),
            emit,
        }
    }

    fn run(&mut self, fail_fast: bool) {
        let body = self.lx.src;
        let stop = |p: &Self| fail_fast && !p.errors.is_empty();
        while !self.lx.at_end() && !stop(self) {
            if let Err(f) = self.line() {
                self.labels.clear();
                let e = self.lx.error(f);
                self.errors.push(e);
            }
            self.lx.next_line();
        }
        if !stop(self) {
            self.finish_family();
            if !self.eof {
                let e = ParseError::at(
                    body,
                    self.lx.line,
                    self.lx.line_start,
                    body.len(),
                    "missing # EOF at the end",
                );
                self.errors.push(e);
            }
        }
    }
}

impl<'a> OmParser<'a, '_> {
    fn here(&self) -> LinePos {
        LinePos {
            line: self.lx.line,
            start: self.lx.line_start,
        }
    }

    fn line(&mut self) -> Scan<()> {
        let pos = self.lx.pos;
        let end = self.lx.line_end();
        let line = &self.lx.src[pos..end];
        if self.eof {
            return fail(pos, "text after # EOF");
        }
        if line.is_empty() {
            return fail(pos, "blank line");
        }
        if line == "# EOF" {
            self.eof = true;
            self.lx.pos = end;
            return Ok(());
        }
        if line.starts_with('#') {
            self.metadata()
        } else {
            self.sample()
        }
    }

    /// `# HELP name text`, `# TYPE name type` or `# UNIT name unit`.
    fn metadata(&mut self) -> Scan<()> {
        let lx = &mut self.lx;
        let start = lx.pos;
        let keyword = lx.src[start..].get(2..6).unwrap_or("");
        if !lx.src[start..].starts_with("# ") || !matches!(keyword, "HELP" | "TYPE" | "UNIT") {
            return fail(
                start,
                "invalid line: a comment must be # HELP, # TYPE, # UNIT or # EOF",
            );
        }
        lx.pos += 6;
        if !lx.eat(b' ') {
            return fail(lx.pos, format!("expected ' ' after {keyword}"));
        }
        let name_pos = lx.pos;
        let name = lx
            .name(true)
            .map_or_else(|| fail(name_pos, "expected a metric name"), Ok)?;
        if !lx.eat(b' ') {
            return fail(lx.pos, "expected ' ' after the metric name");
        }
        let text_pos = lx.pos;
        let end = lx.line_end();
        let text = &lx.src[text_pos..end];
        lx.pos = end;

        let same = self.families.last().is_some_and(|f| f.name == name) && self.cur.is_some();
        let strict = self.strict;
        if strict && same && self.families.last().is_some_and(|f| !f.samples.is_empty()) {
            return fail(start, format!("metadata for {name} after its samples"));
        }
        if !same {
            self.finish_family();
            self.start_family(name, false);
        }
        let streaming = self.emit.is_some();
        let (fam, cur) = self.current_mut();
        match keyword {
            "HELP" if fam.help.is_some() && strict => return fail(start, format!("second HELP for {name}")),
            "HELP" if streaming => {}
            "HELP" => fam.help = fam.help.take().or_else(|| Some(unescape_help(text))),
            "UNIT" if fam.unit.is_some() && strict => return fail(start, format!("second UNIT for {name}")),
            "UNIT" => fam.unit = fam.unit.take().or_else(|| Some(text.to_owned())),
            _ => {
                let t = MetricType::from_type_word(text, Format::OpenMetrics);
                let t = t.map_or_else(|| fail(text_pos, format!("invalid metric type {text:?}")), Ok)?;
                if cur.typed && strict {
                    return fail(start, format!("second TYPE for {name}"));
                }
                if !cur.typed {
                    fam.metric_type = t;
                    cur.typed = true;
                }
            }
        }
        Ok(())
    }

    /// `name{labels} value [timestamp] [# {labels} value [timestamp]]`.
    fn sample(&mut self) -> Scan<()> {
        let start = self.lx.pos;
        let here = self.here();
        let name = self
            .lx
            .name(true)
            .map_or_else(|| fail(start, "expected a metric name"), Ok)?;
        let streaming = self.emit.is_some();
        if self.lx.eat(b'{') {
            if streaming {
                label_set(&mut self.lx, &mut ())?;
            } else {
                label_set(&mut self.lx, &mut self.labels)?;
            }
        }
        let series_end = self.lx.pos;
        let (value, value_pos) = number(&mut self.lx, "value")?;
        let mut timestamp = None;
        let mut exemplar = None;
        if self.lx.eat(b' ') {
            if self.lx.peek() != Some(b'#') {
                timestamp = Some(timestamp_at(&mut self.lx)?);
            }
            if self.lx.peek() == Some(b'#') || (timestamp.is_some() && self.lx.eat(b' ')) {
                exemplar = self.exemplar()?;
            }
        }
        if !self.lx.at_eol() {
            return fail(self.lx.pos, "unexpected text after the sample");
        }
        let labels = if streaming {
            crate::Labels::empty()
        } else {
            self.sorter
                .build(Some(name), &mut self.labels)
                .or_else(|r| fail(start, r))?
        };

        let accepted = self.cur.is_some()
            && self.families.last().is_some_and(|f| {
                name.strip_prefix(f.name.as_str())
                    .is_some_and(|suffix| f.metric_type.suffixes(Format::OpenMetrics).contains(&suffix))
            });
        if !accepted {
            self.finish_family();
            self.start_family(name, true);
        }
        let strict = self.strict;
        if streaming {
            let sample = RawSample {
                series_text: &self.lx.src[start..series_end],
                name,
                value,
                timestamp_ms: timestamp.map(|t| t.0),
                metric_type: self.current_mut().0.metric_type,
                line: here.line,
                line_start: here.start,
                format: Format::OpenMetrics,
            };
            if let Some(emit) = self.emit.as_mut() {
                emit(sample);
            }
            return Ok(());
        }
        let (fam, cur) = self.current_mut();
        let sample = ExpositionSample {
            labels,
            value,
            timestamp_ms: timestamp.map(|t| t.0),
            exemplar,
        };
        let rules = match strict {
            true => om_rules::check_sample(fam, &mut cur.group, &sample, timestamp.map(|t| t.1)),
            false => Ok(()),
        };
        // Keep a sample that breaks a rule, so the family checks that follow do not cascade.
        cur.sample_at.push(here);
        fam.samples.push(sample);
        rules.map_err(|(reason, at_value)| Fail {
            pos: if at_value { value_pos } else { start },
            reason,
        })
    }

    /// `# {labels} value [timestamp]`, from the `#`; `None` when streaming (only the syntax is
    /// checked).
    fn exemplar(&mut self) -> Scan<Option<Exemplar>> {
        let (strict, streaming) = (self.strict, self.emit.is_some());
        let lx = &mut self.lx;
        let start = lx.pos;
        if !(lx.eat(b'#') && lx.eat(b' ') && lx.eat(b'{')) {
            return fail(start, "expected an exemplar \"# {labels} value\"");
        }
        let mut raw = Vec::new();
        if streaming {
            // Only the names, to reject a repeated one as `parse` does; no per-sample allocation.
            self.names.clear();
            label_set(lx, &mut NameSink(&mut self.names))?;
        } else {
            label_set(lx, &mut raw)?;
        }
        let chars: usize = raw.iter().map(|(n, v)| n.len() + v.chars().count()).sum();
        if strict && chars > EXEMPLAR_MAX_CHARS {
            return fail(
                start,
                format!("exemplar labels have {chars} characters, more than {EXEMPLAR_MAX_CHARS}"),
            );
        }
        let (value, _) = number(lx, "exemplar value")?;
        let timestamp_ms = if lx.eat(b' ') {
            Some(timestamp_at(lx)?.0)
        } else {
            None
        };
        if streaming {
            self.names.sort_unstable();
            return match self.names.windows(2).find(|w| w[0] == w[1]) {
                Some(w) => fail(start, format!("duplicate label name {:?}", w[0])),
                None => Ok(None),
            };
        }
        let labels = build_labels(None, &mut raw).or_else(|r| fail(start, r))?;
        Ok(Some(Exemplar {
            labels,
            value,
            timestamp_ms,
        }))
    }

    fn current_mut(&mut self) -> (&mut MetricFamily, &mut Current) {
        match (self.families.last_mut(), self.cur.as_mut()) {
            (Some(f), Some(c)) => (f, c),
            // Callers run `start_family` first, which sets both.
            _ => unreachable!("no current family"),
        }
    }

    fn start_family(&mut self, name: &str, from_sample: bool) {
        self.families.push(MetricFamily::new(name, MetricType::Unknown));
        let at = self.here();
        self.cur = Some(Current {
            typed: from_sample,
            at,
            sample_at: Vec::new(),
            group: Group::default(),
        });
    }

    /// Applies the whole-family rules to the current family, if any.
    fn finish_family(&mut self) {
        let (Some(cur), Some(fam)) = (self.cur.take(), self.families.last()) else {
            return;
        };
        if !self.strict {
            return;
        }
        if let Err((reason, at)) = om_rules::check_family(fam, &cur, &mut self.seen_names) {
            let e = ParseError::at(self.lx.src, at.line, at.start, at.start, reason);
            self.errors.push(e);
        }
    }
}

/// Keeps only label names (exemplars when streaming).
struct NameSink<'s, 'a>(&'s mut Vec<&'a str>);

impl<'a> LabelSink<'a> for NameSink<'_, 'a> {
    fn push(&mut self, name: &'a str, _: &'a str, _: bool) {
        self.0.push(name);
    }
}

/// A strict OpenMetrics label set after `{`, through `}`: `name="value"` pairs joined by single
/// commas, no blanks, no trailing comma.
fn label_set<'a>(lx: &mut Lexer<'a>, out: &mut impl LabelSink<'a>) -> Scan<()> {
    if lx.eat(b'}') {
        return Ok(());
    }
    loop {
        let name_pos = lx.pos;
        let name = lx
            .name(false)
            .map_or_else(|| fail(name_pos, "expected a label name"), Ok)?;
        if !lx.eat(b'=') {
            return fail(lx.pos, "expected '=' after the label name");
        }
        let (value, escaped) = lx.quoted_raw(false)?;
        out.push(name, value, escaped);
        if lx.eat(b'}') {
            return Ok(());
        }
        if !lx.eat(b',') {
            return fail(lx.pos, "expected ',' or '}' after the label value");
        }
    }
}

/// `' '` then a float token; returns the value and where it starts.
fn number(lx: &mut Lexer<'_>, what: &str) -> Scan<(f64, usize)> {
    if !lx.eat(b' ') {
        return fail(lx.pos, format!("expected ' ' before the {what}"));
    }
    let pos = lx.pos;
    let raw = lx.token(|c| c == b' ' || c == b'\n');
    match parse_float(raw) {
        Some(v) => Ok((v, pos)),
        None if raw.is_empty() => fail(pos, format!("missing {what}")),
        None => fail(pos, format!("invalid {what} {raw:?}")),
    }
}

/// A float-seconds timestamp token at the cursor, as (ms, seconds).
fn timestamp_at(lx: &mut Lexer<'_>) -> Scan<(i64, f64)> {
    let pos = lx.pos;
    let raw = lx.token(|c| c == b' ' || c == b'\n');
    parse_secs(raw).map_or_else(|| fail(pos, format!("invalid timestamp {raw:?}")), Ok)
}
