//! Durations as the spec writes them (`500ms`, `10s`, `1m30s`, `1.5s`, `2h`) and as Istio's
//! protobuf JSON wants them (seconds with an `s` suffix).

/// Parses a duration into milliseconds; `None` when malformed, empty, or not a whole number of ms.
pub fn parse_ms(s: &str) -> Option<u64> {
    let mut rest = s.trim();
    if rest.is_empty() {
        return None;
    }
    let mut total: u64 = 0;
    while !rest.is_empty() {
        let num_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let (num, tail) = rest.split_at(num_len);
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, next) = tail.split_at(unit_len);
        let scale: u64 = match unit {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            _ => return None,
        };
        let (whole, frac) = num.split_once('.').unwrap_or((num, ""));
        if whole.is_empty() && frac.is_empty() {
            return None;
        }
        let whole: u64 = if whole.is_empty() { 0 } else { whole.parse().ok()? };
        let mut ms = whole.checked_mul(scale)?;
        if !frac.is_empty() {
            let digits: u32 = frac.len().try_into().ok()?;
            let frac_v: u64 = frac.parse().ok()?;
            let den = 10u64.checked_pow(digits)?;
            let part = frac_v.checked_mul(scale)?;
            if part % den != 0 {
                return None;
            }
            ms = ms.checked_add(part / den)?;
        }
        total = total.checked_add(ms)?;
        rest = next;
    }
    Some(total)
}

/// Formats milliseconds the way protobuf JSON writes a `Duration`: `30s`, `0.500s`.
pub fn to_proto(ms: u64) -> String {
    if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{}.{:03}s", ms / 1000, ms % 1000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_formats() {
        let cases = [
            ("10s", Some(10_000)),
            ("500ms", Some(500)),
            ("1m30s", Some(90_000)),
            ("1.5s", Some(1_500)),
            ("2h", Some(7_200_000)),
            ("", None),
            ("10", None),
            ("s", None),
            ("10x", None),
            ("-1s", None),
            ("0.0001s", None),
        ];
        for (input, want) in cases {
            assert_eq!(parse_ms(input), want, "{input}");
        }
        assert_eq!(to_proto(30_000), "30s");
        assert_eq!(to_proto(1_500), "1.500s");
    }
}
