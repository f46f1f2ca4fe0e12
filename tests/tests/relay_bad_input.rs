//! Bad input on the relay port, over real sockets: an unknown protocol version, a batch naming an
//! undefined series ref, an oversized message, a message that is not protobuf, a stream that
//! defines too many series, and TCP connections cut mid-frame. Each is refused and counted with
//! its reason, the connection ends, and the aggregator keeps serving a well-behaved collector.

#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.

use std::time::Duration;

use meshfed_aggregator::{Aggregator, AggregatorConfig};
use meshfed_model::Labels;
use meshfed_relay::client::{RelayClient, RelayClientOptions};
use meshfed_relay::encode::OutgoingSample;
use meshfed_relay::proto::{self, CollectorMessage, SampleBatch, collector_message};
use meshfed_tests::counter_with_reason;
use tokio::io::AsyncWriteExt;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;

fn hello(version: u32, cluster: &str) -> CollectorMessage {
    CollectorMessage {
        kind: Some(collector_message::Kind::Hello(proto::Hello {
            protocol_version: version,
            collector_id: "evil".into(),
            cluster: cluster.into(),
            ..Default::default()
        })),
    }
}

fn batch(b: SampleBatch) -> CollectorMessage {
    CollectorMessage {
        kind: Some(collector_message::Kind::Batch(b)),
    }
}

/// Opens a session, sends `messages`, and returns the error status the server ended it with.
async fn session(addr: std::net::SocketAddr, messages: Vec<CollectorMessage>) -> Option<tonic::Status> {
    let mut client = proto::relay_client::RelayClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    for m in messages {
        tx.send(m).await.unwrap();
    }
    let mut down = match client.session(ReceiverStream::new(rx)).await {
        Ok(r) => r.into_inner(),
        Err(status) => return Some(status),
    };
    loop {
        match tokio::time::timeout(Duration::from_secs(5), down.message()).await {
            Ok(Ok(Some(_))) => continue,
            Ok(Ok(None)) => return None,
            Ok(Err(status)) => return Some(status),
            Err(_) => panic!("the server did not end the session"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_sessions_are_refused_counted_and_harmless() {
    let stop = CancellationToken::new();
    let config = AggregatorConfig {
        relay_listen: "127.0.0.1:0".into(),
        http_listen: "127.0.0.1:0".into(),
        insecure: true,
        max_relay_message_bytes: 64 << 10,
        max_series_per_collector: 100,
        ..AggregatorConfig::default()
    };
    let agg = Aggregator::start(&config, stop.clone()).await.unwrap();
    let addr = agg.relay_addr;

    // A well-behaved collector streams throughout.
    let options = RelayClientOptions {
        endpoints: vec![format!("http://{addr}")],
        cluster: "good".into(),
        ..RelayClientOptions::default()
    };
    let (good, _) = RelayClient::spawn(options, stop.clone());
    let good_sample = |ts: i64| {
        vec![OutgoingSample {
            labels: Labels::from_pairs([("__name__", "good_total")]).into(),
            timestamp_ms: ts,
            value: ts as f64,
        }]
    };
    good.send(good_sample(1_000)).await.unwrap();

    // Unknown protocol version.
    let s = session(addr, vec![hello(99, "c")]).await.expect("refused");
    assert_eq!(s.code(), tonic::Code::FailedPrecondition, "{s:?}");
    // A batch naming a series ref that was never defined.
    let undefined = SampleBatch {
        sequence: 1,
        refs: vec![42],
        timestamps_ms: vec![1],
        values: vec![1.0],
        ..Default::default()
    };
    let s = session(addr, vec![hello(1, "c"), batch(undefined)])
        .await
        .expect("refused");
    assert_eq!(s.code(), tonic::Code::InvalidArgument, "{s:?}");
    // Columns that are not Arrow.
    let garbage = SampleBatch {
        sequence: 1,
        columns: b"\xff\xff\xff\xffnot arrow at all".to_vec(),
        ..Default::default()
    };
    let s = session(addr, vec![hello(1, "c"), batch(garbage)])
        .await
        .expect("refused");
    assert_eq!(s.code(), tonic::Code::InvalidArgument, "{s:?}");
    // An oversized message (the limit is 64 KiB here).
    let big = SampleBatch {
        sequence: 1,
        refs: vec![1; 20_000],
        timestamps_ms: vec![1; 20_000],
        values: vec![1.0; 20_000],
        ..Default::default()
    };
    let s = session(addr, vec![hello(1, "c"), batch(big)])
        .await
        .expect("refused");
    assert!(
        matches!(s.code(), tonic::Code::OutOfRange | tonic::Code::ResourceExhausted),
        "{s:?}"
    );
    // Too many series on one stream (the limit is 100 here).
    let many = SampleBatch {
        sequence: 1,
        new_series: (1..=150)
            .map(|i| proto::SeriesDefinition {
                r#ref: i,
                labels: vec![proto::Label {
                    name: "__name__".into(),
                    value: format!("m{i}"),
                }],
            })
            .collect(),
        ..Default::default()
    };
    let s = session(addr, vec![hello(1, "c"), batch(many)])
        .await
        .expect("refused");
    assert_eq!(s.code(), tonic::Code::ResourceExhausted, "{s:?}");
    // TCP connections cut mid-way through the HTTP/2 preface and mid-frame.
    for bytes in [
        &b"PRI * HTTP/2.0\r\n"[..],
        &b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x12\x04"[..],
    ] {
        let mut raw = tokio::net::TcpStream::connect(addr).await.unwrap();
        raw.write_all(bytes).await.unwrap();
        drop(raw);
    }

    // Every refusal is counted with its reason.
    let metrics = reqwest::get(format!("http://{}/metrics", agg.http_addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for reason in [
        "unsupported_version",
        "unknown_ref",
        "bad_columns",
        "oversized",
        "too_many_series",
    ] {
        assert!(
            counter_with_reason(&metrics, "meshfed_relay_rejected_total", reason) >= 1.0,
            "{reason} not counted:\n{metrics}"
        );
    }
    // The good collector is unaffected, and nothing from the bad sessions was stored.
    good.send(good_sample(2_000)).await.unwrap();
    for _ in 0..100 {
        if good.pending() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(good.pending(), 0);
    let names = agg.store.label_values("__name__", &[], i64::MIN, i64::MAX);
    assert_eq!(names, ["good_total"]);
    stop.cancel();
}
