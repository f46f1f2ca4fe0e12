//! Parser for Prometheus' PromQL test language (`promqltest`): `load`, `clear`, `eval`.

use meshfed_model::{Labels, LabelsBuilder, stale_nan};

/// One loaded series: labels and `(offset_index, value)` slots.
pub struct LoadSeries {
    pub labels: Labels,
    pub values: Vec<Option<f64>>,
}

/// What an `eval` expects.
pub enum Expect {
    Fail {
        msg: Option<String>,
        regex: Option<String>,
    },
    Vector {
        ordered: bool,
        series: Vec<(Labels, f64)>,
    },
    Scalar(f64),
    Range(Vec<(Labels, Vec<Option<f64>>)>),
    /// An instant query returning a range vector (`expect range vector from <t> to <t> step <d>`):
    /// the raw samples must sit on that grid.
    RangeVector {
        grid: When,
        series: Vec<(Labels, Vec<Option<f64>>)>,
    },
    String(String),
    Unsupported,
}

pub enum When {
    Instant(i64),
    Range { start: i64, end: i64, step: i64 },
}

pub struct Eval {
    pub line: usize,
    pub expr: String,
    pub when: When,
    pub expect: Expect,
}

pub enum Cmd {
    /// `unsupported`: native histograms in the block, or `load_with_nhcb`.
    Load {
        interval_ms: i64,
        series: Vec<LoadSeries>,
        unsupported: bool,
    },
    Clear,
    Eval(Eval),
}

/// Parses a Prometheus duration (`5m`, `1h30m`, `10s`, `0`) or plain seconds, with optional sign.
pub fn duration_ms(s: &str) -> Option<i64> {
    let (neg, s) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s),
    };
    let v = if let Ok(f) = s.parse::<f64>() {
        (f * 1000.0).round() as i64
    } else {
        meshfed_query::http::params::parse_prom_duration(s)?
    };
    Some(if neg { -v } else { v })
}

fn is_indented(l: &str) -> bool {
    l.starts_with(' ') || l.starts_with('\t')
}

/// Parses a whole script into commands.
pub fn parse(text: &str) -> Vec<Cmd> {
    let lines: Vec<&str> = text.lines().collect();
    let mut cmds = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i].trim();
        let line_no = i + 1;
        i += 1;
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        // Collect the indented block that follows.
        let mut block = Vec::new();
        while i < lines.len()
            && (is_indented(lines[i]) || lines[i].trim().starts_with('#'))
            && !lines[i].trim().is_empty()
        {
            if !lines[i].trim().starts_with('#') {
                block.push(lines[i].trim());
            }
            i += 1;
        }
        let (word, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        match word {
            "clear" => cmds.push(Cmd::Clear),
            "load" | "load_with_nhcb" => {
                let interval_ms = duration_ms(rest.trim()).unwrap_or(60_000);
                let mut series = Vec::new();
                let mut unsupported = word == "load_with_nhcb";
                for l in &block {
                    match parse_load_line(l) {
                        Some((s, has_histograms)) => {
                            unsupported |= has_histograms;
                            series.push(s);
                        }
                        None => unsupported = true,
                    }
                }
                cmds.push(Cmd::Load {
                    interval_ms,
                    series,
                    unsupported,
                });
            }
            w if w.starts_with("eval") => cmds.push(Cmd::Eval(parse_eval(line_no, word, rest, &block))),
            _ => {}
        }
    }
    cmds
}

fn parse_eval(line: usize, word: &str, rest: &str, block: &[&str]) -> Eval {
    let mut fail = word == "eval_fail";
    let mut ordered = word == "eval_ordered";
    let (when, expr) = parse_when(rest.trim());
    let mut msg = None;
    let mut regex = None;
    let mut unsupported = false;
    let mut string = None;
    let mut range_vector = None;
    let mut results: Vec<&str> = Vec::new();
    for l in block {
        if let Some(e) = l.strip_prefix("expect") {
            let e = e.trim();
            if let Some(r) = e.strip_prefix("fail") {
                fail = true;
                let r = r.trim();
                if let Some(m) = r.strip_prefix("msg:") {
                    msg = Some(m.trim().to_string());
                } else if let Some(m) = r.strip_prefix("regex:") {
                    regex = Some(m.trim().to_string());
                }
            } else if e.starts_with("ordered") {
                ordered = true;
            } else if let Some(s) = e.strip_prefix("string") {
                string = Some(unquote(s.trim()).unwrap_or_default());
            } else if let Some(r) = e.strip_prefix("range vector") {
                match parse_when(&format!("range {} x", r.trim())) {
                    (grid @ When::Range { .. }, _) => range_vector = Some(grid),
                    _ => unsupported = true,
                }
            } else if e.starts_with("range") {
                unsupported = true;
            }
            continue;
        }
        results.push(l);
    }
    let expect = if unsupported {
        Expect::Unsupported
    } else if fail {
        Expect::Fail { msg, regex }
    } else if let Some(s) = string {
        Expect::String(s)
    } else if let Some(grid) = range_vector {
        match parse_results(&grid, false, &results) {
            Expect::Range(series) => Expect::RangeVector { grid, series },
            other => other,
        }
    } else {
        parse_results(&when, ordered, &results)
    };
    Eval {
        line,
        expr,
        when,
        expect,
    }
}

fn parse_when(s: &str) -> (When, String) {
    let words: Vec<&str> = s.splitn(8, char::is_whitespace).collect();
    if words.first() == Some(&"instant") && words.get(1) == Some(&"at") {
        let rest = s.splitn(4, char::is_whitespace).collect::<Vec<_>>();
        let t = rest.get(2).and_then(|t| duration_ms(t)).unwrap_or(0);
        return (
            When::Instant(t),
            rest.get(3).copied().unwrap_or("").trim().to_string(),
        );
    }
    // range from <t> to <t> step <d> <expr>
    let rest = s.splitn(8, char::is_whitespace).collect::<Vec<_>>();
    let get = |i: usize| rest.get(i).and_then(|t| duration_ms(t)).unwrap_or(0);
    (
        When::Range {
            start: get(2),
            end: get(4),
            step: get(6),
        },
        rest.get(7).copied().unwrap_or("").trim().to_string(),
    )
}

fn parse_results(when: &When, ordered: bool, lines: &[&str]) -> Expect {
    if lines.iter().any(|l| l.contains("{{")) {
        return Expect::Unsupported;
    }
    match when {
        When::Instant(_) => {
            if lines.len() == 1
                && let Some(v) = parse_value(lines[0].trim())
            {
                return Expect::Scalar(v);
            }
            let mut series = Vec::new();
            for l in lines {
                let Some((labels, rest)) = parse_metric(l) else {
                    return Expect::Unsupported;
                };
                let Some(v) = parse_value(rest.trim()) else {
                    return Expect::Unsupported;
                };
                series.push((labels, v));
            }
            Expect::Vector { ordered, series }
        }
        When::Range { .. } => {
            let mut series = Vec::new();
            for l in lines {
                let Some((labels, rest)) = parse_metric(l) else {
                    return Expect::Unsupported;
                };
                let Some(values) = parse_values(rest) else {
                    return Expect::Unsupported;
                };
                series.push((labels, values));
            }
            Expect::Range(series)
        }
    }
}

/// Parses a load line; native-histogram samples (`{{…}}`) become gaps, flagged by `true`.
fn parse_load_line(l: &str) -> Option<(LoadSeries, bool)> {
    let (labels, rest) = parse_metric(l)?;
    let mut floats = String::with_capacity(rest.len());
    let mut has_histograms = false;
    let mut tail = rest;
    while let Some(start) = tail.find("{{") {
        floats.push_str(&tail[..start]);
        let end = tail[start..].find("}}")? + start + 2;
        floats.push('H');
        has_histograms = true;
        tail = &tail[end..];
    }
    floats.push_str(tail);
    Some((
        LoadSeries {
            labels,
            values: parse_values(&floats)?,
        },
        has_histograms,
    ))
}

/// Parses a value as promqltest does (`Inf`, `-Inf`, `NaN`, hex, floats).
pub fn parse_value(s: &str) -> Option<f64> {
    match s {
        "Inf" | "+Inf" | "inf" | "+inf" => return Some(f64::INFINITY),
        "-Inf" | "-inf" => return Some(f64::NEG_INFINITY),
        "NaN" | "nan" => return Some(f64::NAN),
        "stale" => return Some(stale_nan()),
        _ => {}
    }
    s.parse::<f64>().ok()
}

/// Expands series notation (`1 2 _ 3`, `0+10x5`, `_x3`, `1x4`, `stale`).
pub fn parse_values(s: &str) -> Option<Vec<Option<f64>>> {
    let mut out = Vec::new();
    for tok in s.split_whitespace() {
        if tok == "_" || tok == "H" {
            out.push(None);
            continue;
        }
        // A native histogram (`H`), possibly repeated (`H+Hx3`): as many gaps as samples.
        if tok.starts_with('H') {
            let n = tok
                .rsplit_once('x')
                .and_then(|(_, n)| n.parse::<usize>().ok())
                .map_or(1, |n| n + 1);
            out.extend(std::iter::repeat_n(None, n));
            continue;
        }
        if let Some(n) = tok.strip_prefix("_x") {
            out.extend(std::iter::repeat_n(None, n.parse().ok()?));
            continue;
        }
        if let Some((head, times)) = tok.rsplit_once('x').filter(|(h, _)| !h.is_empty())
            && let Ok(times) = times.parse::<usize>()
        {
            // head is `a`, `a+b` or `a-b` (a may itself be signed).
            let split = head
                .char_indices()
                .skip(1)
                .find(|&(i, c)| (c == '+' || c == '-') && !matches!(head.as_bytes()[i - 1], b'e' | b'E'));
            let (a, b) = match split {
                Some((i, _)) => (parse_value(&head[..i])?, parse_value(&head[i..])?),
                None => (parse_value(head)?, 0.0),
            };
            let mut v = a;
            out.push(Some(v));
            for _ in 0..times {
                v += b;
                out.push(Some(v));
            }
            continue;
        }
        out.push(Some(parse_value(tok)?));
    }
    Some(out)
}

fn unquote(s: &str) -> Option<String> {
    let q = s.chars().next()?;
    if q != '"' && q != '\'' && q != '`' {
        return None;
    }
    let inner = s.get(1..s.len().checked_sub(1)?)?;
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' && q != '`' {
            match chars.next()? {
                'n' => out.push('\n'),
                't' => out.push('\t'),
                'r' => out.push('\r'),
                o => out.push(o),
            }
        } else {
            out.push(c);
        }
    }
    Some(out)
}

/// Reads a quoted string at the start of `s`; returns it and the remainder.
fn take_quoted(s: &str) -> Option<(String, &str)> {
    let q = s.chars().next()?;
    let mut escaped = false;
    for (i, c) in s.char_indices().skip(1) {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == q {
            return Some((unquote(&s[..=i])?, &s[i + 1..]));
        }
    }
    None
}

/// Parses `name{a="b",…}` / `{…}` at the start of `l`; returns the labels and the rest.
pub fn parse_metric(l: &str) -> Option<(Labels, &str)> {
    let l = l.trim_start();
    let name_len = l
        .char_indices()
        .find(|&(_, c)| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .map(|(i, _)| i)
        .unwrap_or(l.len());
    let mut b = LabelsBuilder::new();
    if name_len > 0 {
        b.set("__name__", &l[..name_len]);
    }
    let mut rest = &l[name_len..];
    if let Some(r) = rest.strip_prefix('{') {
        rest = r.trim_start();
        loop {
            if let Some(r) = rest.strip_prefix('}') {
                rest = r;
                break;
            }
            let (name, r) = if rest.starts_with('"') {
                take_quoted(rest)?
            } else {
                let n = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))?;
                (rest[..n].to_string(), &rest[n..])
            };
            let r = r.trim_start();
            if let Some(r) = r.strip_prefix('=') {
                let (value, r) = take_quoted(r.trim_start())?;
                b.set(name, value);
                rest = r.trim_start();
            } else {
                // A bare quoted name is the metric name.
                b.set("__name__", name);
                rest = r;
            }
            rest = rest.strip_prefix(',').unwrap_or(rest).trim_start();
        }
    } else if name_len == 0 {
        return None;
    }
    Some((b.build(), rest))
}
