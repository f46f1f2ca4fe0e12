//! The simulator's output judged by real peers: Python's `prometheus_client` parser and a real
//! Prometheus 2.42 scraping the simulated pods. Both need programs `scripts/test` installs, so the
//! tests are `#[ignore]`d in plain `cargo test`.

#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use meshfed_model::exposition::{self, Format};
use meshfed_sim::{SimConfig, Simulator};
use meshfed_tests::{peer_program, vector_of};

/// Parses `body` with prometheus_client and returns `name{sorted labels}` → value for every sample.
fn python_parse(python: &str, body: &str) -> BTreeMap<String, f64> {
    let script = r#"
import sys, json
from prometheus_client.parser import text_string_to_metric_families
out = {}
for fam in text_string_to_metric_families(sys.stdin.read()):
    for s in fam.samples:
        labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()) if v != "")
        # prometheus_client names every counter sample `<family>_total`, even where the exposition
        # (like Envoy's `envoy_cluster_upstream_rq`) has no suffix; compare names without it.
        name = s.name[:-6] if s.name.endswith("_total") else s.name
        out[f"{name}{{{labels}}}"] = s.value
json.dump(out, sys.stdout)
"#;
    let mut child = Command::new(python)
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run python");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(body.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("python output");
    assert!(
        out.status.success(),
        "prometheus_client failed to parse the simulator's output"
    );
    let parsed: BTreeMap<String, f64> = serde_json::from_slice(&out.stdout).expect("json");
    parsed
}

fn own_parse(body: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for fam in exposition::parse(body, Format::PrometheusText).expect("parse") {
        for s in fam.samples {
            let name = s.labels.metric_name().unwrap_or_default();
            let name = name.strip_suffix("_total").unwrap_or(name);
            let labels: Vec<String> = s
                .labels
                .iter()
                .filter(|l| l.name != "__name__")
                .map(|l| format!("{}={}", l.name, l.value))
                .collect();
            out.insert(format!("{name}{{{}}}", labels.join(",")), s.value);
        }
    }
    out
}

#[tokio::test]
#[ignore = "needs Python's prometheus_client (scripts/test installs it)"]
async fn simulator_output_parses_with_prometheus_client_identically() {
    let python = peer_program("MESHFED_PYTHON", "python3");
    let sim = Simulator::start(SimConfig {
        control_listen: None,
        ..SimConfig::default()
    })
    .await
    .expect("sim");
    let client = reqwest::Client::new();
    let mut checked = 0;
    for t in sim.targets().iter().step_by(5) {
        let body = client
            .get(&t.url)
            .send()
            .await
            .expect("get")
            .text()
            .await
            .expect("body");
        let theirs = python_parse(&python, &body);
        let ours = own_parse(&body);
        let only_theirs: Vec<_> = theirs
            .iter()
            .filter(|(k, _)| !ours.contains_key(*k))
            .take(3)
            .collect();
        let only_ours: Vec<_> = ours
            .iter()
            .filter(|(k, _)| !theirs.contains_key(*k))
            .take(3)
            .collect();
        let differ: Vec<_> = theirs
            .iter()
            .filter(|(k, v)| ours.get(*k).is_some_and(|o| o != *v))
            .take(3)
            .collect();
        assert!(
            only_theirs.is_empty() && only_ours.is_empty() && differ.is_empty(),
            "pod {}: only prometheus_client {only_theirs:?}; only meshfed {only_ours:?}; values differ {differ:?}",
            t.pod
        );
        checked += theirs.len();
    }
    assert!(checked > 1000, "compared {checked} samples");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a real Prometheus (scripts/test installs Debian's prometheus 2.42)"]
async fn real_prometheus_scrapes_every_simulated_pod() {
    let prometheus = peer_program("PROMETHEUS_BIN", "prometheus");
    let sim = Simulator::start(SimConfig {
        control_listen: None,
        ..SimConfig::default()
    })
    .await
    .expect("sim");
    let dir = std::env::temp_dir().join(format!("meshfed-prom-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let sd = dir.join("targets.json");
    sim.write_file_sd(&sd, None).expect("file_sd");
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global: {{scrape_interval: 1s, scrape_timeout: 1s}}\nscrape_configs:\n  - job_name: sim\n    file_sd_configs: [{{files: ['{}'], refresh_interval: 1s}}]\n",
            sd.display()
        ),
    )
    .expect("config");
    let port = free_port();
    let _prometheus = KillOnDrop(
        Command::new(&prometheus)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("prometheus.log")).expect("log"))
            .spawn()
            .expect("start prometheus"),
    );
    let api = format!("http://127.0.0.1:{port}/api/v1/query");
    let client = reqwest::Client::new();
    let query = |q: &'static str| {
        let client = client.clone();
        let api = api.clone();
        async move {
            let url = reqwest::Url::parse_with_params(&api, &[("query", q)]).ok()?;
            let resp = client.get(url).send().await.ok()?.text().await.ok()?;
            vector_of(&serde_json::from_str(&resp).ok()?).ok()
        }
    };
    let pods = sim.targets().len();
    let mut up = Vec::new();
    for _ in 0..60 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        if let Some(v) = query("up").await {
            up = v;
            if up.len() == pods && up.iter().all(|(_, v)| *v == 1.0) {
                break;
            }
        }
    }
    assert_eq!(up.len(), pods, "Prometheus sees every pod");
    assert!(up.iter().all(|(_, v)| *v == 1.0), "every pod is up: {up:?}");
    let scraped = query("scrape_samples_scraped")
        .await
        .expect("scrape_samples_scraped");
    assert_eq!(scraped.len(), pods);
    let by_addr: BTreeMap<String, String> = sim.targets().into_iter().map(|t| (t.address, t.pod)).collect();
    for (labels, n) in scraped {
        let pod = &by_addr[&labels["instance"]];
        let want = sim.series_count(pod).expect("series count");
        assert_eq!(n as usize, want, "series exposed by {pod}");
    }
    let _ = std::fs::remove_dir_all(&dir);
    sim.shutdown().await;
}

/// Stops the peer process however the test ends.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}
