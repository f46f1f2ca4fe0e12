//! The relay's control plane on the collector side: state the collector publishes besides samples
//! (metric metadata, its cluster's topology, the outcome of applying config) and the config
//! snapshots the aggregator sends down.
//!
//! Everything here is *latest state*, not a queue: a topology report replaces the previous one,
//! metadata is kept per metric family, only the newest config ack matters. The worker sends what
//! changed while a stream is open, and everything again on each new stream, so the aggregator's
//! view is complete after any reconnect. Nothing here is buffered on disk: it is re-derived from
//! the next scrape or discovery pass after a restart.

use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::{Notify, watch};

use crate::proto::{ClusterTopology, ConfigAck, ConfigSnapshot, MetricMetadata};

/// Shared between [`super::RelayClient`] handles and the connection task.
pub(super) struct Control {
    state: Mutex<State>,
    /// Wakes the connection task when something is waiting to be sent.
    pub(super) changed: Notify,
    config: watch::Sender<Option<Arc<ConfigSnapshot>>>,
}

#[derive(Default)]
struct State {
    metadata: BTreeMap<String, MetricMetadata>,
    /// Metric families changed since the last send on the current stream.
    dirty: Vec<String>,
    topology: Option<ClusterTopology>,
    topology_generation: u64,
    ack: Option<ConfigAck>,
    ack_generation: u64,
}

/// What the connection task should send now.
#[derive(Default)]
pub(super) struct Outbox {
    pub(super) metadata: Vec<MetricMetadata>,
    pub(super) topology: Option<ClusterTopology>,
    pub(super) ack: Option<ConfigAck>,
}

/// What the current stream has already carried.
#[derive(Default, Clone, Copy)]
pub(super) struct Sent {
    topology_generation: u64,
    ack_generation: u64,
}

impl Control {
    pub(super) fn new() -> Self {
        Self {
            state: Mutex::new(State::default()),
            changed: Notify::new(),
            config: watch::Sender::new(None),
        }
    }

    /// Records metadata; returns whether any family was new or different.
    pub(super) fn publish_metadata(&self, entries: Vec<MetricMetadata>) -> bool {
        let mut state = self.state.lock();
        let mut any = false;
        for entry in entries {
            if state.metadata.get(&entry.metric) == Some(&entry) {
                continue;
            }
            state.dirty.push(entry.metric.clone());
            state.metadata.insert(entry.metric.clone(), entry);
            any = true;
        }
        drop(state);
        if any {
            self.changed.notify_one();
        }
        any
    }

    /// Replaces the topology report; returns whether it differs from the previous one.
    pub(super) fn publish_topology(&self, topology: ClusterTopology) -> bool {
        let mut state = self.state.lock();
        if state.topology.as_ref() == Some(&topology) {
            return false;
        }
        state.topology = Some(topology);
        state.topology_generation += 1;
        drop(state);
        self.changed.notify_one();
        true
    }

    pub(super) fn ack_config(&self, ack: ConfigAck) {
        let mut state = self.state.lock();
        state.ack = Some(ack);
        state.ack_generation += 1;
        drop(state);
        self.changed.notify_one();
    }

    pub(super) fn subscribe_config(&self) -> watch::Receiver<Option<Arc<ConfigSnapshot>>> {
        self.config.subscribe()
    }

    /// A snapshot arrived from the aggregator. Ignored unless newer than the one held: a
    /// reconnect may deliver the same version again.
    pub(super) fn received_config(&self, snapshot: ConfigSnapshot) -> bool {
        self.config.send_if_modified(|held| {
            if held.as_ref().is_some_and(|h| h.version >= snapshot.version) {
                return false;
            }
            *held = Some(Arc::new(snapshot));
            true
        })
    }

    /// Everything, for a new stream.
    pub(super) fn full(&self, sent: &mut Sent) -> Outbox {
        let mut state = self.state.lock();
        state.dirty.clear();
        sent.topology_generation = state.topology_generation;
        sent.ack_generation = state.ack_generation;
        Outbox {
            metadata: state.metadata.values().cloned().collect(),
            topology: state.topology.clone(),
            ack: state.ack.clone(),
        }
    }

    /// What changed since `sent`.
    pub(super) fn changes(&self, sent: &mut Sent) -> Outbox {
        let mut state = self.state.lock();
        let dirty = std::mem::take(&mut state.dirty);
        let mut out = Outbox::default();
        for metric in dirty {
            if let Some(m) = state.metadata.get(&metric)
                && !out.metadata.iter().any(|o| o.metric == metric)
            {
                out.metadata.push(m.clone());
            }
        }
        if sent.topology_generation != state.topology_generation {
            sent.topology_generation = state.topology_generation;
            out.topology = state.topology.clone();
        }
        if sent.ack_generation != state.ack_generation {
            sent.ack_generation = state.ack_generation;
            out.ack = state.ack.clone();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(metric: &str, help: &str) -> MetricMetadata {
        MetricMetadata {
            metric: metric.into(),
            r#type: "counter".into(),
            help: help.into(),
            unit: String::new(),
        }
    }

    #[test]
    fn only_changes_are_sent_while_connected_and_everything_on_a_new_stream() {
        let c = Control::new();
        let mut sent = Sent::default();
        assert!(c.publish_metadata(vec![meta("a", "x"), meta("b", "y")]));
        assert!(!c.publish_metadata(vec![meta("a", "x")]));
        let out = c.changes(&mut sent);
        assert_eq!(out.metadata.len(), 2);
        assert!(c.publish_metadata(vec![meta("a", "changed")]));
        let out = c.changes(&mut sent);
        assert_eq!(out.metadata, vec![meta("a", "changed")]);
        assert!(c.changes(&mut sent).metadata.is_empty());

        let topo = ClusterTopology {
            network: "n1".into(),
            ..Default::default()
        };
        assert!(c.publish_topology(topo.clone()));
        assert!(!c.publish_topology(topo.clone()));
        assert_eq!(c.changes(&mut sent).topology, Some(topo.clone()));
        assert_eq!(c.changes(&mut sent).topology, None);

        let mut fresh = Sent::default();
        let all = c.full(&mut fresh);
        assert_eq!(all.metadata.len(), 2);
        assert_eq!(all.topology, Some(topo));
        assert!(c.changes(&mut fresh).topology.is_none());
    }

    #[test]
    fn older_or_repeated_config_versions_are_ignored() {
        let c = Control::new();
        let rx = c.subscribe_config();
        let snap = |v| ConfigSnapshot {
            version: v,
            objects: Vec::new(),
        };
        assert!(c.received_config(snap(2)));
        assert!(!c.received_config(snap(2)));
        assert!(!c.received_config(snap(1)));
        assert!(c.received_config(snap(3)));
        assert_eq!(rx.borrow().as_ref().map(|s| s.version), Some(3));
    }
}
