//! Load generator for `bench/relay/run.sh`: connects N collectors (relay clients) to an
//! aggregator and either streams Istio-shaped batches as fast as the aggregator acknowledges them
//! (`stream`) or holds the connections idle (`idle`), printing one JSON line of results.
//!
//! `cargo run --release -p meshfed-tests --example relay_load -- stream ADDR COLLECTORS SECONDS SERIES`
//! `cargo run --release -p meshfed-tests --example relay_load -- idle ADDR COLLECTORS SECONDS`

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use meshfed_relay::client::{RelayClient, RelayClientOptions};
use meshfed_relay::encode::{OutgoingSample, SeriesLabels};
use tokio_util::sync::CancellationToken;

fn series(collector: usize, n: usize) -> Vec<SeriesLabels> {
    (0..n)
        .map(|i| {
            SeriesLabels::from_pairs([
                ("__name__", "istio_requests_total".to_owned()),
                ("reporter", "destination".to_owned()),
                ("source_workload", format!("src-{}", i % 50)),
                ("source_workload_namespace", "web".to_owned()),
                ("destination_workload", format!("dst-{}", i % 37)),
                ("destination_workload_namespace", "web".to_owned()),
                (
                    "destination_service",
                    format!("svc-{}.web.svc.cluster.local", i % 37),
                ),
                ("response_code", ["200", "404", "503"][i % 3].to_owned()),
                ("response_flags", "-".to_owned()),
                ("connection_security_policy", "mutual_tls".to_owned()),
                ("pod", format!("pod-{collector}-{}", i / 500)),
                ("series", i.to_string()),
            ])
        })
        .collect()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: relay_load stream|idle ADDR COLLECTORS SECONDS [SERIES]";
    anyhow::ensure!(args.len() >= 5, usage);
    let (mode, addr, collectors, seconds) = (
        args[1].as_str(),
        args[2].clone(),
        args[3].parse::<usize>()?,
        args[4].parse::<f64>()?,
    );
    let n_series = args.get(5).map_or(Ok(1000), |s| s.parse::<usize>())?;
    let stop = CancellationToken::new();
    let mut clients = Vec::new();
    for c in 0..collectors {
        let options = RelayClientOptions {
            endpoints: vec![format!("http://{addr}")],
            cluster: format!("cluster-{c}"),
            collector_id: format!("load-{c}"),
            max_queued_batches: 8,
            ..RelayClientOptions::default()
        };
        clients.push(RelayClient::spawn(options, stop.clone()));
    }
    // Wait for every stream to be up.
    let t0 = Instant::now();
    while clients
        .iter()
        .any(|(c, _)| !c.stats().connected.load(Ordering::Relaxed))
    {
        anyhow::ensure!(
            t0.elapsed() < Duration::from_secs(60),
            "collectors did not all connect"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let connect_secs = t0.elapsed().as_secs_f64();
    if mode == "idle" {
        // Tell the benchmark script every collector is connected, then hold.
        if let Ok(path) = std::env::var("READY_FILE") {
            std::fs::write(path, "ready")?;
        }
        tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
        println!("{{\"mode\":\"idle\",\"collectors\":{collectors},\"connect_secs\":{connect_secs:.2}}}");
        return Ok(());
    }
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(seconds);
    let mut tasks = Vec::new();
    for (i, (client, _)) in clients.iter().enumerate() {
        let client = client.clone();
        let labels = series(i, n_series);
        tasks.push(tokio::spawn(async move {
            let mut ts = 1_700_000_000_000i64;
            let mut value = 0.0;
            while Instant::now() < deadline {
                ts += 15_000;
                value += 1.0;
                let batch = labels
                    .iter()
                    .map(|l| OutgoingSample {
                        labels: l.clone(),
                        timestamp_ms: ts,
                        value,
                    })
                    .collect();
                if client.send(batch).await.is_err() {
                    break;
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    // Count only what the aggregator acknowledged within the run.
    let elapsed = started.elapsed().as_secs_f64();
    let acked: u64 = clients
        .iter()
        .map(|(c, _)| c.stats().samples_acked.load(Ordering::Relaxed))
        .sum();
    println!(
        "{{\"mode\":\"stream\",\"collectors\":{collectors},\"series_per_collector\":{n_series},\"seconds\":{elapsed:.2},\"samples_acked\":{acked},\"samples_per_sec\":{:.0}}}",
        acked as f64 / elapsed
    );
    stop.cancel();
    Ok(())
}
