//! JSON rendering in Prometheus' exact shapes (values as strings, float-second timestamps).

use std::fmt::Write;

use meshfed_model::Labels;

use crate::value::{Value, format_float};

/// Renders a millisecond timestamp as float seconds (`1700000000.123`, `1700000000`).
pub fn format_ts(ms: i64) -> String {
    format!("{}", ms as f64 / 1000.0)
}

fn json_str(out: &mut String, s: &str) {
    // serde_json never fails to serialise a &str.
    out.push_str(&serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into()));
}

/// `{"name":"value",…}`.
pub fn write_labels(out: &mut String, labels: &Labels) {
    out.push('{');
    for (i, l) in labels.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        json_str(out, &l.name);
        out.push(':');
        json_str(out, &l.value);
    }
    out.push('}');
}

fn write_point(out: &mut String, ts: i64, v: f64) {
    let _ = write!(out, "[{},\"{}\"]", format_ts(ts), format_float(v));
}

/// The full success envelope for a query result.
pub fn query_body(v: &Value) -> String {
    let mut out = String::with_capacity(256);
    out.push_str("{\"status\":\"success\",\"data\":{\"resultType\":\"");
    out.push_str(v.type_name());
    out.push_str("\",\"result\":");
    match v {
        Value::Scalar { timestamp_ms, value } => write_point(&mut out, *timestamp_ms, *value),
        Value::String { timestamp_ms, value } => {
            let _ = write!(out, "[{},", format_ts(*timestamp_ms));
            json_str(&mut out, value);
            out.push(']');
        }
        Value::Vector {
            timestamp_ms,
            samples,
        } => {
            out.push('[');
            for (i, (labels, value)) in samples.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str("{\"metric\":");
                write_labels(&mut out, labels);
                out.push_str(",\"value\":");
                write_point(&mut out, *timestamp_ms, *value);
                out.push('}');
            }
            out.push(']');
        }
        Value::Matrix(series) => {
            out.push('[');
            for (i, s) in series.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str("{\"metric\":");
                write_labels(&mut out, &s.labels);
                out.push_str(",\"values\":[");
                for (j, (ts, v)) in s.points.iter().enumerate() {
                    if j > 0 {
                        out.push(',');
                    }
                    write_point(&mut out, *ts, *v);
                }
                out.push_str("]}");
            }
            out.push(']');
        }
    }
    out.push_str("}}");
    out
}

/// `{"status":"success","data":[…strings…]}`.
pub fn strings_body(values: &[String]) -> String {
    let mut out = String::from("{\"status\":\"success\",\"data\":[");
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        json_str(&mut out, v);
    }
    out.push_str("]}");
    out
}

/// `{"status":"error","errorType":…,"error":…}` in Prometheus' key order.
pub fn error_body(error_type: &str, message: &str) -> String {
    let mut out = String::from("{\"status\":\"error\",\"errorType\":");
    json_str(&mut out, error_type);
    out.push_str(",\"error\":");
    json_str(&mut out, message);
    out.push('}');
    out
}

/// `{"status":"success","data":[{…labels…},…]}`.
pub fn series_body(series: &[Labels]) -> String {
    let mut out = String::from("{\"status\":\"success\",\"data\":[");
    for (i, l) in series.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_labels(&mut out, l);
    }
    out.push_str("]}");
    out
}
