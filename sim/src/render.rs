//! Renders one pod's series in the shape of Envoy's `/stats/prometheus` with Istio's stats filter:
//! Prometheus text 0.0.4, `# TYPE` lines only (Envoy emits no `# HELP`), counters then gauges then
//! histograms, Istio labels in the stats filter's order.

pub(crate) mod upstream;

use std::borrow::Cow;
use std::fmt::Write as _;
use std::sync::Arc;

use meshfed_model::{Labels, LabelsBuilder, METRIC_NAME};

use crate::counters::{Accum, HistAccum};
use crate::dist::NB;
use crate::model::{Dst, Flags, GaugeRow, Reporter, SeriesKey};
use crate::topology::{Protocol, Topology, WorkloadId};

/// The Istio proxy version reported by `istio_build`.
pub const ISTIO_VERSION: &str = "1.24.2";

/// A label list in exposition order.
pub(crate) type LabelList = Vec<(&'static str, String)>;

/// Text of Istio's bucket bounds ([`crate::dist::BUCKETS`]) as Envoy prints them.
const LE: [&str; NB] = [
    "0.5", "1", "5", "10", "25", "50", "100", "250", "500", "1000", "2500", "5000", "10000", "30000",
    "60000", "300000", "600000", "1800000", "3600000",
];

/// One sample: name suffix (`_bucket`, `_sum`, `_count` or empty), the series' labels (shared by
/// a histogram's lines), the `le` bound if a bucket, and the value.
#[derive(Debug)]
pub(crate) struct Line {
    suffix: &'static str,
    labels: Arc<LabelList>,
    le: Option<&'static str>,
    value: f64,
}

/// A metric family.
#[derive(Debug)]
pub(crate) struct Family {
    name: Cow<'static, str>,
    kind: &'static str,
    lines: Vec<Line>,
}

impl Family {
    fn new(name: &'static str, kind: &'static str) -> Self {
        Self::new_owned(name, kind)
    }

    fn new_owned(name: impl Into<Cow<'static, str>>, kind: &'static str) -> Self {
        Self {
            name: name.into(),
            kind,
            lines: Vec::new(),
        }
    }

    /// True for a histogram family (rendered after counters and gauges).
    pub(crate) fn is_histogram(&self) -> bool {
        self.kind == "histogram"
    }

    fn push(&mut self, labels: Arc<LabelList>, value: f64) {
        self.lines.push(Line {
            suffix: "",
            labels,
            le: None,
            value,
        });
    }

    fn push_histogram(&mut self, labels: &Arc<LabelList>, count: f64, h: &HistAccum, n: f64) {
        let line = |suffix, le, value| Line {
            suffix,
            labels: labels.clone(),
            le,
            value,
        };
        for (le, b) in LE.iter().zip(h.buckets.iter()) {
            self.lines.push(line("_bucket", Some(*le), b.floor().min(count)));
        }
        self.lines.push(line("_bucket", Some("+Inf"), count));
        // The sum is the floored count times the mean observed so far, so sum/count stays exact.
        let sum = if n > 0.0 { count * h.weighted_sum / n } else { 0.0 };
        self.lines
            .push(line("_sum", None, (sum * 1000.0).round() / 1000.0));
        self.lines.push(line("_count", None, count));
    }
}

fn source_labels(topo: &Topology, w: Option<WorkloadId>, out: &mut LabelList) {
    const NAMES: [&str; 8] = [
        "source_workload",
        "source_canonical_service",
        "source_canonical_revision",
        "source_workload_namespace",
        "source_principal",
        "source_app",
        "source_version",
        "source_cluster",
    ];
    let vals: [String; 8] = match w.map(|w| &topo.workloads[w]) {
        Some(w) => [
            w.name.clone(),
            w.app.clone(),
            w.canonical_revision.clone(),
            w.namespace.clone(),
            w.principal(),
            w.app.clone(),
            w.version.clone(),
            w.cluster_name.clone(),
        ],
        // What Istio reports for a caller without a sidecar.
        None => [
            "unknown", "unknown", "latest", "unknown", "unknown", "unknown", "unknown", "unknown",
        ]
        .map(String::from),
    };
    out.extend(NAMES.into_iter().zip(vals));
}

/// The Istio standard labels, in the stats filter's order.
fn istio_labels(
    topo: &Topology,
    reporter: Reporter,
    src: Option<WorkloadId>,
    dst: Dst,
    response: Option<(u16, Flags)>,
) -> Arc<LabelList> {
    let mut l: LabelList = Vec::with_capacity(26);
    let reporter_name = if reporter == Reporter::Source {
        "source"
    } else {
        "destination"
    };
    l.push(("reporter", reporter_name.to_string()));
    source_labels(topo, src, &mut l);
    let failed = matches!(response, Some((_, Flags::UpstreamFailure)));
    let (vals, svc): ([String; 11], _) = match dst {
        Dst::Workload(w) => {
            let d = &topo.workloads[w];
            let svc = d.service.map(|s| &topo.services[s]);
            let unknown = || "unknown".to_string();
            let vals = [
                d.name.clone(),
                d.namespace.clone(),
                if failed { unknown() } else { d.principal() },
                d.app.clone(),
                d.version.clone(),
                svc.map_or_else(unknown, |s| s.fqdn.clone()),
                d.app.clone(),
                d.canonical_revision.clone(),
                svc.map_or_else(unknown, |s| s.name.clone()),
                d.namespace.clone(),
                d.cluster_name.clone(),
            ];
            (vals, svc)
        }
        // What a sidecar reports for a host it has no service for (ALLOW_ANY outbound traffic).
        Dst::External(s) => {
            let svc = &topo.services[s];
            let u = "unknown";
            let vals = [u, u, u, u, u, &svc.fqdn, u, "latest", "PassthroughCluster", u, u].map(String::from);
            (vals, Some(svc))
        }
    };
    const DST_NAMES: [&str; 11] = [
        "destination_workload",
        "destination_workload_namespace",
        "destination_principal",
        "destination_app",
        "destination_version",
        "destination_service",
        "destination_canonical_service",
        "destination_canonical_revision",
        "destination_service_name",
        "destination_service_namespace",
        "destination_cluster",
    ];
    l.extend(DST_NAMES.into_iter().zip(vals));
    let protocol = svc.map_or(Protocol::Http, |s| s.protocol);
    l.push((
        "request_protocol",
        match protocol {
            Protocol::Http => "http",
            Protocol::Grpc => "grpc",
            Protocol::Tcp => "tcp",
        }
        .to_string(),
    ));
    if let Some((code, flags)) = response {
        l.push(("response_code", code.to_string()));
        let grpc = match (protocol, code) {
            (Protocol::Grpc, 200) => "0",
            (Protocol::Grpc, 503) => "14",
            (Protocol::Grpc, _) => "2",
            _ => "",
        };
        l.push(("grpc_response_status", grpc.to_string()));
        l.push((
            "response_flags",
            if flags == Flags::UpstreamFailure {
                "UF,URX"
            } else {
                "-"
            }
            .to_string(),
        ));
    } else {
        l.push(("response_flags", "-".to_string()));
    }
    let policy = match (reporter, src) {
        (Reporter::Source, _) => "unknown",
        (Reporter::Destination, Some(_)) => "mutual_tls",
        (Reporter::Destination, None) => "none",
    };
    l.push(("connection_security_policy", policy.to_string()));
    Arc::new(l)
}

/// Builds every family a scrape of `pod` shows, from its integrals and current gauges.
pub(crate) fn families(topo: &Topology, values: &[(SeriesKey, Accum)], gauges: &[GaugeRow]) -> Vec<Family> {
    let mut upstream = Family::new("envoy_cluster_upstream_rq", "counter");
    let mut requests = Family::new("istio_requests_total", "counter");
    let mut tcp_closed = Family::new("istio_tcp_connections_closed_total", "counter");
    let mut tcp_opened = Family::new("istio_tcp_connections_opened_total", "counter");
    let mut tcp_received = Family::new("istio_tcp_received_bytes_total", "counter");
    let mut tcp_sent = Family::new("istio_tcp_sent_bytes_total", "counter");
    let mut healthy = Family::new("envoy_cluster_membership_healthy", "gauge");
    let mut total = Family::new("envoy_cluster_membership_total", "gauge");
    let mut ejections = Family::new("envoy_cluster_outlier_detection_ejections_active", "gauge");
    let mut live = Family::new("envoy_server_live", "gauge");
    let mut build = Family::new("istio_build", "gauge");
    let mut req_bytes = Family::new("istio_request_bytes", "histogram");
    let mut duration = Family::new("istio_request_duration_milliseconds", "histogram");
    let mut resp_bytes = Family::new("istio_response_bytes", "histogram");
    for (key, acc) in values {
        match (key, acc) {
            (
                SeriesKey::Http {
                    reporter,
                    src,
                    dst,
                    code,
                    flags,
                },
                Accum::Http {
                    n,
                    latency,
                    request_bytes,
                    response_bytes,
                },
            ) => {
                let count = n.floor();
                if count < 1.0 {
                    continue;
                }
                let labels = istio_labels(topo, *reporter, *src, *dst, Some((*code, *flags)));
                duration.push_histogram(&labels, count, latency, *n);
                req_bytes.push_histogram(&labels, count, request_bytes, *n);
                resp_bytes.push_histogram(&labels, count, response_bytes, *n);
                requests.push(labels, count);
            }
            (
                SeriesKey::Tcp { reporter, src, dst },
                Accum::Tcp {
                    opened,
                    closed,
                    request_bytes,
                    response_bytes,
                },
            ) => {
                if opened.floor() < 1.0 {
                    continue;
                }
                let labels = istio_labels(topo, *reporter, Some(*src), Dst::Workload(*dst), None);
                tcp_closed.push(labels.clone(), closed.floor());
                tcp_received.push(labels.clone(), request_bytes.floor());
                tcp_sent.push(labels.clone(), response_bytes.floor());
                tcp_opened.push(labels, opened.floor());
            }
            (
                SeriesKey::UpstreamRq {
                    service,
                    inbound,
                    class,
                },
                Accum::Count(c),
            ) => {
                if c.floor() < 1.0 {
                    continue;
                }
                let s = &topo.services[*service];
                let name = if *inbound {
                    s.inbound_cluster()
                } else {
                    s.outbound_cluster()
                };
                let labels = vec![
                    ("response_code_class", format!("{}xx", class / 100)),
                    ("cluster_name", name),
                ];
                upstream.push(Arc::new(labels), c.floor());
            }
            _ => {}
        }
    }
    for g in gauges {
        let s = &topo.services[g.service];
        let name = if g.inbound {
            s.inbound_cluster()
        } else {
            s.outbound_cluster()
        };
        healthy.push(
            Arc::new(vec![("cluster_name", name.clone())]),
            f64::from(g.healthy),
        );
        total.push(Arc::new(vec![("cluster_name", name.clone())]), f64::from(g.total));
        ejections.push(Arc::new(vec![("cluster_name", name)]), f64::from(g.ejected));
    }
    live.push(Arc::new(Vec::new()), 1.0);
    let build_labels = vec![
        ("component", "proxy".to_string()),
        ("tag", ISTIO_VERSION.to_string()),
    ];
    build.push(Arc::new(build_labels), 1.0);
    [
        upstream,
        requests,
        tcp_closed,
        tcp_opened,
        tcp_received,
        tcp_sent,
        healthy,
        total,
        ejections,
        live,
        build,
        req_bytes,
        duration,
        resp_bytes,
    ]
    .into_iter()
    .filter(|f| !f.lines.is_empty())
    .collect()
}

/// Writes a sample value the way Envoy does: integers without a decimal point.
fn push_value(out: &mut String, v: f64) {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        let _ = write!(out, "{}", v as i64);
    } else {
        let _ = write!(out, "{v}");
    }
}

fn escape(v: &str, out: &mut String) {
    for ch in v.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

fn format_labels(labels: &LabelList, out: &mut String) {
    for (i, (n, v)) in labels.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(n);
        out.push_str("=\"");
        escape(v, out);
        out.push('"');
    }
}

/// Prometheus text 0.0.4.
pub(crate) fn to_text(families: &[Family]) -> String {
    let mut out = String::with_capacity(families.iter().map(|f| f.lines.len() * 600).sum());
    // Consecutive lines of a histogram share one label set: format it once.
    let mut cached: (*const LabelList, String) = (std::ptr::null(), String::new());
    for f in families {
        let _ = writeln!(out, "# TYPE {} {}", f.name, f.kind);
        for l in &f.lines {
            if !std::ptr::eq(cached.0, Arc::as_ptr(&l.labels)) {
                cached.1.clear();
                format_labels(&l.labels, &mut cached.1);
                cached.0 = Arc::as_ptr(&l.labels);
            }
            out.push_str(&f.name);
            out.push_str(l.suffix);
            out.push('{');
            out.push_str(&cached.1);
            if let Some(le) = l.le {
                if !l.labels.is_empty() {
                    out.push(',');
                }
                out.push_str("le=\"");
                out.push_str(le);
                out.push('"');
            }
            out.push_str("} ");
            push_value(&mut out, l.value);
            out.push('\n');
        }
    }
    out
}

/// The samples as (labels incl. `__name__`, value) pairs, in exposition order.
pub(crate) fn to_samples(families: &[Family]) -> Vec<(Labels, f64)> {
    families
        .iter()
        .flat_map(|f| {
            f.lines.iter().map(move |l| {
                let mut b = LabelsBuilder::with_capacity(l.labels.len() + 2);
                b.set(METRIC_NAME, format!("{}{}", f.name, l.suffix));
                for (n, v) in l.labels.iter() {
                    b.set(*n, v.as_str());
                }
                if let Some(le) = l.le {
                    b.set("le", le);
                }
                (b.build(), l.value)
            })
        })
        .collect()
}

/// Number of samples a scrape shows.
pub(crate) fn sample_count(families: &[Family]) -> usize {
    families.iter().map(|f| f.lines.len()).sum()
}
