//! The relay's control plane over a real loopback stream: metadata and topology go up, config
//! snapshots come down, acks go back up; after the aggregator restarts, the new session receives
//! the collector's whole state again and the collector receives the current snapshot again.

#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.

use std::sync::Arc;
use std::time::Duration;

use meshfed_model::Labels;
use meshfed_relay::client::{RelayClient, RelayClientOptions};
use meshfed_relay::decode::ResolvedSample;
use meshfed_relay::proto::{self, ClusterTopology, ConfigAck, ConfigSnapshot, MetricMetadata};
use meshfed_relay::server::{ConfigFeed, Ingest, RelayServerMetrics, RelayService};
use parking_lot::Mutex;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

#[derive(Default)]
struct Recorder {
    metadata: Mutex<Vec<(String, MetricMetadata)>>,
    topology: Mutex<Vec<(String, String, ClusterTopology)>>,
    acks: Mutex<Vec<(String, ConfigAck)>>,
    feed: Mutex<Option<watch::Sender<Option<Arc<ConfigSnapshot>>>>>,
}

impl Ingest for Recorder {
    fn register_series(&self, _labels: &Labels) -> u64 {
        0
    }
    fn append(&self, _cluster: &str, _samples: &[ResolvedSample]) -> Result<(), String> {
        Ok(())
    }
    fn metadata(&self, cluster: &str, entries: &[MetricMetadata]) {
        let mut m = self.metadata.lock();
        m.extend(entries.iter().map(|e| (cluster.to_owned(), e.clone())));
    }
    fn topology(&self, cluster: &str, collector_id: &str, topology: ClusterTopology) {
        let mut t = self.topology.lock();
        t.push((cluster.to_owned(), collector_id.to_owned(), topology));
    }
    fn config_ack(&self, cluster: &str, _collector_id: &str, ack: ConfigAck) {
        self.acks.lock().push((cluster.to_owned(), ack));
    }
    fn config_feed(&self, cluster: &str) -> Option<ConfigFeed> {
        assert_eq!(cluster, "east");
        self.feed.lock().as_ref().map(|tx| tx.subscribe())
    }
}

/// Serves `ingest` on `listener` until `stop`.
fn serve(listener: TcpListener, ingest: Arc<Recorder>, stop: CancellationToken) {
    let svc = RelayService::new(ingest, RelayServerMetrics::default(), false).into_server(4 << 20);
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(svc)
            .serve_with_incoming_shutdown(incoming, stop.cancelled_owned()),
    );
}

/// A TCP proxy whose target can be switched; switching cuts every open connection, as an
/// aggregator crash would.
struct Proxy {
    target: Arc<Mutex<(std::net::SocketAddr, CancellationToken)>>,
}

impl Proxy {
    async fn start(target: std::net::SocketAddr) -> (Self, std::net::SocketAddr) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new((target, CancellationToken::new())));
        let shared = Arc::clone(&state);
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let (to, cut) = shared.lock().clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(to).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cut.cancelled() => {}
                    }
                });
            }
        });
        (Self { target: state }, addr)
    }

    fn switch(&self, to: std::net::SocketAddr) {
        let mut t = self.target.lock();
        t.1.cancel();
        *t = (to, CancellationToken::new());
    }
}

async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..200 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("timed out waiting for {what}");
}

fn snapshot(version: u64) -> Arc<ConfigSnapshot> {
    Arc::new(ConfigSnapshot {
        version,
        objects: vec![proto::ConfigObject {
            api_version: "networking.istio.io/v1".into(),
            kind: "ServiceEntry".into(),
            namespace: "istio-system".into(),
            name: "web-api-global".into(),
            manifest_json: "{}".into(),
        }],
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_flows_both_ways_and_is_resent_after_reconnect() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (proxy, addr) = Proxy::start(listener.local_addr().unwrap()).await;
    let first = Arc::new(Recorder::default());
    let (feed, _) = watch::channel(Some(snapshot(7)));
    *first.feed.lock() = Some(feed.clone());
    let server_stop = CancellationToken::new();
    serve(listener, Arc::clone(&first), server_stop.clone());

    let stop = CancellationToken::new();
    let options = RelayClientOptions {
        endpoints: vec![format!("http://{addr}")],
        cluster: "east".into(),
        collector_id: "c1".into(),
        initial_backoff_ms: 20,
        max_backoff_ms: 100,
        ..RelayClientOptions::default()
    };
    let (client, task) = RelayClient::spawn(options, stop.clone());
    let meta = |help: &str| MetricMetadata {
        metric: "istio_requests".into(),
        r#type: "counter".into(),
        help: help.into(),
        unit: String::new(),
    };
    assert!(client.publish_metadata(vec![meta("Requests.")]));
    let topo = ClusterTopology {
        network: "net-east".into(),
        gateways: vec!["10.0.0.1".into()],
        services: Vec::new(),
    };
    assert!(client.publish_topology(topo.clone()));

    // Down: the current snapshot right after the welcome.
    let mut config = client.config_snapshots();
    eventually("snapshot 7", || {
        config.borrow().as_ref().map(|s| s.version) == Some(7)
    })
    .await;
    assert_eq!(
        config.borrow_and_update().as_ref().unwrap().objects[0].name,
        "web-api-global"
    );
    client.ack_config(ConfigAck {
        version: 7,
        errors: Vec::new(),
    });
    eventually("metadata, topology and ack", || {
        first.metadata.lock().len() == 1 && first.topology.lock().len() == 1 && first.acks.lock().len() == 1
    })
    .await;
    assert_eq!(first.metadata.lock()[0], ("east".to_owned(), meta("Requests.")));
    assert_eq!(
        first.topology.lock()[0],
        ("east".into(), "c1".into(), topo.clone())
    );

    // Only changes go up while connected; a newer snapshot comes down.
    assert!(!client.publish_metadata(vec![meta("Requests.")]));
    assert!(client.publish_metadata(vec![meta("Requests served.")]));
    feed.send_replace(Some(snapshot(8)));
    config.changed().await.unwrap();
    assert_eq!(config.borrow().as_ref().unwrap().version, 8);
    eventually("changed metadata", || first.metadata.lock().len() == 2).await;
    assert_eq!(first.metadata.lock()[1].1, meta("Requests served."));
    assert_eq!(first.topology.lock().len(), 1, "unchanged topology is not resent");

    // The aggregator dies and another one takes its place: the new session gets everything again.
    let second = Arc::new(Recorder::default());
    *second.feed.lock() = Some(watch::Sender::new(Some(snapshot(9))));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let second_addr = listener.local_addr().unwrap();
    serve(listener, Arc::clone(&second), server_stop.clone());
    proxy.switch(second_addr);
    eventually("state after reconnect", || {
        second.metadata.lock().len() == 1
            && second.topology.lock().len() == 1
            && second.acks.lock().len() == 1
    })
    .await;
    assert_eq!(second.metadata.lock()[0].1, meta("Requests served."));
    assert_eq!(second.acks.lock()[0].1.version, 7, "the newest ack is resent");
    eventually("snapshot 9", || {
        config.borrow().as_ref().map(|s| s.version) == Some(9)
    })
    .await;

    stop.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
    server_stop.cancel();
}
