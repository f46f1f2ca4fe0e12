//! The Prometheus text format 0.0.4, read as leniently as Prometheus 2.42 reads it.
//!
//! Prometheus' own parser is stateless: metadata only annotates. So here families may be interleaved
//! (Istio 1.5 merges the app's and Envoy's output), samples need no `# TYPE` (they form
//! [`MetricType::Unknown`] families named after the sample), blanks may separate any tokens, commas
//! between labels are optional and a trailing one is allowed, and `#` lines other than `HELP`/`TYPE`
//! are comments. A sample joins the family of its name or, for histograms and summaries, of its name
//! without `_bucket`/`_count`/`_sum`, and for counters of its name without `_total` (`# TYPE foo
//! counter` then `foo_total 1`, the OpenMetrics naming that Rust's `prometheus-client` also uses
//! in 0.0.4 output, e.g. Istio's ztunnel: grouped as `prometheus_client` and OpenMetrics tools
//! group it); each family appears once in the output, in order of first appearance. Duplicate label names are rejected (Prometheus' storage refuses such series).

use std::collections::HashMap;

use super::lexer::{
    LabelSink, LabelSorter, Lexer, RawLabel, Scan, fail, parse_float, parse_ms, unescape_help,
};
use super::{ExpositionSample, Format, MetricFamily, MetricType, ParseError, RawSample};

/// Sample-name suffixes that may attach a sample to a histogram or summary family, or (`_total`)
/// to a counter family declared without it.
const PART_SUFFIXES: [&str; 4] = ["_bucket", "_count", "_sum", "_total"];

/// Receives each sample when streaming ([`super::for_each_sample`]).
pub(super) type Emit<'f, 'a> = &'f mut dyn FnMut(RawSample<'a>);

struct TextParser<'a, 'f> {
    lx: Lexer<'a>,
    /// Each family's name and type, borrowed from the body.
    kinds: Vec<(&'a str, MetricType)>,
    /// The families being built, in the order of `kinds`; empty when streaming.
    families: Vec<MetricFamily>,
    /// Family name → index in `kinds`.
    index: HashMap<&'a str, usize>,
    /// The family the previous line touched: the fast path for the next sample.
    current: Option<usize>,
    /// Scratch label buffer reused across lines.
    labels: Vec<RawLabel<'a>>,
    sorter: LabelSorter<'a>,
    /// Where samples go when streaming; `None` collects them into `families`.
    emit: Option<Emit<'f, 'a>>,
}

/// Parses a 0.0.4 body, pushing errors; stops at the first when `fail_fast`.
pub(super) fn parse(body: &str, errors: &mut Vec<ParseError>, fail_fast: bool) -> Vec<MetricFamily> {
    let mut p = TextParser::new(body, None);
    p.run(errors, fail_fast);
    p.families
}

/// Streams the samples of a 0.0.4 body to `emit` without building label sets; stops at the first
/// error.
pub(super) fn for_each<'a>(body: &'a str, emit: Emit<'_, 'a>) -> Result<(), ParseError> {
    let mut errors = Vec::new();
    TextParser::new(body, Some(emit)).run(&mut errors, true);
    errors.into_iter().next().map_or(Ok(()), Err)
}

/// Scans the label pairs of a 0.0.4 series text (`name{...}`, as [`RawSample::series_text`] holds
/// it) into `out`.
pub(super) fn series_labels<'a>(series: &'a str, out: &mut Vec<RawLabel<'a>>) -> Scan<()> {
    let mut lx = Lexer::new(series);
    lx.name(true);
    lx.skip_blanks();
    if lx.eat(b'{') {
        label_set(&mut lx, out)?;
    }
    Ok(())
}

impl<'a, 'f> TextParser<'a, 'f> {
    fn new(body: &'a str, emit: Option<Emit<'f, 'a>>) -> Self {
        TextParser {
            lx: Lexer::new(body),
            kinds: Vec::new(),
            families: Vec::new(),
            index: HashMap::new(),
            current: None,
            labels: Vec::new(),
            sorter: LabelSorter::default(),
            emit,
        }
    }

    /// Runs over the whole body, pushing errors; stops at the first when `fail_fast`.
    fn run(&mut self, errors: &mut Vec<ParseError>, fail_fast: bool) {
        while !self.lx.at_end() {
            if let Err(f) = self.line() {
                self.labels.clear();
                errors.push(self.lx.error(f));
                if fail_fast {
                    break;
                }
            }
            self.lx.next_line();
        }
    }

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
            let fam = self.family_for_meta(name);
            if self.emit.is_none() {
                self.families[fam].help = Some(unescape_help(text));
            }
            return Ok(());
        }
        let word = text.trim_matches([' ', '\t']);
        let Some(t) = MetricType::from_type_word(word, Format::PrometheusText) else {
            return fail(rest_pos + 1, format!("invalid metric type {word:?}"));
        };
        let fam = self.family_for_meta(name);
        if self.kinds[fam].1 == MetricType::Unknown {
            self.kinds[fam].1 = t;
            if let Some(f) = self.families.get_mut(fam) {
                f.metric_type = t;
            }
        }
        Ok(())
    }

    /// `name{labels} value [timestamp_ms]`.
    fn sample(&mut self) -> Scan<()> {
        let start = self.lx.pos;
        let (line, line_start) = (self.lx.line, self.lx.line_start);
        let Some(name) = self.lx.name(true) else {
            return fail(start, "expected a metric name");
        };
        let mut series_end = self.lx.pos;
        self.lx.skip_blanks();
        let streaming = self.emit.is_some();
        if self.lx.eat(b'{') {
            if streaming {
                label_set(&mut self.lx, &mut ())?;
            } else {
                label_set(&mut self.lx, &mut self.labels)?;
            }
            series_end = self.lx.pos;
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
        if streaming {
            let fam = self.family_for_sample(name);
            let sample = RawSample {
                series_text: &self.lx.src[start..series_end],
                name,
                value,
                timestamp_ms,
                metric_type: self.kinds[fam].1,
                line,
                line_start,
                format: Format::PrometheusText,
            };
            if let Some(emit) = self.emit.as_mut() {
                emit(sample);
            }
            return Ok(());
        }
        let labels = self
            .sorter
            .build(Some(name), &mut self.labels)
            .or_else(|r| fail(start, r))?;
        let fam = self.family_for_sample(name);
        self.families[fam].samples.push(ExpositionSample {
            labels,
            value,
            timestamp_ms,
            exemplar: None,
        });
        Ok(())
    }

    /// The family `name` names in a `# HELP`/`# TYPE` line, created if new.
    fn family_for_meta(&mut self, name: &'a str) -> usize {
        let idx = match self.current.filter(|&c| self.kinds[c].0 == name) {
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
    fn family_for_sample(&mut self, name: &'a str) -> usize {
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
        let (fam, metric_type) = self.kinds[idx];
        name.strip_prefix(fam)
            .is_some_and(|suffix| metric_type.suffixes(Format::PrometheusText).contains(&suffix))
    }

    fn push_family(&mut self, name: &'a str) -> usize {
        self.kinds.push((name, MetricType::Unknown));
        if self.emit.is_none() {
            self.families.push(MetricFamily::new(name, MetricType::Unknown));
        }
        let idx = self.kinds.len() - 1;
        self.index.insert(name, idx);
        idx
    }
}

/// The label pairs after `{`, through `}`, into `out`.
fn label_set<'a>(lx: &mut Lexer<'a>, out: &mut impl LabelSink<'a>) -> Scan<()> {
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
        let (value, escaped) = lx.quoted_raw(true)?;
        out.push(name, value, escaped);
        lx.skip_blanks();
        // Commas are optional between labels and allowed before `}`.
        lx.eat(b',');
    }
}
