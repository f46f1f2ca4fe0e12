//! Per-edge figures over one rate window, and how they add up when edges are merged.

use crate::graph::istio::{CodeClass, Name};

/// Rates of one edge over one window, all per second.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EdgeStats {
    /// Requests (primary reporter).
    pub requests: f64,
    /// Requests by response class, indexed by [`CodeClass`].
    pub by_class: [f64; CodeClass::COUNT],
    /// Failed requests: 5xx, no response, or a non-OK gRPC status.
    pub errors: f64,
    /// Requests the destination reported (the base of the mTLS share).
    pub destination_requests: f64,
    /// Of those, over mutual TLS.
    pub destination_mtls: f64,
    /// Duration histogram: `(le, rate)` sorted by `le`, milliseconds.
    pub duration_buckets: Vec<(f64, f64)>,
    /// Sum of request durations, milliseconds.
    pub duration_sum_ms: f64,
    /// Request body bytes.
    pub request_bytes: f64,
    /// Response body bytes.
    pub response_bytes: f64,
    /// TCP bytes client → server.
    pub tcp_received_bytes: f64,
    /// TCP bytes server → client.
    pub tcp_sent_bytes: f64,
    /// TCP connections opened.
    pub tcp_opened: f64,
    /// Requests by Envoy response flags (only flags other than `-`).
    pub flags: Vec<(Name, f64)>,
}

impl EdgeStats {
    /// Adds `other` into `self` (edges merged into one graph edge).
    pub fn merge(&mut self, other: &EdgeStats) {
        self.requests += other.requests;
        for (a, b) in self.by_class.iter_mut().zip(other.by_class) {
            *a += b;
        }
        self.errors += other.errors;
        self.destination_requests += other.destination_requests;
        self.destination_mtls += other.destination_mtls;
        for &(le, r) in &other.duration_buckets {
            self.add_bucket(le, r);
        }
        self.duration_sum_ms += other.duration_sum_ms;
        self.request_bytes += other.request_bytes;
        self.response_bytes += other.response_bytes;
        self.tcp_received_bytes += other.tcp_received_bytes;
        self.tcp_sent_bytes += other.tcp_sent_bytes;
        self.tcp_opened += other.tcp_opened;
        for (f, r) in &other.flags {
            self.add_flag(f, *r);
        }
    }

    /// Zero, with room for `buckets` latency buckets.
    pub fn with_buckets(buckets: usize) -> Self {
        Self {
            duration_buckets: Vec::with_capacity(buckets),
            ..Self::default()
        }
    }

    /// Back to zero, keeping the allocations (a recycled snapshot's stats are reused).
    pub fn clear(&mut self) {
        let mut buckets = std::mem::take(&mut self.duration_buckets);
        let mut flags = std::mem::take(&mut self.flags);
        buckets.clear();
        flags.clear();
        *self = Self {
            duration_buckets: buckets,
            flags,
            ..Self::default()
        };
    }

    /// Adds a bucket rate, keeping buckets sorted by bound.
    pub fn add_bucket(&mut self, le: f64, rate: f64) {
        // Buckets usually come in order (a block's columns, a scrape's series): try the end.
        match self.duration_buckets.last_mut() {
            Some(last) if last.0.total_cmp(&le).is_eq() => {
                last.1 += rate;
                return;
            }
            Some(last) if last.0.total_cmp(&le).is_gt() => {}
            _ => {
                self.duration_buckets.push((le, rate));
                return;
            }
        }
        match self.duration_buckets.binary_search_by(|b| b.0.total_cmp(&le)) {
            Ok(i) => self.duration_buckets[i].1 += rate,
            Err(i) => self.duration_buckets.insert(i, (le, rate)),
        }
    }

    /// Adds the rates of buckets `les` (ascending) where `seen`. A block adds its buckets
    /// at once: where the edge already has exactly these bounds (the usual case: one histogram
    /// layout for the mesh), they are added in place.
    pub fn add_buckets(&mut self, les: &[f64], rates: &[f64], seen: &[bool]) {
        if self.duration_buckets.is_empty() && seen.iter().all(|&s| s) {
            self.duration_buckets
                .extend(les.iter().copied().zip(rates.iter().copied()));
            return;
        }
        let same = self.duration_buckets.len() == les.len()
            && self
                .duration_buckets
                .iter()
                .zip(les)
                .all(|(b, le)| b.0.total_cmp(le).is_eq());
        if same {
            for ((b, &r), &seen) in self.duration_buckets.iter_mut().zip(rates).zip(seen) {
                if seen {
                    b.1 += r;
                }
            }
            return;
        }
        for ((&le, &r), &seen) in les.iter().zip(rates).zip(seen) {
            if seen {
                self.add_bucket(le, r);
            }
        }
    }

    /// Adds requests with a response flag.
    pub fn add_flag(&mut self, flag: &Name, rate: f64) {
        match self.flags.iter_mut().find(|(f, _)| f == flag) {
            Some((_, r)) => *r += rate,
            None => self.flags.push((flag.clone(), rate)),
        }
    }

    /// Share of failed requests in percent (0 without requests).
    pub fn error_percent(&self) -> f64 {
        if self.requests > 0.0 {
            100.0 * self.errors / self.requests
        } else {
            0.0
        }
    }

    /// Share of destination-reported requests over mutual TLS, in percent (`None` without any).
    pub fn mtls_percent(&self) -> Option<f64> {
        (self.destination_requests > 0.0).then(|| 100.0 * self.destination_mtls / self.destination_requests)
    }

    /// Latency quantile in milliseconds, as `histogram_quantile` computes it (`None` without data).
    pub fn latency_quantile(&self, q: f64) -> Option<f64> {
        if self.duration_buckets.is_empty() {
            return None;
        }
        let mut buckets = self.duration_buckets.clone();
        let v = meshfed_query::kernels::bucket_quantile(q, &mut buckets);
        v.is_finite().then_some(v)
    }

    /// Whether anything flowed over the window.
    pub fn is_active(&self) -> bool {
        self.requests > 0.0 || self.tcp_received_bytes + self.tcp_sent_bytes + self.tcp_opened > 0.0
    }
}
