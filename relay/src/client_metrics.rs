//! The relay client's counters as Prometheus metrics, read at scrape time.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use crate::client::RelayClientStats;

/// Exposes [`RelayClientStats`] as `meshfed_relay_*` metrics on the collector.
#[derive(Debug)]
pub struct RelayClientCollector(pub Arc<RelayClientStats>);

impl Collector for RelayClientCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> std::fmt::Result {
        let s = &self.0;
        let connected = ConstGauge::new(i64::from(s.connected.load(Ordering::Relaxed)));
        let m = encoder.encode_descriptor(
            "meshfed_relay_connected",
            "1 while a relay stream to the aggregator is open",
            None,
            connected.metric_type(),
        )?;
        connected.encode(m)?;
        let counters: [(&str, &str, u64); 4] = [
            (
                "meshfed_relay_connects",
                "Relay streams opened",
                s.connects.load(Ordering::Relaxed),
            ),
            (
                "meshfed_relay_batches_acked",
                "Batches the aggregator acknowledged",
                s.batches_acked.load(Ordering::Relaxed),
            ),
            (
                "meshfed_relay_samples_acked",
                "Samples in acknowledged batches",
                s.samples_acked.load(Ordering::Relaxed),
            ),
            (
                "meshfed_relay_dropped_samples",
                "Samples dropped because the buffer was full or could not be written",
                s.samples_dropped.load(Ordering::Relaxed),
            ),
        ];
        for (name, help, value) in counters {
            let c = ConstCounter::new(value);
            let m = encoder.encode_descriptor(name, help, None, c.metric_type())?;
            c.encode(m)?;
        }
        Ok(())
    }
}
