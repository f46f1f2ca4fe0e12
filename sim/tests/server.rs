//! Pod endpoints and the control API over real loopback sockets.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::http;
use meshfed_sim::{DarkMode, Fault, ManualClock, RunningSim, SimConfig, Simulator};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

async fn start(cfg: SimConfig) -> (RunningSim, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new());
    let sim = Simulator::start_with_clock(cfg, clock.clone())
        .await
        .expect("sim starts");
    (sim, clock)
}

fn addr_of(url: &str) -> &str {
    url.trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap_or_default()
}

#[tokio::test]
async fn pods_serve_scrapes_and_record_them() {
    let (sim, clock) = start(SimConfig {
        record_scrapes: 2,
        ..SimConfig::quiet()
    })
    .await;
    let targets = sim.targets();
    assert_eq!(targets.len(), sim.mesh().topology().pods.len());
    let t = &targets[0];
    assert!(t.url.starts_with("http://127.0.0.1:") && t.url.ends_with("/stats/prometheus"));
    for secs in [10, 20, 30] {
        clock.set_ms(secs * 1000);
        let (status, body) = http(addr_of(&t.url), "GET", "/stats/prometheus", None)
            .await
            .expect("scrape");
        assert_eq!(status, 200);
        assert_eq!(body, sim.mesh().render_at(&t.pod, secs * 1000).expect("render"));
    }
    let served = sim.served_scrapes(&t.pod).expect("recorded");
    assert_eq!(
        served.iter().map(|s| s.at_ms).collect::<Vec<_>>(),
        [20_000, 30_000]
    );
    assert_eq!(served[1].unix_ms, ManualClock::DEFAULT_BASE_UNIX_MS + 30_000);
    assert_eq!(
        served[1].samples,
        sim.mesh().samples_at(&t.pod, 30_000).expect("samples")
    );
    assert_eq!(sim.series_count(&t.pod).expect("count"), served[1].samples.len());
    assert!(served[1].samples.iter().all(|(l, _)| l.metric_name().is_some()));
    assert!(sim.served_scrapes(&targets[1].pod).expect("other pod").is_empty());
    sim.shutdown().await;
}

#[tokio::test]
async fn dark_cluster_refuses_then_recovers() {
    let (sim, _clock) = start(SimConfig::quiet()).await;
    let targets = sim.targets();
    let in_cluster = |c: &str| {
        targets
            .iter()
            .find(|t| t.cluster == c)
            .map(|t| addr_of(&t.url).to_string())
    };
    let (c1, c2) = (
        in_cluster("cluster-1").expect("c1"),
        in_cluster("cluster-2").expect("c2"),
    );
    // A kept-alive connection opened before the outage.
    let mut kept = TcpStream::connect(&c2).await.expect("connect");
    let req = format!("GET /stats/prometheus HTTP/1.1\r\nHost: {c2}\r\n\r\n");
    kept.write_all(req.as_bytes()).await.expect("write");
    let mut buf = vec![0u8; 4096];
    assert!(kept.read(&mut buf).await.expect("first response") > 0);

    let id = sim
        .inject(Fault::ClusterDark {
            cluster: "cluster-2".into(),
            mode: DarkMode::Refuse,
        })
        .expect("dark");
    assert!(
        http(&c2, "GET", "/stats/prometheus", None).await.is_err(),
        "dark cluster must not answer"
    );
    assert_eq!(
        http(&c1, "GET", "/stats/prometheus", None)
            .await
            .expect("cluster-1 answers")
            .0,
        200
    );
    // Drain whatever is left of the first response, then the next request on the old connection fails.
    let _ = tokio::time::timeout(Duration::from_millis(100), async {
        while kept.read(&mut buf).await.map(|n| n > 0).unwrap_or(false) {}
    })
    .await;
    let _ = kept.write_all(req.as_bytes()).await;
    let next = tokio::time::timeout(Duration::from_secs(2), kept.read(&mut buf))
        .await
        .expect("no hang");
    assert!(
        matches!(next, Ok(0) | Err(_)),
        "kept-alive connection must fail, got {next:?}"
    );

    assert!(sim.clear_fault(id));
    assert_eq!(
        http(&c2, "GET", "/stats/prometheus", None).await.expect("back").0,
        200
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn dark_cluster_in_hang_mode_times_out() {
    let (sim, _clock) = start(SimConfig::quiet()).await;
    let t = sim
        .targets()
        .into_iter()
        .find(|t| t.cluster == "cluster-3")
        .expect("target");
    sim.inject(Fault::ClusterDark {
        cluster: "cluster-3".into(),
        mode: DarkMode::Hang,
    })
    .expect("dark");
    let r = tokio::time::timeout(
        Duration::from_millis(300),
        http(addr_of(&t.url), "GET", "/stats/prometheus", None),
    );
    assert!(r.await.is_err(), "hung connection must time out");
    sim.shutdown().await;
}

#[tokio::test]
async fn control_api_over_a_socket() {
    let (sim, clock) = start(SimConfig::quiet()).await;
    let api = sim.control_addr().expect("control api").to_string();
    let get = |p: &'static str| {
        let api = api.clone();
        async move { http(&api, "GET", p, None).await.expect("request") }
    };
    let (s, body) = get("/targets").await;
    assert_eq!(s, 200);
    let targets: Vec<serde_json::Value> = serde_json::from_str(&body).expect("json");
    assert_eq!(targets.len(), sim.targets().len());
    let (s, body) = get("/topology").await;
    assert_eq!(s, 200);
    let topo: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(topo["clusters"].as_array().map(Vec::len), Some(3));

    let fault = r#"{"fault":{"kind":"error_rate","cluster":"cluster-1","workload":"web-api","fraction":0.5},"duration_secs":60}"#;
    let (s, body) = http(&api, "POST", "/faults", Some(fault)).await.expect("post");
    assert_eq!(s, 201, "{body}");
    let id = serde_json::from_str::<serde_json::Value>(&body).expect("json")["id"]
        .as_u64()
        .expect("id");
    clock.set_ms(1000);
    let (_, body) = get("/faults").await;
    let faults: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(faults[0]["active"], true);
    assert_eq!(faults[0]["end_secs"], 60.0);
    assert!(sim.mesh().configured_rate(|e| e.response_code == 503) > 0.0);
    assert_eq!(
        http(&api, "DELETE", &format!("/faults/{id}"), None)
            .await
            .expect("delete")
            .0,
        204
    );
    assert_eq!(
        http(&api, "DELETE", &format!("/faults/{id}"), None)
            .await
            .expect("delete")
            .0,
        404
    );
    let bad = r#"{"fault":{"kind":"latency","cluster":"cluster-1","workload":"nope","added_ms":5}}"#;
    assert_eq!(
        http(&api, "POST", "/faults", Some(bad)).await.expect("post").0,
        404
    );
    assert_eq!(
        http(&api, "POST", "/faults", Some("{}")).await.expect("post").0,
        422
    );

    let routing = r#"{"rules":[{"source_workload":"frontend","destination_service":"web-api","weights":{"cluster-2":1}}]}"#;
    assert_eq!(
        http(&api, "POST", "/routing", Some(routing))
            .await
            .expect("routing")
            .0,
        204
    );
    assert_eq!(
        sim.mesh()
            .configured_rate(|e| e.source_workload == "frontend" && e.destination_cluster == "cluster-1"),
        0.0
    );
    let (_, body) = get("/routing").await;
    assert!(body.contains("cluster-2"));
    let bad_routing = r#"{"rules":[{"destination_service":"web-api","weights":{"cluster-9":1}}]}"#;
    assert_eq!(
        http(&api, "POST", "/routing", Some(bad_routing))
            .await
            .expect("routing")
            .0,
        400
    );

    let (_, body) = get("/file_sd?cluster=cluster-1").await;
    let sd: Vec<serde_json::Value> = serde_json::from_str(&body).expect("json");
    assert!(!sd.is_empty() && sd.iter().all(|g| g["labels"]["cluster"] == "cluster-1"));
    assert_eq!(sd[0]["labels"]["__metrics_path__"], "/stats/prometheus");
    let (s, body) = get("/truth/clusters").await;
    assert_eq!(s, 200);
    assert!(body.contains("rate_rps"));
    sim.shutdown().await;
}

#[tokio::test]
async fn run_writes_file_sd_and_stops_on_cancel() {
    let dir = std::env::temp_dir().join(format!("meshfed-sim-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let path = dir.join("targets.json");
    let cfg = SimConfig {
        file_sd_path: Some(path.clone()),
        control_listen: None,
        ..SimConfig::quiet()
    };
    let token = CancellationToken::new();
    let task = tokio::spawn(meshfed_sim::run(cfg, token.clone()));
    let mut groups = Vec::new();
    for _ in 0..100 {
        if let Ok(text) = std::fs::read_to_string(&path) {
            groups = serde_json::from_str::<Vec<serde_json::Value>>(&text).expect("file_sd json");
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!groups.is_empty());
    let addr = groups[0]["targets"][0].as_str().expect("address").to_string();
    assert_eq!(
        http(&addr, "GET", "/stats/prometheus", None)
            .await
            .expect("scrape")
            .0,
        200
    );
    token.cancel();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("stops")
        .expect("joins")
        .expect("ok");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn gzip_is_served_when_enabled_and_asked_for() {
    let (sim, _clock) = start(SimConfig {
        gzip: true,
        control_listen: None,
        ..SimConfig::quiet()
    })
    .await;
    let t = &sim.targets()[0];
    let addr = addr_of(&t.url);
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let req = format!(
        "GET /stats/prometheus HTTP/1.1\r\nHost: {addr}\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.expect("write");
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.expect("read");
    let head = String::from_utf8_lossy(&buf).to_ascii_lowercase();
    assert!(head.contains("content-encoding: gzip"), "{head:.300}");
    assert!(head.contains("content-type: text/plain; version=0.0.4"));
    sim.shutdown().await;
}
