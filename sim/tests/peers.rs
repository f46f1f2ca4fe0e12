//! Compatibility with real peers (ignored by default: they need Python's prometheus_client and a
//! Prometheus binary; `scripts/test` runs them with `--include-ignored`).

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::{http, mesh};
use meshfed_sim::{SimConfig, Simulator};

fn tmp_dir(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("meshfed-sim-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    dir
}

const PARSE_PY: &str = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = []
for fam in text_string_to_metric_families(open(sys.argv[1]).read()):
    for s in fam.samples:
        out.append([s.name, {k: v for k, v in s.labels.items() if v != ""}, s.value, fam.type])
print(json.dumps(out))
"#;

#[test]
#[ignore = "needs python3 with prometheus_client"]
fn python_prometheus_client_parses_every_pod() {
    let dir = tmp_dir("py");
    let (m, _) = mesh(SimConfig::default());
    let mut types = std::collections::BTreeSet::new();
    for p in m.topology().pods.iter().step_by(5) {
        let path = dir.join("scrape.txt");
        std::fs::write(&path, m.render_at(&p.name, 150_000).expect("render")).expect("write");
        let out = Command::new("python3")
            .arg("-c")
            .arg(PARSE_PY)
            .arg(&path)
            .output()
            .expect("python3 runs");
        assert!(
            out.status.success(),
            "python failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let parsed: Vec<(String, serde_json::Map<String, serde_json::Value>, f64, String)> =
            serde_json::from_slice(&out.stdout).expect("json");
        let ours = m.samples_at(&p.name, 150_000).expect("samples");
        assert_eq!(parsed.len(), ours.len(), "{}", p.name);
        for ((name, labels, value, _), (l, v)) in parsed.iter().zip(&ours) {
            // prometheus_client appends `_total` to counter samples that lack it.
            let ours_name = l.metric_name().unwrap_or_default();
            assert!(
                name == ours_name || *name == format!("{ours_name}_total"),
                "{name} vs {ours_name}"
            );
            assert_eq!(value, v);
            for (k, val) in labels {
                assert_eq!(l.get(k), val.as_str(), "{name} {k}");
            }
            assert_eq!(labels.len() + 1, l.len());
        }
        types.extend(parsed.into_iter().map(|s| s.3));
    }
    assert_eq!(
        types.into_iter().collect::<Vec<_>>(),
        ["counter", "gauge", "histogram"]
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn query(addr: &str, q: &str) -> serde_json::Value {
    let (status, body) = http(
        addr,
        "GET",
        &format!("/api/v1/query?query={}", urlencode(q)),
        None,
    )
    .await
    .expect("query");
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body:?}"))
}

fn scalar(v: &serde_json::Value) -> f64 {
    v["data"]["result"][0]["value"][1]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or(f64::NAN)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a prometheus binary"]
async fn real_prometheus_scrapes_every_pod_and_sees_the_configured_rates() {
    let dir = tmp_dir("prom");
    let sim = Simulator::start(SimConfig::quiet()).await.expect("sim");
    let sd = dir.join("targets.json");
    sim.write_file_sd(&sd, None).expect("file_sd");
    let free = std::net::TcpListener::bind("127.0.0.1:0").expect("port");
    let web = free.local_addr().expect("addr").to_string();
    drop(free);
    let cfg = format!(
        "global: {{scrape_interval: 1s, scrape_timeout: 900ms}}\nscrape_configs:\n- job_name: sim\n  \
         file_sd_configs: [{{files: ['{}'], refresh_interval: 1s}}]\n",
        sd.display()
    );
    std::fs::write(dir.join("prometheus.yml"), cfg).expect("config");
    let mut prom = Command::new("prometheus")
        .arg(format!("--config.file={}", dir.join("prometheus.yml").display()))
        .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
        .arg(format!("--web.listen-address={web}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("prometheus starts");
    tokio::time::sleep(Duration::from_secs(20)).await;
    let up = query(&web, "count(up == 1)").await;
    let pair = query(
        &web,
        r#"sum(rate(istio_requests_total{reporter="source",source_cluster="cluster-1",destination_cluster="cluster-2"}[10s]))"#,
    )
    .await;
    let _ = prom.kill();
    let _ = prom.wait();
    assert_eq!(scalar(&up), sim.targets().len() as f64, "every pod is up: {up}");
    let want = sim.mesh().cluster_pair_rate("cluster-1", "cluster-2");
    let got = scalar(&pair);
    assert!((got - want).abs() < 0.1 * want, "rate {got} vs configured {want}");
    sim.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
