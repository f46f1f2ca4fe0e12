//! Counters are exact functions of simulated time: determinism, rate integrals, restarts, faults
//! and routing changes.

mod common;

use std::time::Duration;

use common::{mesh, parse, pods, sum_requests};
use meshfed_sim::{Fault, FaultRequest, RoutingRule, RoutingTable, SimConfig};

#[test]
fn same_seed_same_output_and_different_seed_different_names() {
    let (a, ca) = mesh(SimConfig::default());
    let (b, cb) = mesh(SimConfig::default());
    ca.set_ms(95_000);
    cb.set_ms(95_000);
    assert_eq!(a.topology().pods.len(), b.topology().pods.len());
    for p in &a.topology().pods {
        assert_eq!(
            a.render_at(&p.name, 95_000).expect("a"),
            b.render_at(&p.name, 95_000).expect("b")
        );
    }
    let (c, _) = mesh(SimConfig {
        seed: 7,
        ..SimConfig::default()
    });
    assert_ne!(a.topology().pods[0].name, c.topology().pods[0].name);
}

#[test]
fn counter_is_floor_of_rate_integral() {
    let (m, _) = mesh(SimConfig::quiet());
    // productpage-v1 in cluster-1 calls reviews at 10 rps; reviews-v1/v2/v3 run in clusters 1/2/3
    // with two pods each, so each of the two productpage pods sends 10/3/2 rps to each version.
    let pp = pods(&m, "cluster-1", "productpage-v1");
    assert_eq!(pp.len(), 2);
    let lines = parse(&m.render_at(&pp[0], 100_000).expect("render"));
    let to_v2: Vec<_> = lines
        .iter()
        .filter(|l| {
            l.name == "istio_requests_total"
                && l.get("reporter") == Some("source")
                && l.get("destination_workload") == Some("reviews-v2")
        })
        .collect();
    assert_eq!(to_v2.len(), 1);
    assert_eq!(to_v2[0].value, (10.0f64 / 3.0 / 2.0 * 100.0).floor());
    assert_eq!(to_v2[0].get("destination_cluster"), Some("cluster-2"));
    assert_eq!(to_v2[0].get("source_cluster"), Some("cluster-1"));

    // Every cluster pair: source-reported totals over all pods match rate × t within flooring.
    let t_ms = 250_000;
    let all: Vec<String> = m.topology().pods.iter().map(|p| p.name.clone()).collect();
    for ((src, dst), rate) in m.cluster_pair_rates() {
        if src == "unknown" {
            continue;
        }
        let got = sum_requests(&m, &all, t_ms, |l| {
            l.get("reporter") == Some("source")
                && l.get("source_cluster") == Some(src.as_str())
                && l.get("destination_cluster") == Some(dst.as_str())
        });
        let want = rate * 250.0;
        assert!(
            (got - want).abs() <= 0.01 * want + 50.0,
            "{src}->{dst}: got {got}, want {want}"
        );
        assert!(got <= want);
    }
}

#[test]
fn histograms_are_consistent_with_counters() {
    let (m, _) = mesh(SimConfig::default());
    for p in m.topology().pods.iter().take(20) {
        let lines = parse(&m.render_at(&p.name, 200_000).expect("render"));
        for req in lines.iter().filter(|l| l.name == "istio_requests_total") {
            let same = |l: &&common::Line, name: &str| {
                l.name == name && req.labels.iter().all(|(n, v)| l.get(n) == Some(v.as_str()))
            };
            for fam in [
                "istio_request_duration_milliseconds",
                "istio_request_bytes",
                "istio_response_bytes",
            ] {
                let buckets: Vec<f64> = lines
                    .iter()
                    .filter(|l| same(l, &format!("{fam}_bucket")))
                    .map(|l| l.value)
                    .collect();
                assert_eq!(buckets.len(), 20, "{fam}");
                assert!(
                    buckets.windows(2).all(|w| w[0] <= w[1]),
                    "{fam} buckets must not decrease"
                );
                assert_eq!(buckets[19], req.value);
                let count = lines
                    .iter()
                    .find(|l| same(l, &format!("{fam}_count")))
                    .expect("count");
                assert_eq!(count.value, req.value);
                let sum = lines
                    .iter()
                    .find(|l| same(l, &format!("{fam}_sum")))
                    .expect("sum");
                assert!(sum.value > 0.0);
            }
        }
    }
}

#[test]
fn counters_never_decrease_through_the_default_scenario() {
    let (m, _) = mesh(SimConfig::default());
    for p in m.topology().pods.iter().step_by(3) {
        let mut prev: Vec<common::Line> = Vec::new();
        for t in (0..=400).step_by(20) {
            let lines = parse(&m.render_at(&p.name, t * 1000).expect("render"));
            for old in prev
                .iter()
                .filter(|l| !l.name.starts_with("envoy_cluster_membership"))
            {
                if old.name.starts_with("envoy_cluster_outlier") || old.name == "envoy_server_live" {
                    continue;
                }
                let now = lines
                    .iter()
                    .find(|l| l.name == old.name && l.labels == old.labels);
                let now = now.unwrap_or_else(|| panic!("{} vanished at {t}s on {}", old.name, p.name));
                assert!(now.value >= old.value, "{} decreased on {}", old.name, p.name);
            }
            prev = lines;
        }
    }
}

#[test]
fn restart_resets_that_pods_counters_only() {
    let (m, clock) = mesh(SimConfig::quiet());
    let fe = pods(&m, "cluster-1", "frontend");
    clock.set_ms(50_000);
    m.inject(FaultRequest::from(Fault::PodRestart { pod: fe[0].clone() }))
        .expect("restart");
    let src = |p: &str, t| sum_requests(&m, &[p.to_string()], t, |l| l.get("reporter") == Some("source"));
    let restarted = src(&fe[0], 60_000);
    let other = src(&fe[1], 60_000);
    // frontend sends 20 rps over 2 pods: 10 s since the restart vs 60 s.
    assert!(
        (95.0..=100.0).contains(&restarted),
        "restarted pod counted {restarted}"
    );
    assert!((595.0..=600.0).contains(&other), "other pod counted {other}");
    assert!(
        src(&fe[0], 49_000) > restarted,
        "before the restart the counter was higher"
    );
}

#[test]
fn error_rate_fault_produces_the_configured_fraction() {
    let (m, clock) = mesh(SimConfig::quiet());
    let id = m
        .inject(
            Fault::ErrorRate {
                cluster: "cluster-1".into(),
                workload: "web-api".into(),
                fraction: 0.3,
                code: 503,
            }
            .into(),
        )
        .expect("inject");
    clock.advance(Duration::from_secs(300));
    let api = pods(&m, "cluster-1", "web-api");
    let dest = |code: &'static str| {
        sum_requests(&m, &api, 300_000, move |l| {
            l.get("reporter") == Some("destination") && l.get("response_code") == Some(code)
        })
    };
    let (ok, err) = (dest("200"), dest("503"));
    let frac = err / (ok + err);
    assert!((frac - 0.3).abs() < 0.003, "5xx fraction {frac}");
    let truth =
        m.configured_rate(|e| e.destination_workload == "web-api" && e.destination_cluster == "cluster-1");
    let truth_err = m.configured_rate(|e| {
        e.destination_workload == "web-api" && e.destination_cluster == "cluster-1" && e.response_code == 503
    });
    assert!((truth_err / truth - 0.3).abs() < 1e-9);
    assert!(m.clear_fault(id));
    assert!(!m.clear_fault(id));
    assert_eq!(m.configured_rate(|e| e.response_code == 503), 0.0);
}

#[test]
fn routing_changes_move_traffic_and_keep_history() {
    let (m, clock) = mesh(SimConfig::quiet());
    clock.set_ms(100_000);
    let table = RoutingTable {
        rules: vec![RoutingRule {
            source_cluster: None,
            source_workload: Some("frontend".into()),
            destination_service: "web-api".into(),
            weights: [("cluster-2".to_string(), 1.0)].into_iter().collect(),
        }],
    };
    m.set_routing(table.clone()).expect("routing");
    assert_eq!(m.routing(), table);
    let fe: Vec<String> = ["cluster-1", "cluster-2", "cluster-3"]
        .iter()
        .flat_map(|c| pods(&m, c, "frontend"))
        .collect();
    let to = |c: &'static str, t| {
        sum_requests(&m, &fe, t, move |l| {
            l.get("reporter") == Some("source") && l.get("destination_cluster") == Some(c)
        })
    };
    assert_eq!(
        to("cluster-1", 100_000),
        to("cluster-1", 200_000),
        "no more traffic to cluster-1"
    );
    let gained = to("cluster-2", 200_000) - to("cluster-2", 100_000);
    assert!(
        (gained - 60.0 * 100.0).abs() <= 6.0,
        "frontend's 3×20 rps all go to cluster-2: {gained}"
    );
    let frontend_to = |c: &'static str| {
        m.configured_rate(move |e| e.source_workload == "frontend" && e.destination_cluster == c)
    };
    assert_eq!(frontend_to("cluster-1"), 0.0);
    assert_eq!(frontend_to("cluster-2"), 60.0);
    assert!(
        m.set_routing(RoutingTable {
            rules: vec![RoutingRule {
                destination_service: "nope".into(),
                ..table.rules[0].clone()
            }]
        })
        .is_err()
    );
}

#[test]
fn dark_cluster_partitions_cross_cluster_calls() {
    let (m, clock) = mesh(SimConfig::quiet());
    m.inject(
        Fault::ClusterDark {
            cluster: "cluster-2".into(),
            mode: Default::default(),
        }
        .into(),
    )
    .expect("dark");
    clock.set_ms(10_000);
    let failing = m.configured_rate(|e| e.response_flags == "UF,URX");
    assert!(failing > 0.0);
    let fe = pods(&m, "cluster-1", "frontend");
    let uf = sum_requests(&m, &fe, 10_000, |l| l.get("response_flags") == Some("UF,URX"));
    assert!(uf > 0.0);
}

#[test]
fn ejected_endpoints_show_in_client_gauges_and_get_no_traffic() {
    let (m, clock) = mesh(SimConfig::quiet());
    m.inject(
        Fault::EjectEndpoints {
            cluster: "cluster-1".into(),
            workload: "web-api".into(),
            count: 1,
        }
        .into(),
    )
    .expect("eject");
    clock.set_ms(10_000);
    let fe = pods(&m, "cluster-3", "frontend");
    let lines = parse(&m.render_at(&fe[0], 10_000).expect("render"));
    let gauge = |name: &str| {
        lines
            .iter()
            .find(|l| {
                l.name == name
                    && l.get("cluster_name") == Some("outbound|8080||web-api.web.svc.cluster.local")
            })
            .map(|l| l.value)
    };
    assert_eq!(
        gauge("envoy_cluster_outlier_detection_ejections_active"),
        Some(1.0)
    );
    assert_eq!(gauge("envoy_cluster_membership_total"), Some(4.0));
    assert_eq!(gauge("envoy_cluster_membership_healthy"), Some(3.0));
    let api = pods(&m, "cluster-1", "web-api");
    assert_eq!(
        sum_requests(&m, &api[..1], 10_000, |l| l.get("reporter")
            == Some("destination")),
        0.0
    );
    assert!(
        sum_requests(&m, &api[1..], 10_000, |l| l.get("reporter")
            == Some("destination"))
            > 0.0
    );
}

#[test]
fn scale_knobs_multiply_the_mesh() {
    let (small, _) = mesh(SimConfig::quiet());
    let cfg = SimConfig {
        extra_namespaces: 4,
        pods_per_workload: 3,
        ..SimConfig::quiet()
    };
    let (big, _) = mesh(cfg);
    let (s, b) = (small.topology(), big.topology());
    assert_eq!(s.pods.len(), 24 * 2);
    assert_eq!(b.pods.len(), (24 + 4 * 11) * 3);
    assert!(b.workloads.iter().any(|w| w.namespace == "web-5"));
    let started = std::time::Instant::now();
    let total: usize = b
        .pods
        .iter()
        .map(|p| big.render_at(&p.name, 100_000).expect("render").lines().count())
        .sum();
    assert!(total > 0);
    eprintln!(
        "{} pods, {total} samples rendered in {:?}",
        b.pods.len(),
        started.elapsed()
    );
}

#[test]
fn latency_fault_moves_observations_to_higher_buckets() {
    let (m, clock) = mesh(SimConfig::quiet());
    clock.set_ms(100_000);
    m.inject(
        Fault::Latency {
            cluster: "cluster-2".into(),
            workload: "reviews-v2".into(),
            added_ms: 600.0,
        }
        .into(),
    )
    .expect("inject");
    let pods = pods(&m, "cluster-2", "reviews-v2");
    let bucket = |t: u64, le: &'static str| -> f64 {
        pods.iter()
            .flat_map(|p| parse(&m.render_at(p, t).expect("render")))
            .filter(|l| {
                l.name == "istio_request_duration_milliseconds_bucket"
                    && l.get("reporter") == Some("destination")
                    && l.get("le") == Some(le)
            })
            .map(|l| l.value)
            .sum()
    };
    assert_eq!(
        bucket(100_000, "500"),
        bucket(200_000, "500"),
        "no new request is faster than 600 ms"
    );
    assert!(bucket(200_000, "+Inf") > bucket(100_000, "+Inf") + 100.0);
    assert!(bucket(200_000, "1000") > bucket(100_000, "1000") + 100.0);
}

#[test]
fn external_calls_go_through_passthrough_cluster() {
    let (m, _) = mesh(SimConfig::quiet());
    let api = pods(&m, "cluster-1", "web-api");
    let lines = parse(&m.render_at(&api[0], 100_000).expect("render"));
    let ext = lines
        .iter()
        .find(|l| {
            l.name == "istio_requests_total"
                && l.get("destination_service_name") == Some("PassthroughCluster")
        })
        .expect("passthrough series");
    assert_eq!(ext.get("destination_service"), Some("api.payments.example.com"));
    assert_eq!(ext.get("destination_cluster"), Some("unknown"));
    assert_eq!(ext.get("destination_canonical_revision"), Some("latest"));
    assert_eq!(ext.value, 100.0, "2 rps over 2 pods for 100 s");
    assert!(lines.iter().any(
        |l| l.name == "envoy_cluster_upstream_rq" && l.get("cluster_name") == Some("PassthroughCluster")
    ));
    assert_eq!(m.cluster_pair_rate("cluster-1", "unknown"), 2.0);
}

#[test]
fn one_clusters_rules_are_replaced_without_touching_the_others() {
    let (m, clock) = mesh(SimConfig::quiet());
    clock.set_ms(50_000);
    let rule = |c: &str| RoutingRule {
        source_cluster: None,
        source_workload: None,
        destination_service: "web-api".into(),
        weights: [(c.to_string(), 1.0)].into_iter().collect(),
    };
    m.set_cluster_routing("cluster-1", vec![rule("cluster-2")])
        .expect("cluster-1");
    m.set_cluster_routing("cluster-3", vec![rule("cluster-1")])
        .expect("cluster-3");
    clock.set_ms(60_000);
    m.set_cluster_routing("cluster-1", vec![rule("cluster-1")])
        .expect("cluster-1 again");
    let rules = m.routing().rules;
    assert_eq!(rules.len(), 2, "{rules:?}");
    let to = |src: &'static str, dst: &'static str| {
        m.configured_rate(move |e| {
            e.source_workload == "frontend" && e.source_cluster == src && e.destination_cluster == dst
        })
    };
    assert_eq!(
        to("cluster-1", "cluster-1"),
        20.0,
        "the replaced rule is in effect"
    );
    assert_eq!(
        to("cluster-3", "cluster-1"),
        20.0,
        "cluster-3's rule is untouched"
    );
    assert_eq!(
        to("cluster-2", "cluster-1") + to("cluster-2", "cluster-2"),
        20.0,
        "no rule: default spread"
    );
    m.set_cluster_routing("cluster-1", Vec::new()).expect("clear");
    assert_eq!(m.routing().rules.len(), 1);
    assert!(m.set_cluster_routing("nowhere", Vec::new()).is_err());
    assert!(
        m.set_cluster_routing("cluster-1", vec![rule("cluster-9")])
            .is_err()
    );
}
