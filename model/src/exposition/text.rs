//! The Prometheus text format 0.0.4, read as leniently as Prometheus 2.42 reads it.
//!
//! Prometheus' own parser is stateless: metadata only annotates. So here families may be interleaved
//! (Istio 1.5 merges the app's and Envoy's output), samples need no `# TYPE` (they form
//! [`MetricType::Unknown`] families named after the sample), blanks may separate any tokens, commas
//! between labels are optional and a trailing one is allowed, and `#` lines other than `HELP`/`TYPE`
//! are comments. A sample joins the family of its name or, for histograms and summaries, of its name
//! without `_bucket`/`_count`/`_sum`; each family appears once in the output, in order of first
//! appearance. Duplicate label names are rejected (Prometheus' storage refuses such series).

use std::collections::HashMap;

use super::lexer::{Lexer, RawLabel, Scan, build_labels, fail, parse_float, parse_ms, unescape_help};
use super::{ExpositionSample, Format, MetricFamily, MetricType, ParseError};

/// Sample-name suffixes that may attach a sample to a histogram or summary family.
const PART_SUFFIXES: [&str; 3] = ["_bucket", "_count", "_sum"];

struct TextParser<'a> {
    lx: Lexer<'a>,
    families: Vec<MetricFamily>,
    /// Family name → index in `families`.
    index: HashMap<String, usize>,
    /// The family the previous line touched: the fast path for the next sample.
    current: Option<usize>,
    /// Scratch label buffer reused across lines.
    labels: Vec<RawLabel<'a>>,
}

/// Parses a 0.0.4 body, pushing errors; stops at the first when `fail_fast`.
pub(super) fn parse(body: &str, errors: &mut Vec<ParseError>, fail_fast: bool) -> Vec<MetricFamily> {
    let mut p = TextParser {
        lx: Lexer::new(body),
        families: Vec::new(),
        index: HashMap::new(),
        current: None,
        labels: Vec::new(),
    };
    while !p.lx.at_end() {
        if let Err(f) = p.line() {
            errors.push(p.lx.error(f));
            if fail_fast {
                break;
            }
        }
        p.lx.next_line();
    }
    p.families
}

impl<'a> TextParser<'a> {
    /// Parses one line, leaving the cursor at its end.
    fn line(&mut self) -> Scan<()> {
        self.lx.skip_blanks();
        match self.lx.peek() {
            None | Some(b'\n') => Ok(()),
            Some(b'#') => self.comment(),
            _ => self.sample(),
        }
    }

    /// `# HELP name text`, `# TYPE name type`, or any other comment.
    fn comment(&mut self) -> Scan<()> {
        let lx = &mut self.lx;
        lx.pos += 1;
        let hash_end = lx.pos;
        lx.skip_blanks();
        if lx.pos == hash_end {
            return Ok(());
        }
        let keyword = lx.token(|c| matches!(c, b' ' | b'\t' | b'\n'));
        let is_help = keyword == "HELP";
        if !(is_help || keyword == "TYPE") || !matches!(lx.peek(), Some(b' ' | b'\t')) {
            return Ok(());
        }
        lx.skip_blanks();
        // Without a metric name it is just a comment (Go's expfmt agrees).
        let Some(name) = lx.name(true) else {
            lx.pos = lx.line_end();
            return Ok(());
        };
        let rest_pos = lx.pos;
        let end = lx.line_end();
        let rest = &lx.src[rest_pos..end];
        lx.pos = end;
        // Prometheus drops exactly one separator before the text.
        let text = match rest.as_bytes().first() {
            None => "",
            Some(b' ' | b'\t') => &rest[1..],
            Some(_) => return fail(rest_pos, "expected a blank after the metric name"),
        };
        if is_help {
            let help = unescape_help(text);
            let fam = self.family_for_meta(name);
            self.families[fam].help = Some(help);
            return Ok(());
        }
        let word = text.trim_matches([' ', '\t']);
        let Some(t) = MetricType::from_type_word(word, Format::PrometheusText) else {
            return fail(rest_pos + 1, format!("invalid metric type {word:?}"));
        };
        let fam = self.family_for_meta(name);
        let fam = &mut self.families[fam];
        if fam.metric_type == MetricType::Unknown {
            fam.metric_type = t;
        }
        Ok(())
    }

    /// `name{labels} value [timestamp_ms]`.
    fn sample(&mut self) -> Scan<()> {
        let start = self.lx.pos;
        let Some(name) = self.lx.name(true) else {
            return fail(start, "expected a metric name");
        };
        self.lx.skip_blanks();
        self.labels.clear();
        if self.lx.eat(b'{') {
            self.label_set()?;
            self.lx.skip_blanks();
        }
        let lx = &mut self.lx;
        let value_pos = lx.pos;
        let raw = lx.token(|c| matches!(c, b' ' | b'\t' | b'\n' | b'{'));
        if raw.is_empty() {
            return fail(value_pos, "expected a value");
        }
        let Some(value) = parse_float(raw) else {
            return fail(value_pos, format!("invalid value {raw:?}"));
        };
        lx.skip_blanks();
        let mut timestamp_ms = None;
        if !lx.at_eol() {
            let ts_pos = lx.pos;
            let raw = lx.token(|c| matches!(c, b' ' | b'\t' | b'\n'));
            timestamp_ms = Some(parse_ms(raw).map_or_else(|| fail(ts_pos, "invalid timestamp"), Ok)?);
            lx.skip_blanks();
            if !lx.at_eol() {
                return fail(lx.pos, "expected the end of the line after the timestamp");
            }
        }
        let labels = build_labels(Some(name), &mut self.labels).or_else(|r| fail(start, r))?;
        let fam = self.family_for_sample(name);
        self.families[fam].samples.push(ExpositionSample {
            labels,
            value,
            timestamp_ms,
            exemplar: None,
        });
        Ok(())
    }

    /// The label pairs after `{`, through `}`.
    fn label_set(&mut self) -> Scan<()> {
        let lx = &mut self.lx;
        loop {
            lx.skip_blanks();
            if lx.eat(b'}') {
                return Ok(());
            }
            let name_pos = lx.pos;
            let Some(name) = lx.name(false) else {
                return fail(name_pos, "expected a label name or '}'");
            };
            lx.skip_blanks();
            if !lx.eat(b'=') {
                return fail(lx.pos, "expected '=' after the label name");
            }
            lx.skip_blanks();
            let value = lx.quoted(true)?;
            self.labels.push((name, value));
            lx.skip_blanks();
            // Commas are optional between labels and allowed before `}`.
            lx.eat(b',');
        }
    }

    /// The family `name` names in a `# HELP`/`# TYPE` line, created if new.
    fn family_for_meta(&mut self, name: &str) -> usize {
        let idx = match self.current.filter(|&c| self.families[c].name == name) {
            Some(c) => c,
            None => self
                .index
                .get(name)
                .copied()
                .unwrap_or_else(|| self.push_family(name)),
        };
        self.current = Some(idx);
        idx
    }

    /// The family a sample named `name` belongs to, created as `Unknown` if there is none.
    fn family_for_sample(&mut self, name: &str) -> usize {
        if let Some(c) = self.current.filter(|&c| self.accepts(c, name)) {
            return c;
        }
        let idx = self
            .index
            .get(name)
            .copied()
            .or_else(|| {
                PART_SUFFIXES.iter().find_map(|suffix| {
                    let base = name.strip_suffix(suffix)?;
                    self.index.get(base).copied().filter(|&i| self.accepts(i, name))
                })
            })
            .unwrap_or_else(|| self.push_family(name));
        self.current = Some(idx);
        idx
    }

    /// True when family `idx` takes samples named `name`.
    fn accepts(&self, idx: usize, name: &str) -> bool {
        let fam = &self.families[idx];
        name.strip_prefix(fam.name.as_str())
            .is_some_and(|suffix| fam.metric_type.suffixes(Format::PrometheusText).contains(&suffix))
    }

    fn push_family(&mut self, name: &str) -> usize {
        self.families.push(MetricFamily::new(name, MetricType::Unknown));
        let idx = self.families.len() - 1;
        self.index.insert(name.to_owned(), idx);
        idx
    }
}
