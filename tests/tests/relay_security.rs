//! Relay security over real sockets: only collectors with a certificate from the configured CA get
//! in, each speaks only for the cluster its certificate names, bad peers are refused with a
//! counted reason while good ones keep streaming, and certificates rotate without a restart.

#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use meshfed_aggregator::{Aggregator, AggregatorConfig};
use meshfed_model::Labels;
use meshfed_relay::client::{RelayClient, RelayClientOptions};
use meshfed_relay::encode::OutgoingSample;
use meshfed_relay::tls::client::build_client_config;
use meshfed_relay::tls::devca::{DevCa, Issued, Validity};
use meshfed_relay::tls::{TlsFiles, TlsReloader};
use meshfed_tests::counter_with_reason;
use tokio::io::AsyncWriteExt;
use tokio_util::sync::CancellationToken;

const TD: &str = "meshfed.test";

struct Pki {
    dir: std::path::PathBuf,
    ca: DevCa,
}

impl Pki {
    fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("meshfed-relay-sec-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let ca = DevCa::new("test CA").unwrap();
        ca.write(&dir, false).unwrap();
        ca.issue_server(&["127.0.0.1".into()], Validity::days(1))
            .unwrap()
            .write(&dir, "aggregator")
            .unwrap();
        Self { dir, ca }
    }

    /// Client files for `name`: the given certificate, trusting this PKI's CA.
    fn client(&self, name: &str, issued: &Issued) -> TlsFiles {
        issued.write(&self.dir, name).unwrap();
        TlsFiles::in_dir(&self.dir, name)
    }
}

async fn aggregator(pki: &Pki, stop: &CancellationToken) -> Aggregator {
    let config = AggregatorConfig {
        relay_listen: "127.0.0.1:0".into(),
        http_listen: "127.0.0.1:0".into(),
        tls: Some(TlsFiles::in_dir(&pki.dir, "aggregator")),
        ..AggregatorConfig::default()
    };
    Aggregator::start(&config, stop.clone()).await.unwrap()
}

fn client(agg: &Aggregator, cluster: &str, files: TlsFiles, stop: &CancellationToken) -> RelayClient {
    let tls = Arc::new(TlsReloader::new(files, build_client_config).unwrap());
    let options = RelayClientOptions {
        endpoints: vec![format!("https://{}", agg.relay_addr)],
        cluster: cluster.into(),
        collector_id: format!("{cluster}-test"),
        tls: Some(tls),
        initial_backoff_ms: 50,
        max_backoff_ms: 200,
        ..RelayClientOptions::default()
    };
    RelayClient::spawn(options, stop.clone()).0
}

fn samples(cluster_label: Option<&str>, name: &str, ts: i64) -> Vec<OutgoingSample> {
    let mut pairs = vec![("__name__", name.to_owned()), ("job", "t".to_owned())];
    if let Some(c) = cluster_label {
        pairs.push(("cluster", c.to_owned()));
    }
    vec![OutgoingSample {
        labels: Labels::from_pairs(pairs).into(),
        timestamp_ms: ts,
        value: 1.0,
    }]
}

async fn metrics(agg: &Aggregator) -> String {
    reqwest::get(format!("http://{}/metrics", agg.http_addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

async fn eventually(what: &str, mut f: impl AsyncFnMut() -> bool) {
    for _ in 0..100 {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_peers_are_refused_and_counted_while_good_ones_stream() {
    let pki = Pki::new("bad");
    let stop = CancellationToken::new();
    let agg = aggregator(&pki, &stop).await;

    // A good collector of cluster-3 keeps streaming throughout.
    let good = client(
        &agg,
        "cluster-3",
        pki.client(
            "cluster-3",
            &pki.ca.issue_client(TD, "cluster-3", Validity::days(1)).unwrap(),
        ),
        &stop,
    );
    good.send(samples(None, "good_total", 1_000)).await.unwrap();

    // Another CA.
    let foreign_ca = DevCa::new("someone else").unwrap();
    let other = client(
        &agg,
        "cluster-1",
        pki.client(
            "other-ca",
            &foreign_ca
                .issue_client(TD, "cluster-1", Validity::days(1))
                .unwrap(),
        ),
        &stop,
    );
    other.send(samples(None, "other_ca_total", 1_000)).await.unwrap();
    // Expired.
    let expired = client(
        &agg,
        "cluster-1",
        pki.client(
            "expired",
            &pki.ca.issue_client(TD, "cluster-1", Validity::expired()).unwrap(),
        ),
        &stop,
    );
    expired.send(samples(None, "expired_total", 1_000)).await.unwrap();
    // No certificate at all: plain TLS client without a client cert.
    let no_cert = tokio::spawn(no_client_cert_handshake(agg.relay_addr, pki.dir.join("ca.pem")));
    // Valid certificate for cluster-2, claiming cluster-1 in its series.
    let liar = client(
        &agg,
        "cluster-2",
        pki.client(
            "cluster-2",
            &pki.ca.issue_client(TD, "cluster-2", Validity::days(1)).unwrap(),
        ),
        &stop,
    );
    liar.send(samples(Some("cluster-1"), "liar_total", 1_000))
        .await
        .unwrap();
    // Garbage on the port.
    let mut raw = tokio::net::TcpStream::connect(agg.relay_addr).await.unwrap();
    raw.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n\x00\x01\x02garbage")
        .await
        .unwrap();

    eventually("every refusal to be counted", async || {
        let m = metrics(&agg).await;
        counter_with_reason(&m, "meshfed_relay_handshake_failures_total", "unknown_ca") >= 1.0
            && counter_with_reason(&m, "meshfed_relay_handshake_failures_total", "expired") >= 1.0
            && counter_with_reason(&m, "meshfed_relay_handshake_failures_total", "no_certificate") >= 1.0
            && counter_with_reason(&m, "meshfed_relay_handshake_failures_total", "not_tls") >= 1.0
            && counter_with_reason(&m, "meshfed_relay_rejected_total", "foreign_cluster") >= 1.0
    })
    .await;
    let _ = no_cert.await;

    // The good collector kept going: its next batches are acknowledged.
    for ts in 2..5 {
        good.send(samples(None, "good_total", ts * 1_000)).await.unwrap();
    }
    eventually("the good collector's batches to be acknowledged", async || {
        good.pending() == 0
    })
    .await;
    assert!(good.stats().connected.load(Ordering::Relaxed));

    // Nothing from the refused peers was stored; the good series carries its certificate's cluster.
    let store = &agg.store;
    let all = store.series(
        &[vec![
            meshfed_model::Matcher::new(meshfed_model::MatchOp::Regex, "__name__", ".+").unwrap(),
        ]],
        i64::MIN,
        i64::MAX,
    );
    let names: Vec<_> = all
        .iter()
        .filter_map(|l| l.metric_name().map(str::to_owned))
        .collect();
    assert_eq!(names, ["good_total"], "stored series: {all:?}");
    assert_eq!(all[0].get("cluster"), Some("cluster-3"));
    for c in [&other, &expired, &liar] {
        assert_eq!(c.stats().batches_acked.load(Ordering::Relaxed), 0);
    }
    stop.cancel();
}

/// Completes a TLS handshake that trusts the server but presents no client certificate, then
/// tries to write; the server must refuse it.
async fn no_client_cert_handshake(addr: std::net::SocketAddr, ca: std::path::PathBuf) {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pki_types::CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let config =
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
    if let Ok(mut tls) = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
    {
        let _ = tls.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await;
        let _ = tls.flush().await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotated_certificates_are_used_for_new_handshakes_without_restart() {
    let pki = Pki::new("rotate");
    let stop = CancellationToken::new();
    let agg = aggregator(&pki, &stop).await;
    let files = pki.client(
        "cluster-1",
        &pki.ca.issue_client(TD, "cluster-1", Validity::days(1)).unwrap(),
    );
    let c = client(&agg, "cluster-1", files.clone(), &stop);
    c.send(samples(None, "before_total", 1_000)).await.unwrap();
    eventually("the first batch", async || c.pending() == 0).await;

    // Rotate everything to a new CA on disk: CA bundle, server and client certificates.
    let new_ca = DevCa::new("rotated CA").unwrap();
    new_ca
        .issue_server(&["127.0.0.1".into()], Validity::days(1))
        .unwrap()
        .write(&pki.dir, "aggregator")
        .unwrap();
    new_ca
        .issue_client(TD, "cluster-1", Validity::days(1))
        .unwrap()
        .write(&pki.dir, "cluster-1")
        .unwrap();
    new_ca.write(&pki.dir, false).unwrap();

    // The open stream is untouched.
    c.send(samples(None, "during_total", 2_000)).await.unwrap();
    eventually("the batch on the old stream", async || c.pending() == 0).await;

    // After the watchers noticed, a new client with only the new files gets in, and one with a
    // certificate of the old CA does not.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let fresh = client(&agg, "cluster-1", files.clone(), &stop);
    fresh.send(samples(None, "after_total", 3_000)).await.unwrap();
    eventually(
        "a batch over a handshake with the rotated certificates",
        async || fresh.pending() == 0,
    )
    .await;
    let stale = client(
        &agg,
        "cluster-2",
        pki.client(
            "cluster-2",
            &pki.ca.issue_client(TD, "cluster-2", Validity::days(1)).unwrap(),
        ),
        &stop,
    );
    stale.send(samples(None, "stale_total", 3_000)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        stale.stats().batches_acked.load(Ordering::Relaxed),
        0,
        "old-CA certificate refused"
    );
    assert_eq!(
        agg.store.stats().series,
        3,
        "before, during and after were all stored"
    );
    stop.cancel();
}
