//! Scenario files: faults scheduled at fixed offsets from the simulator's start.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::faults::Fault;
use crate::{Result, SimError};

/// A fault starting `at_secs` after start, lasting `duration_secs` (or forever).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduledFault {
    /// Start, in seconds since the simulator started.
    pub at_secs: f64,
    /// Duration in seconds; `None` lasts until cleared.
    #[serde(default)]
    pub duration_secs: Option<f64>,
    /// The fault.
    pub fault: Fault,
}

/// The default scenario: 60 s after start, cluster-1's `web-api` answers 30% of requests with 503
/// for 120 s.
pub fn default_scenario() -> Vec<ScheduledFault> {
    vec![ScheduledFault {
        at_secs: 60.0,
        duration_secs: Some(120.0),
        fault: Fault::ErrorRate {
            cluster: "cluster-1".to_string(),
            workload: "web-api".to_string(),
            fraction: 0.3,
            code: 503,
        },
    }]
}

#[derive(Deserialize)]
#[serde(untagged)]
enum ScenarioDoc {
    List(Vec<ScheduledFault>),
    Wrapped { faults: Vec<ScheduledFault> },
}

/// Parses a scenario: a YAML list of `{at_secs, duration_secs, fault}` (or `{faults: [...]}`).
pub fn parse_scenario(yaml: &str) -> Result<Vec<ScheduledFault>> {
    let doc: ScenarioDoc = serde_norway::from_str(yaml).map_err(|e| SimError::Yaml {
        path: None,
        message: e.to_string(),
    })?;
    let faults = match doc {
        ScenarioDoc::List(f) | ScenarioDoc::Wrapped { faults: f } => f,
    };
    for f in &faults {
        let ok = f.at_secs.is_finite() && f.at_secs >= 0.0;
        if !ok || f.duration_secs.is_some_and(|d| !(d.is_finite() && d >= 0.0)) {
            return Err(SimError::InvalidFault(
                "at_secs and duration_secs must be finite and >= 0".into(),
            ));
        }
    }
    Ok(faults)
}

/// Reads a scenario file.
pub fn load_scenario(path: &Path) -> Result<Vec<ScheduledFault>> {
    let text = std::fs::read_to_string(path).map_err(|source| SimError::Io {
        context: format!("reading {}", path.display()),
        source,
    })?;
    parse_scenario(&text).map_err(|e| match e {
        SimError::Yaml { message, .. } => SimError::Yaml {
            path: Some(path.to_path_buf()),
            message,
        },
        other => other,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_list_and_wrapped_forms() {
        let yaml = r#"
- at_secs: 10
  duration_secs: 30
  fault: {kind: error_rate, cluster: cluster-1, workload: web-api, fraction: 0.3}
- at_secs: 20
  fault: {kind: cluster_dark, cluster: cluster-2, mode: hang}
- at_secs: 25
  fault: {kind: pod_restart, pod: frontend-abc}
"#;
        let f = parse_scenario(yaml).expect("valid scenario");
        assert_eq!(f.len(), 3);
        assert!(matches!(f[0].fault, Fault::ErrorRate { code: 503, .. }));
        let wrapped = format!("faults:\n{}", yaml.replace("\n", "\n  "));
        assert_eq!(parse_scenario(&wrapped).expect("wrapped"), f);
        assert!(parse_scenario("- at_secs: 1\n  fault: {kind: nope}").is_err());
    }
}
