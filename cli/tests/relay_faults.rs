//! Exactly-once delivery through real faults, with real processes and sockets: an aggregator
//! process (mTLS, WAL on disk) and three collector processes (disk buffers) talk through a TCP
//! proxy this test controls, while the simulator runs in the test process and records every
//! scrape it serves. During the run the aggregator is killed with SIGKILL and restarted, frozen
//! with SIGSTOP/SIGCONT, a collector is restarted, and the network path is cut for 20 s.
//! Afterwards the aggregator must hold exactly what the simulator served: no gap, no duplicate.

#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use meshfed_model::Labels;
use meshfed_sim::{SimConfig, Simulator};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

const BIN: &str = env!("CARGO_BIN_EXE_meshfed");
const TARGET_LABELS: [&str; 5] = ["cluster", "instance", "job", "namespace", "pod"];

/// A child process killed when the test ends, however it ends.
struct Proc {
    name: String,
    child: Option<Child>,
    log: PathBuf,
}

impl Proc {
    fn start(name: &str, args: &[String], dir: &Path) -> Self {
        let log = dir.join(format!("{name}.log"));
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let child = Command::new(BIN)
            .args(args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(out)
            .spawn()
            .unwrap();
        Self {
            name: name.to_owned(),
            child: Some(child),
            log,
        }
    }

    fn pid(&self) -> String {
        self.child.as_ref().unwrap().id().to_string()
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.pid()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {sig} {}", self.name);
    }

    /// Sends `sig` and waits for the process to exit.
    fn stop(&mut self, sig: &str) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill").args([sig, &c.id().to_string()]).status();
            let _ = c.wait();
        }
    }

    fn tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if std::thread::panicking() {
            eprintln!("--- last lines of {} ---\n{}", self.name, self.tail());
        }
    }
}

/// A TCP forwarder whose path can be cut (open connections reset, new ones refused).
struct Proxy {
    addr: std::net::SocketAddr,
    cut: Arc<AtomicBool>,
    generation: Arc<parking_lot_free::Cell>,
}

mod parking_lot_free {
    use tokio_util::sync::CancellationToken;
    /// The token all live connections watch; replaced on every cut.
    pub struct Cell(pub std::sync::Mutex<CancellationToken>);
}

impl Proxy {
    async fn start(upstream: std::net::SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let cut = Arc::new(AtomicBool::new(false));
        let generation = Arc::new(parking_lot_free::Cell(std::sync::Mutex::new(
            CancellationToken::new(),
        )));
        let (c, g) = (Arc::clone(&cut), Arc::clone(&generation));
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    continue;
                };
                if c.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let token = g.0.lock().unwrap().clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = token.cancelled() => {}
                    }
                });
            }
        });
        Self {
            addr,
            cut,
            generation,
        }
    }

    fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        self.generation.0.lock().unwrap().cancel();
    }

    fn restore(&self) {
        *self.generation.0.lock().unwrap() = CancellationToken::new();
        self.cut.store(false, Ordering::SeqCst);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn aggregator_args(dir: &Path, relay_port: u16, http_port: u16) -> Vec<String> {
    vec![
        "aggregator".into(),
        format!("--relay-listen=127.0.0.1:{relay_port}"),
        format!("--http-listen=127.0.0.1:{http_port}"),
        format!("--data-dir={}", dir.join("data").display()),
        format!("--tls-dir={}", dir.join("certs").display()),
    ]
}

fn collector_config(
    dir: &Path,
    cluster: &str,
    proxy: std::net::SocketAddr,
    targets: &[meshfed_sim::Target],
) -> PathBuf {
    let certs = dir.join("certs");
    let mut yaml = format!(
        "cluster: {cluster}\ncollector_id: {cluster}-c\nrelay:\n  endpoints: [\"https://{proxy}\"]\n  server_name: \"127.0.0.1\"\n  \
         tls: {{ca_file: {ca}, cert_file: {cert}, key_file: {key}}}\n  buffer_dir: {buf}\n  max_backoff_ms: 1000\n  peer_timeout_ms: 3000\n\
         scrape: {{interval_secs: 1, timeout_ms: 5000}}\ntargets:\n  static:\n",
        ca = certs.join("ca.pem").display(),
        cert = certs.join(format!("{cluster}.pem")).display(),
        key = certs.join(format!("{cluster}-key.pem")).display(),
        buf = dir.join(format!("buffer-{cluster}")).display(),
    );
    for t in targets.iter().filter(|t| t.cluster == cluster) {
        yaml.push_str(&format!(
            "    - url: {}\n      labels: {{namespace: {}, pod: {}}}\n",
            t.url, t.namespace, t.pod
        ));
    }
    let path = dir.join(format!("{cluster}.yaml"));
    std::fs::write(&path, yaml).unwrap();
    path
}

async fn query(http_port: u16, q: &str, time: f64) -> serde_json::Value {
    let url = reqwest::Url::parse_with_params(
        &format!("http://127.0.0.1:{http_port}/api/v1/query"),
        &[("query", q), ("time", &format!("{time:.3}"))],
    )
    .unwrap();
    let body = reqwest::get(url).await.unwrap().text().await.unwrap();
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["status"], "success", "{q}: {body}");
    v
}

async fn wait_ready(http_port: u16) {
    for _ in 0..200 {
        if reqwest::get(format!("http://127.0.0.1:{http_port}/-/ready"))
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("aggregator did not become ready");
}

fn served_key(labels: &Labels) -> String {
    labels.to_string()
}

fn stored_key(metric: &serde_json::Map<String, serde_json::Value>) -> String {
    let pairs = metric
        .iter()
        .filter(|(k, _)| !TARGET_LABELS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()));
    Labels::from_pairs(pairs).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_served_sample_is_stored_exactly_once_through_faults() {
    let dir = std::env::temp_dir().join(format!("meshfed-relay-faults-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let sim = Simulator::start(SimConfig {
        record_scrapes: 1_000,
        control_listen: None,
        ..SimConfig::quiet()
    })
    .await
    .unwrap();
    let targets = sim.targets();
    let clusters = ["cluster-1", "cluster-2", "cluster-3"];
    let names: Vec<String> = clusters.iter().map(|c| (*c).to_owned()).collect();
    meshfed_relay::tls::devca::write_dev_pki(
        &dir.join("certs"),
        "meshfed.test",
        &names,
        &["127.0.0.1".into()],
        1,
    )
    .unwrap();

    let (relay_port, http_port) = (free_port(), free_port());
    let mut aggregator = Proc::start("aggregator", &aggregator_args(&dir, relay_port, http_port), &dir);
    wait_ready(http_port).await;
    let proxy = Proxy::start(format!("127.0.0.1:{relay_port}").parse().unwrap()).await;
    let mut collectors: BTreeMap<&str, Proc> = BTreeMap::new();
    for c in clusters {
        let cfg = collector_config(&dir, c, proxy.addr, &targets);
        collectors.insert(
            c,
            Proc::start(
                c,
                &["collector".into(), format!("--config={}", cfg.display())],
                &dir,
            ),
        );
    }
    let sleep = |s: f64| tokio::time::sleep(Duration::from_secs_f64(s));

    sleep(6.0).await;
    aggregator.stop("-KILL");
    sleep(3.0).await;
    aggregator = Proc::start("aggregator", &aggregator_args(&dir, relay_port, http_port), &dir);
    wait_ready(http_port).await;

    sleep(5.0).await;
    aggregator.signal("-STOP");
    sleep(5.0).await;
    aggregator.signal("-CONT");

    sleep(4.0).await;
    let c2 = collectors.get_mut("cluster-2").unwrap();
    c2.stop("-TERM");
    sleep(2.0).await;
    let cfg = dir.join("cluster-2.yaml");
    collectors.insert(
        "cluster-2",
        Proc::start(
            "cluster-2",
            &["collector".into(), format!("--config={}", cfg.display())],
            &dir,
        ),
    );

    sleep(3.0).await;
    proxy.cut();
    sleep(20.0).await;
    proxy.restore();

    // Let the buffers drain, then stop the collectors cleanly (they wait for the last acks).
    sleep(8.0).await;
    for p in collectors.values_mut() {
        p.stop("-TERM");
    }
    let end = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
        + 1.0;

    // Count: one envoy_server_live sample per scrape the simulator served, per pod.
    let counts = query(http_port, "count_over_time(envoy_server_live[30m])", end).await;
    let mut stored: BTreeMap<String, u64> = BTreeMap::new();
    for r in counts["data"]["result"].as_array().unwrap() {
        let pod = r["metric"]["pod"].as_str().unwrap().to_owned();
        stored.insert(pod, r["value"][1].as_str().unwrap().parse().unwrap());
    }
    let mut total = 0;
    for t in &targets {
        let served = sim.served_scrapes(&t.pod).unwrap().len() as u64;
        assert!(served >= 40, "pod {} served only {served} scrapes", t.pod);
        assert_eq!(
            stored.get(&t.pod).copied().unwrap_or(0),
            served,
            "scrapes stored for {}",
            t.pod
        );
        total += served;
    }

    // Values: every istio_requests_total series holds exactly the served values, in order.
    let matrix = query(http_port, "istio_requests_total[30m]", end).await;
    let mut by_pod: BTreeMap<String, BTreeMap<String, Vec<f64>>> = BTreeMap::new();
    for r in matrix["data"]["result"].as_array().unwrap() {
        let metric = r["metric"].as_object().unwrap();
        let pod = metric["pod"].as_str().unwrap().to_owned();
        let values = r["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p[1].as_str().unwrap().parse().unwrap())
            .collect();
        by_pod.entry(pod).or_default().insert(stored_key(metric), values);
    }
    let mut series_checked = 0;
    for t in &targets {
        let mut want: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        for scrape in sim.served_scrapes(&t.pod).unwrap() {
            for (labels, v) in scrape
                .samples
                .iter()
                .filter(|(l, _)| l.metric_name() == Some("istio_requests_total"))
            {
                want.entry(served_key(labels)).or_default().push(*v);
            }
        }
        let got = by_pod.remove(&t.pod).unwrap_or_default();
        assert_eq!(got.len(), want.len(), "istio_requests_total series of {}", t.pod);
        for (k, w) in &want {
            assert_eq!(got.get(k), Some(w), "samples of {k} from {}", t.pod);
        }
        series_checked += want.len();
    }
    println!(
        "relay faults: {total} scrapes from {} pods and {series_checked} request series stored exactly once",
        targets.len()
    );
    let metrics = reqwest::get(format!("http://127.0.0.1:{http_port}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in metrics.lines().filter(|l| {
        l.starts_with("meshfed_relay_duplicate_batches") || l.starts_with("meshfed_ingest_samples_refused")
    }) {
        println!("  {line}");
    }
    drop(aggregator);
    sim.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
