//! Canonical YAML: keys sorted at every level, whatever order `serde_json` keeps, so the same
//! objects always give the same bytes.

use serde_json::Value;
use serde_norway::{Mapping, Number, Value as Yaml};

/// `v` as a YAML document with sorted keys.
pub fn to_yaml(v: &Value) -> String {
    serde_norway::to_string(&canonical(v)).unwrap_or_default()
}

fn canonical(v: &Value) -> Yaml {
    match v {
        Value::Null => Yaml::Null,
        Value::Bool(b) => Yaml::Bool(*b),
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                Yaml::Number(Number::from(u))
            } else if let Some(i) = n.as_i64() {
                Yaml::Number(Number::from(i))
            } else {
                Yaml::Number(Number::from(n.as_f64().unwrap_or(0.0)))
            }
        }
        Value::String(s) => Yaml::String(s.clone()),
        Value::Array(a) => Yaml::Sequence(a.iter().map(canonical).collect()),
        Value::Object(o) => {
            let mut keys: Vec<&String> = o.keys().collect();
            keys.sort();
            let mut m = Mapping::new();
            for k in keys {
                if let Some(x) = o.get(k) {
                    m.insert(Yaml::String(k.clone()), canonical(x));
                }
            }
            Yaml::Mapping(m)
        }
    }
}
