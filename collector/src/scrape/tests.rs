//! Scrape semantics without a socket (`Scraper::process`) and limits over a real socket.

use std::collections::BTreeMap;
use std::time::Instant;

use meshfed_model::exposition::Format;
use meshfed_model::{Labels, is_stale_nan};

use super::*;
use crate::reduce::ReduceConfig;
use crate::relabel::RelabelConfig;

fn target(url: &str, pod: &str) -> Target {
    Target {
        url: url.into(),
        labels: BTreeMap::from([
            ("job".to_owned(), "envoy-stats".to_owned()),
            ("instance".to_owned(), format!("{pod}:15020")),
            ("pod".to_owned(), pod.to_owned()),
        ]),
    }
}

fn scraper(config: ScrapeConfig) -> Scraper {
    Scraper::new(
        reqwest::Client::new(),
        target("http://127.0.0.1:1/m", "p0"),
        config,
        "c1",
    )
}

fn run(s: &mut Scraper, body: &str, ts: i64) -> ScrapeOutput {
    s.process(body.as_bytes(), Format::PrometheusText, ts, Instant::now())
}

fn find<'a>(out: &'a ScrapeOutput, name: &str) -> Vec<&'a OutgoingSample> {
    out.samples
        .iter()
        .filter(|s| s.labels.metric_name() == Some(name))
        .collect()
}

fn synth(out: &ScrapeOutput, name: &str) -> f64 {
    find(out, name)[0].value
}

#[test]
fn target_labels_clashes_timestamps_and_series_added() {
    let mut s = scraper(ScrapeConfig::default());
    let body = "# TYPE a counter\na{pod=\"inner\",x=\"1\"} 1\nb 2 1234\n";
    let out = run(&mut s, body, 10_000);
    assert!(out.error.is_none());
    let a = find(&out, "a")[0];
    let want = Labels::from_pairs([
        ("__name__", "a"),
        ("cluster", "c1"),
        ("exported_pod", "inner"),
        ("instance", "p0:15020"),
        ("job", "envoy-stats"),
        ("pod", "p0"),
        ("x", "1"),
    ]);
    assert_eq!(a.labels.to_labels(), want);
    assert_eq!(a.timestamp_ms, 10_000);
    assert_eq!(
        find(&out, "b")[0].timestamp_ms,
        1234,
        "explicit timestamp honoured"
    );
    assert_eq!(synth(&out, "up"), 1.0);
    assert_eq!(synth(&out, "scrape_samples_scraped"), 2.0);
    assert_eq!(synth(&out, "scrape_series_added"), 2.0);
    // Cached: same packed labels, nothing added.
    let out2 = run(&mut s, body, 20_000);
    assert!(SeriesLabels::ptr_eq(&find(&out2, "a")[0].labels, &a.labels));
    assert_eq!(synth(&out2, "scrape_series_added"), 0.0);
}

#[test]
fn vanished_series_go_stale_and_leave_the_cache() {
    let mut s = scraper(ScrapeConfig::default());
    run(&mut s, "a 1\nb{x=\"1\"} 2\n", 1);
    assert_eq!(s.cached_series(), 2);
    let out = run(&mut s, "a 2\n", 2);
    let b = find(&out, "b");
    assert_eq!(b.len(), 1);
    assert!(is_stale_nan(b[0].value));
    assert_eq!(s.cached_series(), 1);
    // Back again: added again.
    let out = run(&mut s, "a 3\nb{x=\"1\"} 2\n", 3);
    assert_eq!(synth(&out, "scrape_series_added"), 1.0);
}

#[test]
fn failed_scrape_marks_everything_stale_and_recovers() {
    let mut s = scraper(ScrapeConfig::default());
    run(&mut s, "a 1\nb 2\n", 1);
    let out = run(&mut s, "a 1\nb{ 2\n", 2);
    let err = out.error.as_ref().expect("malformed");
    assert_eq!(err.reason(), "parse");
    assert_eq!(err.line(), Some(2));
    assert!(err.to_string().contains("line 2:"), "{err}");
    assert_eq!(synth(&out, "up"), 0.0);
    assert_eq!(synth(&out, "scrape_samples_scraped"), 0.0);
    assert!(
        find(&out, "a")
            .iter()
            .chain(&find(&out, "b"))
            .all(|s| is_stale_nan(s.value))
    );
    assert_eq!(find(&out, "a").len() + find(&out, "b").len(), 2);
    let out = run(&mut s, "a 1\nb 2\n", 3);
    assert!(out.error.is_none());
    assert_eq!(synth(&out, "scrape_series_added"), 2.0);
}

#[test]
fn limits_fail_the_scrape_with_bounded_reasons() {
    let cases: [(ScrapeConfig, &str, &str); 5] = [
        (
            ScrapeConfig {
                sample_limit: 2,
                ..ScrapeConfig::default()
            },
            "a 1\nb 1\nc 1\n",
            "sample_limit",
        ),
        // 3 target labels + cluster + __name__ + 2 exposed = 7.
        (
            ScrapeConfig {
                label_limit: 6,
                ..ScrapeConfig::default()
            },
            "a{x=\"1\",y=\"2\"} 1\n",
            "label_limit",
        ),
        (
            ScrapeConfig {
                label_name_length_limit: 10,
                ..ScrapeConfig::default()
            },
            "a{a_very_long_name=\"1\"} 1\n",
            "label_name_length_limit",
        ),
        (
            ScrapeConfig {
                label_value_length_limit: 5,
                ..ScrapeConfig::default()
            },
            "a{x=\"123456\"} 1\n",
            "label_value_length_limit",
        ),
        (ScrapeConfig::default(), "a{x=\"1\",x=\"2\"} 1\n", "parse"),
    ];
    for (config, body, reason) in cases {
        let mut s = scraper(config);
        let out = run(&mut s, body, 1);
        let e = out.error.as_ref().unwrap_or_else(|| panic!("{reason}: no error"));
        assert_eq!(e.reason(), reason, "{e}");
        assert!(e.to_string().contains(reason) || reason == "parse", "{e}");
        assert_eq!(out.samples.len(), 4, "only synthetic series");
    }
    // Within the limits: fine. Limits count after relabelling.
    let config = ScrapeConfig {
        sample_limit: 1,
        metric_relabel_configs: vec![rule("{source_labels: [__name__], regex: b, action: drop}")],
        ..ScrapeConfig::default()
    };
    let out = run(&mut scraper(config), "a 1\nb 1\n", 1);
    assert!(out.error.is_none(), "{:?}", out.error);
    assert_eq!(synth(&out, "scrape_samples_scraped"), 2.0);
}

#[test]
fn not_utf8_fails_the_scrape() {
    let mut s = scraper(ScrapeConfig::default());
    let out = s.process(b"a{x=\"\xff\"} 1\n", Format::PrometheusText, 1, Instant::now());
    assert_eq!(out.error.map(|e| e.reason()), Some("not_utf8"));
}

fn rule(yaml: &str) -> RelabelConfig {
    serde_norway::from_str(yaml).expect("rule")
}

#[test]
fn relabelling_applies_after_target_labels_and_is_cached() {
    let config = ScrapeConfig {
        metric_relabel_configs: vec![
            rule("{source_labels: [__name__], regex: 'envoy_.*', action: drop}"),
            rule("{source_labels: [pod], target_label: pod_upper, action: uppercase}"),
            rule("{regex: instance, action: labeldrop}"),
        ],
        ..ScrapeConfig::default()
    };
    let mut s = scraper(config);
    let body = "envoy_x 1\nistio_y 2\n";
    for ts in 1..3 {
        let out = run(&mut s, body, ts);
        assert!(out.error.is_none());
        assert!(find(&out, "envoy_x").is_empty());
        let y = find(&out, "istio_y")[0];
        assert_eq!(y.labels.get("pod_upper"), Some("P0"));
        assert_eq!(y.labels.get("instance"), None);
        assert_eq!(synth(&out, "scrape_samples_scraped"), 2.0);
    }
    assert_eq!(s.cached_series(), 2, "dropped series are cached as dropped");
    let bad = ScrapeConfig {
        metric_relabel_configs: vec![rule("{regex: '(', action: drop}")],
        ..ScrapeConfig::default()
    };
    let out = run(&mut scraper(bad), body, 1);
    assert_eq!(out.error.map(|e| e.reason()), Some("relabel_config"));
}

#[test]
fn reduction_sums_pods_and_forwards_gauges_per_pod() {
    let reducer = crate::reduce::Reducer::new(ReduceConfig {
        by_workload: true,
        ..ReduceConfig::default()
    });
    let mk = |pod: &str| {
        Scraper::new(
            reqwest::Client::new(),
            target("http://x/m", pod),
            ScrapeConfig::default(),
            "c1",
        )
        .with_reducer(Arc::clone(&reducer))
    };
    let (mut a, mut b) = (mk("a"), mk("b"));
    let body = |req: u32, g: u32| {
        format!(
            "# TYPE req_total counter\nreq_total{{app=\"r\"}} {req}\n# TYPE h histogram\nh_bucket{{le=\"+Inf\"}} {req}\nh_sum {req}\nh_count {req}\n# TYPE g gauge\ng {g}\n"
        )
    };
    let oa = run(&mut a, &body(10, 1), 1);
    let ob = run(&mut b, &body(20, 2), 1);
    for o in [&oa, &ob] {
        assert!(
            find(o, "req_total").is_empty(),
            "reduced series are not forwarded per pod"
        );
        assert_eq!(find(o, "g").len(), 1);
        assert_eq!(synth(o, "scrape_samples_scraped"), 5.0);
    }
    let (out, stats) = reducer.flush(5);
    assert_eq!(stats.series_out, 4);
    assert_eq!(stats.series_in, 8);
    let req = out
        .iter()
        .find(|s| s.labels.metric_name() == Some("req_total"))
        .expect("req");
    assert_eq!(req.value, 30.0);
    assert_eq!(req.labels.get("pod"), None);
    assert_eq!(req.labels.get("instance"), None);
    // b resets to 3: +3, a goes to 15: +5.
    run(&mut a, &body(15, 1), 2);
    run(&mut b, &body(3, 2), 2);
    let (out, _) = reducer.flush(6);
    let req = out
        .iter()
        .find(|s| s.labels.metric_name() == Some("req_total"))
        .expect("req");
    assert_eq!(req.value, 38.0);
    // Pod b goes away: the sum stays.
    drop(b);
    let (out, stats) = reducer.flush(7);
    assert_eq!(
        out.iter()
            .find(|s| s.labels.metric_name() == Some("req_total"))
            .map(|s| s.value),
        Some(38.0)
    );
    assert_eq!(stats.series_in, 4);
}

mod socket {
    //! Limits over a real socket: a target that never stops sending, a gzip bomb, 10 M samples.

    use std::net::SocketAddr;

    use axum::Router;
    use axum::body::Body;
    use axum::routing::get;
    use futures::stream;

    use super::*;

    async fn serve(app: Router) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, app).await });
        addr
    }

    /// A scraper of `addr` through the collector's own client (plain HTTP: hyper-util).
    fn over(addr: SocketAddr, config: ScrapeConfig) -> Scraper {
        Scraper::new(
            ScrapeClient::new(config.keep_alive),
            target(&format!("http://{addr}/m"), "p0"),
            config,
            "c1",
        )
    }

    /// An endless body of valid lines, `chunk` bytes at a time; counts what it sent.
    fn endless(sent: Arc<std::sync::atomic::AtomicU64>) -> Body {
        let chunk = bytes::Bytes::from("a_metric{label=\"value\"} 1\n".repeat(40_000));
        Body::from_stream(stream::repeat_with(move || {
            sent.fetch_add(chunk.len() as u64, std::sync::atomic::Ordering::Relaxed);
            Ok::<_, std::io::Error>(chunk.clone())
        }))
    }

    #[tokio::test]
    async fn endless_body_is_cut_at_the_limit() {
        let sent = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let s2 = Arc::clone(&sent);
        let addr = serve(Router::new().route("/m", get(move || async move { endless(s2.clone()) }))).await;
        let mut s = over(
            addr,
            ScrapeConfig {
                max_body_bytes: 8 << 20,
                ..ScrapeConfig::default()
            },
        );
        let out = s.scrape(1).await;
        assert_eq!(
            out.error.as_ref().map(|e| e.reason()),
            Some("body_size_limit"),
            "{:?}",
            out.error
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        let sent = sent.load(std::sync::atomic::Ordering::Relaxed);
        // The server stops once the connection is closed: it sent the limit plus what was in
        // flight, not a gigabyte.
        assert!(sent < 64 << 20, "server sent {sent} bytes");
    }

    #[tokio::test]
    async fn gzip_is_limited_on_the_decompressed_size() {
        use std::io::Write;
        // 32 MiB of zeros-ish lines compress to ~100 KB.
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let line = "a_metric{label=\"value\"} 1\n".repeat(10_000);
        for _ in 0..(32 << 20) / line.len() {
            enc.write_all(line.as_bytes()).expect("gzip");
        }
        let gz = bytes::Bytes::from(enc.finish().expect("gzip"));
        assert!(gz.len() < 1 << 20);
        let app = Router::new().route(
            "/m",
            get(move || {
                let gz = gz.clone();
                async move { ([("content-encoding", "gzip")], gz) }
            }),
        );
        let addr = serve(app).await;
        let mut s = over(
            addr,
            ScrapeConfig {
                max_body_bytes: 4 << 20,
                ..ScrapeConfig::default()
            },
        );
        let out = s.scrape(1).await;
        assert_eq!(
            out.error.as_ref().map(|e| e.reason()),
            Some("body_size_limit"),
            "{:?}",
            out.error
        );
        // And a small gzip body scrapes fine.
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(b"a 1\nb 2\n").expect("gzip");
        let small = bytes::Bytes::from(enc.finish().expect("gzip"));
        let app = Router::new().route(
            "/m",
            get(move || {
                let b = small.clone();
                async move { ([("content-encoding", "gzip")], b) }
            }),
        );
        let addr = serve(app).await;
        let mut s = over(addr, ScrapeConfig::default());
        let out = s.scrape(1).await;
        assert!(out.error.is_none(), "{:?}", out.error);
        assert_eq!(out.scraped, 2);
        // The same through a caller's reqwest client (the path https targets take).
        let mut s = Scraper::new(
            reqwest::Client::new(),
            target(&format!("http://{addr}/m"), "p0"),
            ScrapeConfig::default(),
            "c1",
        );
        let out = s.scrape(1).await;
        assert!(out.error.is_none(), "{:?}", out.error);
        assert_eq!(out.scraped, 2);
    }

    /// A bare HTTP/1.1 server answering every request on a connection with `body`; counts the
    /// connections it accepted.
    async fn counting_server(body: &'static str) -> (SocketAddr, Arc<std::sync::atomic::AtomicUsize>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = Arc::clone(&accepted);
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    loop {
                        let Ok(n) = conn.read(&mut chunk).await else {
                            return;
                        };
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            buf.drain(..end + 4);
                            let head = format!(
                                "HTTP/1.1 200 OK\r\ncontent-type: text/plain; version=0.0.4\r\ncontent-length: {}\r\n\r\n",
                                body.len()
                            );
                            if conn.write_all(head.as_bytes()).await.is_err()
                                || conn.write_all(body.as_bytes()).await.is_err()
                            {
                                return;
                            }
                        }
                    }
                });
            }
        });
        (addr, accepted)
    }

    #[tokio::test]
    async fn keep_alive_reuses_the_connection() {
        for (keep_alive, connections) in [(true, 1), (false, 3)] {
            let (addr, accepted) = counting_server("a 1\nb 2\n").await;
            let mut s = over(
                addr,
                ScrapeConfig {
                    keep_alive,
                    ..ScrapeConfig::default()
                },
            );
            for ts in 1..=3 {
                let out = s.scrape(ts).await;
                assert!(out.error.is_none(), "{:?}", out.error);
                assert_eq!(out.scraped, 2);
                // The client puts a connection back in its pool from a task of its own once the
                // body has been read; real scrapes are seconds apart.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let n = accepted.load(std::sync::atomic::Ordering::SeqCst);
            assert_eq!(n, connections, "keep_alive: {keep_alive}");
        }
    }

    #[tokio::test]
    async fn ten_million_samples_hit_the_sample_limit() {
        // 10 M samples of `m{i="N"} 1`, about 150 MB, generated as it is sent.
        const N: usize = 10_000_000;
        const PER_CHUNK: usize = 100_000;
        let app = Router::new().route(
            "/m",
            get(|| async {
                Body::from_stream(stream::iter((0..N / PER_CHUNK).map(|c| {
                    let mut s = String::with_capacity(PER_CHUNK * 20);
                    for i in c * PER_CHUNK..(c + 1) * PER_CHUNK {
                        s.push_str("m{i=\"");
                        s.push_str(&i.to_string());
                        s.push_str("\"} 1\n");
                    }
                    Ok::<_, std::io::Error>(bytes::Bytes::from(s))
                })))
            }),
        );
        let addr = serve(app).await;
        // Default body limit (64 MiB): cut off by size long before 10 M samples.
        let mut s = over(addr, ScrapeConfig::default());
        let out = s.scrape(1).await;
        assert_eq!(out.error.as_ref().map(|e| e.reason()), Some("body_size_limit"));
        assert_eq!(s.cached_series(), 0);
        // A large body limit: the sample limit fails it, and the cache stays bounded.
        let config = ScrapeConfig {
            max_body_bytes: 256 << 20,
            sample_limit: 100_000,
            timeout_ms: 120_000,
            ..ScrapeConfig::default()
        };
        let mut s = over(addr, config);
        let out = s.scrape(1).await;
        assert_eq!(
            out.error.as_ref().map(|e| e.reason()),
            Some("sample_limit"),
            "{:?}",
            out.error
        );
        assert!(s.cached_series() <= 100_001, "{}", s.cached_series());
    }
}

#[test]
fn texts_relabelled_to_one_series_share_its_slot() {
    let config = ScrapeConfig {
        metric_relabel_configs: vec![rule("{regex: a, action: labeldrop}")],
        ..ScrapeConfig::default()
    };
    let mut s = scraper(config);
    let out = run(&mut s, "m{a=\"1\"} 1\nm{a=\"2\"} 2\n", 1);
    let first = find(&out, "m");
    assert_eq!(
        first.len(),
        1,
        "the same series twice in one scrape: the first wins"
    );
    assert_eq!(first[0].value, 1.0);
    let first = first[0].labels.clone();
    let out = run(&mut s, "m{a=\"2\"} 5\n", 2);
    let m = find(&out, "m");
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].value, 5.0);
    assert!(
        SeriesLabels::ptr_eq(&m[0].labels, &first),
        "found through by_labels"
    );
    // Evicted, then back under the other text: a fresh series, not stale.
    let out = run(&mut s, "n 1\n", 3);
    assert!(find(&out, "m").iter().all(|x| is_stale_nan(x.value)));
    let out = run(&mut s, "m{a=\"1\"} 7\n", 4);
    let m = find(&out, "m");
    assert_eq!((m.len(), m[0].value), (1, 7.0));
    assert_eq!(synth(&out, "scrape_series_added"), 1.0);
}
