//! Validating generated objects against Istio's CRD schemas (`istio-crds` fixture): JSON-schema
//! validation of each object's `openAPIV3Schema`, plus a pruning check, since the API server
//! silently drops fields the schema does not declare and Istio schemas allow unknown keys.
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::BTreeMap;

use serde_json::Value;

/// `(kind, version)` → `openAPIV3Schema`, from every CRD document in `yaml`.
pub fn schemas_from(yaml: &str) -> BTreeMap<(String, String), Value> {
    use serde::Deserialize;
    let mut out = BTreeMap::new();
    for doc in serde_norway::Deserializer::from_str(yaml) {
        let Ok(v) = Value::deserialize(doc) else { continue };
        let kind = v
            .pointer("/spec/names/kind")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        for ver in v
            .pointer("/spec/versions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let name = ver
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            if let Some(s) = ver.pointer("/schema/openAPIV3Schema") {
                out.insert((kind.clone(), name), s.clone());
            }
        }
    }
    out
}

/// Istio's schemas, or `None` (after a skip message) when the fixture is absent.
pub fn istio_schemas() -> Option<BTreeMap<(String, String), Value>> {
    let dir = meshfed_model::fixtures::fixture_dir("istio-crds")?;
    let text = std::fs::read_to_string(dir.join("customresourcedefinitions.gen.yaml")).unwrap();
    Some(schemas_from(&text))
}

/// Errors of `object` against `schema`: JSON-schema violations and fields pruning would drop.
pub fn check(schema: &Value, object: &Value) -> Vec<String> {
    let validator = jsonschema::validator_for(schema).unwrap();
    let mut errors: Vec<String> = validator
        .iter_errors(object)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect();
    unknown_fields(schema, object, "", &mut errors);
    errors
}

fn unknown_fields(schema: &Value, v: &Value, path: &str, out: &mut Vec<String>) {
    if schema.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true)) {
        return;
    }
    match v {
        Value::Object(map) => {
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                for (k, child) in map {
                    // The API server always keeps these, declared or not.
                    if path.is_empty() && matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
                        continue;
                    }
                    match props.get(k) {
                        Some(s) => unknown_fields(s, child, &format!("{path}/{k}"), out),
                        None => out.push(format!("{path}/{k}: not in the schema (would be pruned)")),
                    }
                }
            } else if let Some(s) = schema.get("additionalProperties").filter(|s| s.is_object()) {
                for (k, child) in map {
                    unknown_fields(s, child, &format!("{path}/{k}"), out);
                }
            }
        }
        Value::Array(items) => {
            if let Some(s) = schema.get("items") {
                for (i, child) in items.iter().enumerate() {
                    unknown_fields(s, child, &format!("{path}/{i}"), out);
                }
            }
        }
        _ => {}
    }
}
