//! Bytes per sample on the wire: the relay's batches against Prometheus remote_write 1.0 (snappy
//! block-compressed protobuf `WriteRequest`s, encoded here with the real schema) for the same
//! simulated Istio scrapes. Byte counts are deterministic, so this is a test, not a benchmark.

#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use meshfed_model::{Labels, LabelsBuilder};
use meshfed_relay::encode::{OutgoingSample, SeriesLabels, StreamEncoder};
use meshfed_relay::prompb;
use meshfed_relay::proto::{CollectorMessage, collector_message};
use meshfed_sim::{ManualClock, Mesh, SimConfig};
use prost::Message;

/// Prometheus 2.42's default `max_samples_per_send`.
const REMOTE_WRITE_BATCH: usize = 500;
const SCRAPES: u64 = 40;
const INTERVAL_MS: u64 = 15_000;

#[test]
fn relay_bytes_per_sample_are_at_most_a_quarter_of_remote_write() {
    let clock = Arc::new(ManualClock::new());
    let mesh = Mesh::new(&SimConfig::quiet(), clock).unwrap();
    let pods: Vec<(String, String)> = mesh
        .topology()
        .pods
        .iter()
        .map(|p| {
            (
                p.name.clone(),
                mesh.topology().workloads[p.workload].cluster_name.clone(),
            )
        })
        .collect();
    let mut relay_bytes = 0usize;
    let mut rw_bytes = 0usize;
    let mut samples = 0usize;
    // One relay stream per cluster, as one collector per cluster keeps.
    let mut encoders: BTreeMap<String, StreamEncoder> = BTreeMap::new();
    let mut rw_pending: Vec<prompb::TimeSeries> = Vec::new();
    let mut cache: HashMap<(String, Labels), SeriesLabels> = HashMap::new();
    for k in 0..SCRAPES {
        let at = k * INTERVAL_MS + 1;
        let ts = ManualClock::DEFAULT_BASE_UNIX_MS + at as i64;
        for (pod, cluster) in &pods {
            let batch: Vec<OutgoingSample> = mesh
                .samples_at(pod, at)
                .unwrap()
                .into_iter()
                .map(|(l, v)| {
                    let labels = cache
                        .entry((pod.clone(), l.clone()))
                        .or_insert_with(|| with_target_labels(&l, cluster, pod).into())
                        .clone();
                    OutgoingSample {
                        labels,
                        timestamp_ms: ts,
                        value: v,
                    }
                })
                .collect();
            samples += batch.len();
            let enc = encoders.entry(cluster.clone()).or_default();
            let msg = CollectorMessage {
                kind: Some(collector_message::Kind::Batch(enc.encode(k + 1, &batch))),
            };
            relay_bytes += msg.encoded_len() + 5; // gRPC length-prefixed message framing
            for s in &batch {
                rw_pending.push(prompb::TimeSeries {
                    labels: s
                        .labels
                        .iter()
                        .map(|(name, value)| prompb::Label {
                            name: name.to_owned(),
                            value: value.to_owned(),
                        })
                        .collect(),
                    samples: vec![prompb::Sample {
                        value: s.value,
                        timestamp: s.timestamp_ms,
                    }],
                });
                if rw_pending.len() == REMOTE_WRITE_BATCH {
                    rw_bytes += remote_write_request(&mut rw_pending);
                }
            }
        }
    }
    if !rw_pending.is_empty() {
        rw_bytes += remote_write_request(&mut rw_pending);
    }
    let relay = relay_bytes as f64 / samples as f64;
    let rw = rw_bytes as f64 / samples as f64;
    println!(
        "wire size over {SCRAPES} scrapes of {} pods ({samples} samples): relay {relay:.2} B/sample, \
         remote_write 1.0 {rw:.2} B/sample, ratio {:.3}",
        pods.len(),
        relay / rw
    );
    assert!(
        relay / rw <= 0.25,
        "relay {relay:.2} B/sample vs remote_write {rw:.2}"
    );
}

fn remote_write_request(pending: &mut Vec<prompb::TimeSeries>) -> usize {
    let body = prompb::WriteRequest {
        timeseries: std::mem::take(pending),
    }
    .encode_to_vec();
    snap::raw::Encoder::new().compress_vec(&body).unwrap().len()
}

/// The labels the collector adds (Prometheus adds the same `instance`/`job` plus discovery labels).
fn with_target_labels(l: &Labels, cluster: &str, pod: &str) -> Labels {
    let mut b: LabelsBuilder = l.to_builder();
    b.set("cluster", cluster);
    b.set("instance", format!("{pod}:15020"));
    b.set("job", "envoy-stats");
    b.set("pod", pod);
    b.set("namespace", "ns");
    b.build()
}
