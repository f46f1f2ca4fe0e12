//! Target discovery: static targets from the config and Prometheus `file_sd` files.
//!
//! A `file_sd` file is a JSON (or YAML) list of groups `{"targets": ["host:port"], "labels": {…}}`.
//! As in Prometheus, `__scheme__` and `__metrics_path__` build the URL, other `__`-prefixed labels
//! are dropped, and `instance` defaults to the target address.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::config::{ScrapeConfig, TargetsConfig};
use crate::{Error, Result};

/// One thing to scrape: its URL and the labels added to every series it exposes.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Target {
    /// Full URL.
    pub url: String,
    /// Target labels (`job`, `instance`, plus discovered ones), without `__` labels.
    pub labels: BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct FileGroup {
    targets: Vec<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

/// Reads one `file_sd` file.
pub fn read_target_file(path: &Path, scrape: &ScrapeConfig) -> Result<Vec<Target>> {
    let err = |reason: String| Error::TargetFile {
        path: path.display().to_string(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    let is_yaml = path.extension().is_some_and(|e| e == "yaml" || e == "yml");
    let groups: Vec<FileGroup> = if is_yaml {
        serde_norway::from_str(&text).map_err(|e| err(e.to_string()))?
    } else {
        serde_json::from_str(&text).map_err(|e| err(e.to_string()))?
    };
    let mut out = Vec::new();
    for g in groups {
        for address in g.targets {
            out.push(target_from_address(&address, &g.labels, scrape));
        }
    }
    Ok(out)
}

/// Builds a target from a `host:port` address and discovered labels.
pub fn target_from_address(
    address: &str,
    labels: &BTreeMap<String, String>,
    scrape: &ScrapeConfig,
) -> Target {
    let scheme = labels.get("__scheme__").map_or("http", String::as_str);
    let path = labels.get("__metrics_path__").map_or("/metrics", String::as_str);
    let mut out: BTreeMap<String, String> = labels
        .iter()
        .filter(|(k, _)| !k.starts_with("__"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    out.entry("instance".into()).or_insert_with(|| address.to_owned());
    out.entry("job".into()).or_insert_with(|| scrape.job.clone());
    Target {
        url: format!("{scheme}://{address}{path}"),
        labels: out,
    }
}

/// All targets the config names right now: static ones plus the contents of every target file.
/// A file that cannot be read is reported and contributes nothing; the others still count.
pub fn discover(targets: &TargetsConfig, scrape: &ScrapeConfig) -> (Vec<Target>, Vec<Error>) {
    let mut out: Vec<Target> = targets
        .static_targets
        .iter()
        .map(|t| {
            let mut labels = t.labels.clone();
            let instance = t
                .url
                .split("://")
                .nth(1)
                .and_then(|r| r.split('/').next())
                .unwrap_or(&t.url);
            labels
                .entry("instance".into())
                .or_insert_with(|| instance.to_owned());
            labels.entry("job".into()).or_insert_with(|| scrape.job.clone());
            Target {
                url: t.url.clone(),
                labels,
            }
        })
        .collect();
    let mut errors = Vec::new();
    for f in &targets.files {
        match read_target_file(f, scrape) {
            Ok(t) => out.extend(t),
            Err(e) => errors.push(e),
        }
    }
    out.sort();
    out.dedup();
    (out, errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_sd_builds_urls_and_labels() {
        let dir = std::env::temp_dir().join(format!("meshfed-sd-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("t.json");
        std::fs::write(
            &f,
            r#"[{"targets":["127.0.0.1:9"],"labels":{"__metrics_path__":"/stats/prometheus","pod":"p-1"}}]"#,
        )
        .unwrap();
        let t = read_target_file(&f, &ScrapeConfig::default()).unwrap();
        assert_eq!(t[0].url, "http://127.0.0.1:9/stats/prometheus");
        assert_eq!(t[0].labels["pod"], "p-1");
        assert_eq!(t[0].labels["instance"], "127.0.0.1:9");
        assert_eq!(t[0].labels["job"], "envoy-stats");
        assert!(!t[0].labels.contains_key("__metrics_path__"));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn unreadable_file_is_an_error_not_a_panic() {
        let cfg = TargetsConfig {
            files: vec!["/nonexistent/x.json".into()],
            ..Default::default()
        };
        let (targets, errors) = discover(&cfg, &ScrapeConfig::default());
        assert!(targets.is_empty());
        assert!(errors[0].to_string().contains("/nonexistent/x.json"));
    }
}
