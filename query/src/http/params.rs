//! Request parameters: query string and form body merged, Prometheus time and duration formats.

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, Uri};

use super::error::ApiError;
use crate::functions::math::days_from_civil;

/// Request parameters from the query string and (for POST) the form body, in order.
#[derive(Debug, Default)]
pub struct Params(Vec<(String, String)>);

impl Params {
    /// Collects parameters from the URI and, for form-encoded POST bodies, the body.
    pub fn from_parts(method: &Method, uri: &Uri, headers: &HeaderMap, body: &Bytes) -> Self {
        let mut out: Vec<(String, String)> = Vec::new();
        if let Some(q) = uri.query() {
            out.extend(form_urlencoded::parse(q.as_bytes()).into_owned());
        }
        let is_form = headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        if method == Method::POST && is_form {
            out.extend(form_urlencoded::parse(body).into_owned());
        }
        Self(out)
    }

    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// All values of `name` (for `match[]`).
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The first value of a required parameter, or Prometheus' `bad_data` error naming it.
    pub fn required(&self, name: &str) -> Result<&str, ApiError> {
        self.get(name)
            .ok_or_else(|| ApiError::bad_data(format!("invalid parameter \"{name}\": missing")))
    }

    /// A required time parameter in milliseconds.
    pub fn time(&self, name: &str) -> Result<i64, ApiError> {
        let v = self.required(name)?;
        parse_time(v).map_err(|e| ApiError::bad_data(format!("invalid parameter \"{name}\": {e}")))
    }

    /// An optional time parameter in milliseconds, `default` when absent or empty.
    pub fn time_or(&self, name: &str, default: i64) -> Result<i64, ApiError> {
        match self.get(name) {
            None | Some("") => Ok(default),
            Some(v) => {
                parse_time(v).map_err(|e| ApiError::bad_data(format!("invalid parameter \"{name}\": {e}")))
            }
        }
    }
}

/// Decodes a label name Grafana escaped for a URL path (`U__` prefix, `__` for `_`, `_<hex>_` for
/// any other code point), as Prometheus 3 does on `/api/v1/label/<name>/values`. A name without the
/// prefix, or one that does not decode, is returned unchanged.
pub fn unescape_label_name(name: &str) -> std::borrow::Cow<'_, str> {
    let Some(escaped) = name.strip_prefix("U__") else {
        return name.into();
    };
    let mut out = String::with_capacity(escaped.len());
    let mut chars = escaped.chars();
    while let Some(c) = chars.next() {
        if c != '_' {
            out.push(c);
            continue;
        }
        match chars.next() {
            None => return name.into(),
            Some('_') => out.push('_'),
            Some(first) => {
                let mut code: u32 = 0;
                let mut next = Some(first);
                let mut digits = 0;
                loop {
                    match next {
                        Some('_') if digits > 0 => break,
                        Some(h) if digits < 6 && h.is_ascii_hexdigit() => {
                            code = code * 16 + h.to_digit(16).unwrap_or(0);
                            digits += 1;
                        }
                        _ => return name.into(),
                    }
                    next = chars.next();
                }
                match char::from_u32(code) {
                    Some(decoded) => out.push(decoded),
                    None => return name.into(),
                }
            }
        }
    }
    out.into()
}

/// Smallest and largest times the API accepts as defaults (Prometheus' minTime/maxTime, in ms).
pub const MIN_TIME_MS: i64 = -9_223_309_901_257_974;
/// See [`MIN_TIME_MS`].
pub const MAX_TIME_MS: i64 = 9_223_309_901_257_974;

/// Parses a Prometheus API time: float unix seconds or RFC 3339.
pub fn parse_time(s: &str) -> Result<i64, String> {
    if let Ok(f) = s.parse::<f64>() {
        if !f.is_finite() {
            return Err(format!("cannot parse {s:?} to a valid timestamp"));
        }
        let ms = (f * 1000.0).round();
        if ms.abs() > MAX_TIME_MS as f64 {
            return Err(format!("cannot parse {s:?} to a valid timestamp"));
        }
        return Ok(ms as i64);
    }
    parse_rfc3339(s).ok_or_else(|| format!("cannot parse {s:?} to a valid timestamp"))
}

fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut rest = &s[19..];
    let mut frac_ms = 0i64;
    if let Some(r) = rest.strip_prefix('.') {
        let digits = r.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let frac = &r[..digits];
        let padded = format!("{:0<3}", &frac[..digits.min(3)]);
        frac_ms = padded.parse().ok()?;
        rest = &r[digits..];
    }
    let offset_s = match rest {
        "Z" | "z" => 0,
        _ if rest.len() == 6 && (rest.starts_with('+') || rest.starts_with('-')) && &rest[3..4] == ":" => {
            let sign = if rest.starts_with('-') { -1 } else { 1 };
            sign * (rest.get(1..3)?.parse::<i64>().ok()? * 3600 + rest.get(4..6)?.parse::<i64>().ok()? * 60)
        }
        _ => return None,
    };
    let secs = days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + sec - offset_s;
    Some(secs * 1000 + frac_ms)
}

/// Parses a duration: float seconds or a Prometheus duration such as `1m30s`. Returns ms.
pub fn parse_duration(s: &str) -> Result<i64, String> {
    if let Ok(f) = s.parse::<f64>() {
        let ms = (f * 1000.0).round();
        if !f.is_finite() || ms.abs() > i64::MAX as f64 {
            return Err(format!("cannot parse {s:?} to a valid duration"));
        }
        return Ok(ms as i64);
    }
    parse_prom_duration(s).ok_or_else(|| format!("cannot parse {s:?} to a valid duration"))
}

/// Parses `1y2w3d4h5m6s7ms` style durations to milliseconds.
pub fn parse_prom_duration(s: &str) -> Option<i64> {
    if s.is_empty() {
        return None;
    }
    let mut total: i64 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let n: i64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(|c| c.is_ascii_alphabetic()).count();
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let mult: i64 = match unit {
            "ms" => 1,
            "s" => 1000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 604_800_000,
            "y" => 31_536_000_000,
            _ => return None,
        };
        total = total.checked_add(n.checked_mul(mult)?)?;
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        assert_eq!(parse_time("1700000000.123"), Ok(1_700_000_000_123));
        assert_eq!(parse_time("2023-11-14T22:13:20Z"), Ok(1_700_000_000_000));
        assert_eq!(parse_time("2023-11-14T23:13:20.5+01:00"), Ok(1_700_000_000_500));
        assert!(parse_time("yesterday").is_err());
    }

    #[test]
    fn escaped_label_names() {
        assert_eq!(unescape_label_name("job"), "job");
        assert_eq!(unescape_label_name("U__my__label"), "my_label");
        assert_eq!(unescape_label_name("U__http_2e_method"), "http.method");
        assert_eq!(unescape_label_name("U__caf_e9_"), "café");
        // Malformed escapes are left alone, as Prometheus does.
        assert_eq!(unescape_label_name("U__bad_zz_"), "U__bad_zz_");
        assert_eq!(unescape_label_name("U__open_2e"), "U__open_2e");
        assert_eq!(unescape_label_name("U__trailing_"), "U__trailing_");
        assert_eq!(unescape_label_name("U__too_1234567_"), "U__too_1234567_");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("15"), Ok(15_000));
        assert_eq!(parse_duration("0.5"), Ok(500));
        assert_eq!(parse_duration("1m30s"), Ok(90_000));
        assert_eq!(parse_duration("100ms"), Ok(100));
        assert!(parse_duration("1x").is_err());
    }
}
