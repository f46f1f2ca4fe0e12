//! API shape test: for each Prometheus HTTP API endpoint Grafana (or a federating Prometheus) uses,
//! the response meshfed's aggregator gives and the one a real Prometheus 2.42 gives to the same
//! request have the same HTTP status, content type and JSON structure: the same keys, the same
//! value types, numbers as JSON numbers where Prometheus has numbers and numeric strings (`"1"`,
//! `"NaN"`, `"+Inf"`) where it has those, and the same error envelope and `errorType`.
//!
//! Both scrape the same simulated mesh: Prometheus via file_sd, meshfed via its collectors and
//! relay (an in-process [`LocalMesh`]), each every second.
//!
//! Run: `cargo test -p meshfed-tests --test api_shapes -- --include-ignored --nocapture`.

#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use meshfed_cli::mesh::{LocalMesh, MeshOptions};
use meshfed_sim::SimConfig;
use meshfed_tests::prometheus::PrometheusPeer;
use serde_json::Value;

/// One request sent to both servers.
struct Case {
    name: &'static str,
    method: &'static str,
    path: String,
    params: Vec<(&'static str, String)>,
    /// Paths (`data.result[].metric`) whose objects are maps with data-dependent keys, compared
    /// as "object of strings" rather than key by key.
    maps: &'static [&'static str],
    /// Both sides must return data (a non-empty `data` or `data.result`), so the comparison is
    /// not vacuous.
    nonempty: bool,
}

const SERIES_MAPS: &[&str] = &["data.result[].metric", "data[]"];

fn case(name: &'static str, path: &str, params: &[(&'static str, &str)]) -> Case {
    Case {
        name,
        method: "GET",
        path: path.to_owned(),
        params: params.iter().map(|(k, v)| (*k, (*v).to_owned())).collect(),
        maps: SERIES_MAPS,
        nonempty: false,
    }
}

impl Case {
    fn post(mut self) -> Self {
        self.method = "POST";
        self
    }
    fn nonempty(mut self) -> Self {
        self.nonempty = true;
        self
    }
    fn maps(mut self, maps: &'static [&'static str]) -> Self {
        self.maps = maps;
        self
    }
}

/// A JSON value's type as the shape comparison sees it.
fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(s) if s.parse::<f64>().is_ok() => "numeric string",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Appends to `out` every structural difference between Prometheus' `want` and meshfed's `got`.
fn shape_diff(want: &Value, got: &Value, path: &str, maps: &[&str], out: &mut Vec<String>) {
    let (kw, kg) = (kind(want), kind(got));
    if kw != kg {
        // Strings in maps (label values) may or may not look numeric.
        let both_strings = kw.ends_with("string") && kg.ends_with("string");
        if !(both_strings && path.ends_with('*')) {
            out.push(format!(
                "{path}: prometheus has {kw} ({want}), meshfed {kg} ({got})"
            ));
        }
        return;
    }
    match (want, got) {
        (Value::Object(w), Value::Object(g)) if maps.contains(&path) => {
            // A map: every value of one side has the shape of the other side's first value.
            if let (Some(w0), Some(g0)) = (w.values().next(), g.values().next()) {
                for v in g.values() {
                    shape_diff(w0, v, &format!("{path}.*"), maps, out);
                }
                for v in w.values() {
                    shape_diff(v, g0, &format!("{path}.*"), maps, out);
                }
            }
        }
        (Value::Object(w), Value::Object(g)) => {
            for k in w.keys().filter(|k| !g.contains_key(*k)) {
                out.push(format!("{path}: key {k:?} only in prometheus"));
            }
            for k in g.keys().filter(|k| !w.contains_key(*k)) {
                out.push(format!("{path}: key {k:?} only in meshfed"));
            }
            for (k, wv) in w {
                if let Some(gv) = g.get(k) {
                    let p = if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    };
                    shape_diff(wv, gv, &p, maps, out);
                }
            }
        }
        (Value::Array(w), Value::Array(g)) => {
            let p = format!("{path}[]");
            // Position by position for tuples (`[ts, "value"]`), then every element against the
            // other side's first, so series and points of any count are all checked.
            for (wv, gv) in w.iter().zip(g) {
                shape_diff(wv, gv, &p, maps, out);
            }
            if let (Some(w0), Some(g0), true) = (w.first(), g.first(), w.len() > 2 || g.len() > 2) {
                for v in g.iter().skip(w.len()) {
                    shape_diff(w0, v, &p, maps, out);
                }
                for v in w.iter().skip(g.len()) {
                    shape_diff(v, g0, &p, maps, out);
                }
            }
        }
        _ => {}
    }
}

fn has_data(v: &Value) -> bool {
    let d = &v["data"];
    let r = if d.get("result").is_some() {
        &d["result"]
    } else {
        d
    };
    match r {
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
        Value::Null => false,
        _ => true,
    }
}

/// Status, content type (without parameters) and body of one request.
async fn fetch(client: &reqwest::Client, base: &str, c: &Case) -> (u16, String, String) {
    let url = reqwest::Url::parse_with_params(
        &format!("{base}{}", c.path),
        if c.method == "GET" {
            c.params.as_slice()
        } else {
            &[]
        },
    )
    .unwrap();
    let req = if c.method == "GET" {
        client.get(url)
    } else {
        let body: Vec<String> = c
            .params
            .iter()
            .map(|(k, v)| {
                let enc = reqwest::Url::parse_with_params("http://x/", &[(k, v)]).unwrap();
                enc.query().unwrap_or_default().to_owned()
            })
            .collect();
        client
            .post(url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.join("&"))
    };
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .to_owned();
    (status, ct, resp.text().await.unwrap())
}

/// Checks a `/federate` body: `# TYPE <name> untyped` before each name's samples, and every
/// sample line `name{labels} value timestamp_ms`.
fn federate_problems(body: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let mut typed = String::new();
    let mut samples = 0;
    for line in body.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut it = rest.split(' ');
            typed = it.next().unwrap_or_default().to_owned();
            if it.next() != Some("untyped") {
                problems.push(format!("not untyped: {line}"));
            }
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        samples += 1;
        let name = line.split(['{', ' ']).next().unwrap_or_default();
        if name != typed {
            problems.push(format!("sample without its # TYPE line: {line}"));
        }
        let mut fields = line.rsplit(' ');
        let ts = fields.next().unwrap_or_default();
        let value = fields.next().unwrap_or_default();
        if ts.parse::<i64>().is_err() || value.parse::<f64>().is_err() {
            problems.push(format!("not `value timestamp_ms`: {line}"));
        }
    }
    if samples == 0 {
        problems.push("no samples".into());
    }
    problems
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a real Prometheus (scripts/test installs Debian's prometheus 2.42)"]
async fn api_responses_have_prometheus_shapes() {
    let mesh = LocalMesh::start(MeshOptions {
        sim: SimConfig {
            control_listen: None,
            ..SimConfig::default()
        },
        scrape_interval_secs: 1.0,
        scrape_timeout_ms: Some(900),
        tls_dir: None,
        ..MeshOptions::default()
    })
    .await
    .unwrap();
    let sd = std::env::temp_dir().join(format!("meshfed-api-shapes-sd-{}.json", std::process::id()));
    mesh.sim.write_file_sd(&sd, None).unwrap();
    let prom = PrometheusPeer::start(
        "api-shapes",
        &format!(
            "global: {{scrape_interval: 1s, scrape_timeout: 900ms}}\nscrape_configs:\n  - job_name: envoy-stats\n    file_sd_configs: [{{files: ['{}'], refresh_interval: 1s}}]\n",
            sd.display()
        ),
        &[],
    )
    .await
    .unwrap();
    let theirs = prom.url("");
    let ours = format!("http://{}", mesh.aggregator.http_addr);
    let client = reqwest::Client::new();
    // Both have a few scrapes of every pod.
    let ready = case(
        "ready",
        "/api/v1/query",
        &[("query", "count(rate(istio_requests_total[5s]))")],
    );
    for _ in 0..100 {
        let (_, _, p) = fetch(&client, &theirs, &ready).await;
        let (_, _, o) = fetch(&client, &ours, &ready).await;
        let ok = |b: &str| serde_json::from_str::<Value>(b).is_ok_and(|v| has_data(&v));
        if ok(&p) && ok(&o) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;

    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let (now_s, start_s) = (format!("{now:.3}"), format!("{:.3}", now - 30.0));
    let (now_s, start_s) = (now_s.as_str(), start_s.as_str());
    let cases = vec![
        case("query vector", "/api/v1/query", &[("query", "istio_requests_total"), ("time", now_s)]).nonempty(),
        case("query vector POST", "/api/v1/query", &[("query", "sum by (reporter) (istio_requests_total)")])
            .post()
            .nonempty(),
        case("query scalar", "/api/v1/query", &[("query", "1 + 1"), ("time", now_s)]).nonempty(),
        case("query NaN/Inf", "/api/v1/query", &[("query", "vector(0) / 0 or vector(1) / 0")]).nonempty(),
        case("query string", "/api/v1/query", &[("query", "\"hello\"")]).nonempty(),
        case("query matrix", "/api/v1/query", &[("query", "istio_requests_total{reporter=\"destination\"}[5s]")]).nonempty(),
        case("query bad syntax", "/api/v1/query", &[("query", "sum(")]),
        case("query missing", "/api/v1/query", &[]),
        case("query bad time", "/api/v1/query", &[("query", "up"), ("time", "yesterday")]),
        case(
            "query execution error",
            "/api/v1/query",
            &[("query", "istio_requests_total * on (reporter) istio_requests_total")],
        ),
        case(
            "query_range",
            "/api/v1/query_range",
            &[("query", "sum by (destination_workload) (rate(istio_requests_total[5s]))"), ("start", start_s), ("end", now_s), ("step", "2.5")],
        )
        .nonempty(),
        case(
            "query_range POST",
            "/api/v1/query_range",
            &[("query", "histogram_quantile(0.9, sum by (le) (rate(istio_request_duration_milliseconds_bucket[5s])))"), ("start", start_s), ("end", now_s), ("step", "5s")],
        )
        .post()
        .nonempty(),
        case("query_range scalar", "/api/v1/query_range", &[("query", "time()"), ("start", start_s), ("end", now_s), ("step", "10")]).nonempty(),
        case(
            "query_range too many points",
            "/api/v1/query_range",
            &[("query", "up"), ("start", start_s), ("end", now_s), ("step", "0.001")],
        ),
        case("query_range zero step", "/api/v1/query_range", &[("query", "up"), ("start", start_s), ("end", now_s), ("step", "0")]),
        case("query_range end before start", "/api/v1/query_range", &[("query", "up"), ("start", now_s), ("end", start_s), ("step", "1")]),
        case("query_range range vector", "/api/v1/query_range", &[("query", "up[1m]"), ("start", start_s), ("end", now_s), ("step", "1")]),
        case("query_range missing step", "/api/v1/query_range", &[("query", "up"), ("start", start_s), ("end", now_s)]),
        case("series", "/api/v1/series", &[("match[]", "istio_tcp_connections_opened_total"), ("start", start_s), ("end", now_s)]).nonempty(),
        case("series POST", "/api/v1/series", &[("match[]", "istio_requests_total{reporter=\"source\"}")]).post().nonempty(),
        case("series no match", "/api/v1/series", &[]),
        case("series bad match", "/api/v1/series", &[("match[]", "sum(up)")]),
        case("labels", "/api/v1/labels", &[]).nonempty(),
        case("labels match", "/api/v1/labels", &[("match[]", "istio_requests_total"), ("start", start_s), ("end", now_s)]).nonempty(),
        case("label values", "/api/v1/label/__name__/values", &[]).nonempty(),
        case("label values match", "/api/v1/label/destination_workload/values", &[("match[]", "istio_requests_total{reporter=\"destination\"}")]).nonempty(),
        case("label values unknown", "/api/v1/label/no_such_label/values", &[]),
        case("buildinfo", "/api/v1/status/buildinfo", &[]).nonempty(),
        case("metadata", "/api/v1/metadata", &[]).maps(&["data"]),
        case("query_exemplars", "/api/v1/query_exemplars", &[("query", "istio_requests_total"), ("start", start_s), ("end", now_s)]),
        case("rules", "/api/v1/rules", &[]),
        // As Grafana's backend sends them (docs/query.md, "What Grafana sends").
        case("grafana health check", "/api/v1/query", &[("query", "1+1"), ("time", "4")]).post().nonempty(),
        case(
            "grafana panel query",
            "/api/v1/query_range",
            &[("query", "sum by (response_code) (rate(istio_requests_total[5s]))"), ("start", start_s), ("end", now_s), ("step", "2"), ("timeout", "30s")],
        )
        .post()
        .nonempty(),
        case("grafana bad timeout", "/api/v1/query", &[("query", "up"), ("timeout", "soon")]).post(),
        case("grafana labels POST", "/api/v1/labels", &[("match[]", "istio_requests_total"), ("start", start_s), ("end", now_s)]).post().nonempty(),
        case("grafana exemplars POST", "/api/v1/query_exemplars", &[("query", "test"), ("start", start_s), ("end", now_s)]).post(),
        case("alerts", "/api/v1/alerts", &[]),
        case("format_query", "/api/v1/format_query", &[("query", "sum by(job)(rate(up[5m]))")]).nonempty(),
        case("format_query bad", "/api/v1/format_query", &[("query", "sum(")]),
    ];

    let mut passed = 0;
    let mut failures = Vec::new();
    for c in &cases {
        let (ps, pct, pb) = fetch(&client, &theirs, c).await;
        let (os, oct, ob) = fetch(&client, &ours, c).await;
        let mut problems = Vec::new();
        if ps != os {
            problems.push(format!("status: prometheus {ps}, meshfed {os}"));
        }
        if pct != oct {
            problems.push(format!("content-type: prometheus {pct}, meshfed {oct}"));
        }
        match (
            serde_json::from_str::<Value>(&pb),
            serde_json::from_str::<Value>(&ob),
        ) {
            (Ok(p), Ok(o)) => {
                shape_diff(&p, &o, "", c.maps, &mut problems);
                if p["errorType"] != o["errorType"] {
                    problems.push(format!(
                        "errorType: prometheus {}, meshfed {}",
                        p["errorType"], o["errorType"]
                    ));
                }
                if c.nonempty && !(has_data(&p) && has_data(&o)) {
                    problems.push(format!(
                        "expected data on both sides: prometheus {pb:.200}, meshfed {ob:.200}"
                    ));
                }
            }
            (p, o) => problems.push(format!(
                "not JSON: prometheus {:?} meshfed {:?}",
                p.err().map(|e| e.to_string()),
                o.err().map(|e| e.to_string())
            )),
        }
        println!(
            "{:<30} {ps} {os} {}",
            c.name,
            if problems.is_empty() { "ok" } else { "DIFFERS" }
        );
        if problems.is_empty() {
            passed += 1;
        } else {
            failures.push(format!("{}: {}", c.name, problems.join("; ")));
        }
    }

    // /federate (text) and gzip (headers).
    let fed = case(
        "federate",
        "/federate",
        &[
            ("match[]", "istio_tcp_connections_opened_total"),
            ("match[]", "{__name__=~\"istio_request_bytes_count\"}"),
        ],
    );
    let (ps, pct, pb) = fetch(&client, &theirs, &fed).await;
    let (os, oct, ob) = fetch(&client, &ours, &fed).await;
    let mut problems = federate_problems(&ob);
    if ps != os || pct != oct {
        problems.push(format!(
            "status/content-type: prometheus {ps} {pct}, meshfed {os} {oct}"
        ));
    }
    problems.extend(
        federate_problems(&pb)
            .into_iter()
            .map(|p| format!("(prometheus itself) {p}")),
    );
    let names = |b: &str| -> Vec<String> {
        b.lines()
            .filter(|l| l.starts_with("# TYPE"))
            .map(str::to_owned)
            .collect()
    };
    if names(&pb) != names(&ob) {
        problems.push(format!(
            "# TYPE lines: prometheus {:?}, meshfed {:?}",
            names(&pb),
            names(&ob)
        ));
    }
    let fed_missing = case("federate no match", "/federate", &[]);
    let (ps2, _, _) = fetch(&client, &theirs, &fed_missing).await;
    let (os2, _, _) = fetch(&client, &ours, &fed_missing).await;
    if ps2 != os2 {
        problems.push(format!("no match[]: prometheus {ps2}, meshfed {os2}"));
    }
    println!(
        "{:<30} {ps} {os} {}",
        "federate",
        if problems.is_empty() { "ok" } else { "DIFFERS" }
    );
    if problems.is_empty() {
        passed += 1;
    } else {
        failures.push(format!("federate: {}", problems.join("; ")));
    }

    let raw = reqwest::Client::builder().no_gzip().build().unwrap();
    let enc = |base: String| {
        let raw = raw.clone();
        async move {
            let r = raw
                .get(format!("{base}/api/v1/labels"))
                .header("accept-encoding", "gzip")
                .send()
                .await
                .unwrap();
            r.headers()
                .get("content-encoding")
                .map(|v| v.to_str().unwrap_or_default().to_owned())
        }
    };
    let (pe, oe) = (enc(theirs.clone()).await, enc(ours.clone()).await);
    println!("{:<30} {pe:?} {oe:?}", "gzip");
    if pe == oe {
        passed += 1;
    } else {
        failures.push(format!("gzip: prometheus {pe:?}, meshfed {oe:?}"));
    }

    // Grafana POSTs resource calls such as buildinfo and rules first and retries with GET on 405
    // or 400, so the status of the POST must be one of those, as Prometheus' is.
    for path in ["/api/v1/status/buildinfo", "/api/v1/rules"] {
        let post = case("grafana POST", path, &[]).post();
        let (ps, _, _) = fetch(&client, &theirs, &post).await;
        let (os, _, _) = fetch(&client, &ours, &post).await;
        println!("{:<30} {ps} {os}", format!("POST {path}"));
        if ps == os {
            passed += 1;
        } else {
            failures.push(format!("POST {path}: prometheus {ps}, meshfed {os}"));
        }
    }

    let total = cases.len() + 4;
    for f in &failures {
        println!("FAILED {f}");
    }
    println!("api shapes: {passed}/{total} endpoints match Prometheus 2.42");
    let _ = std::fs::remove_file(&sd);
    drop(prom);
    mesh.shutdown().await;
    assert!(
        failures.is_empty(),
        "{} of {total} differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn shape_diff_catches_structural_differences() {
    let diffs = |a: &str, b: &str| {
        let mut out = Vec::new();
        let (a, b): (Value, Value) = (serde_json::from_str(a).unwrap(), serde_json::from_str(b).unwrap());
        shape_diff(&a, &b, "", SERIES_MAPS, &mut out);
        out
    };
    let prom = r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"a":"1"},"value":[1.5,"2"]}]}}"#;
    // Different label sets and values are not structural differences.
    assert!(diffs(prom, r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"b":"x","c":"y"},"value":[2,"NaN"]},{"metric":{},"value":[2,"+Inf"]}]}}"#).is_empty());
    // A number where Prometheus has a numeric string, a missing key, an extra key, a string timestamp.
    assert_eq!(
        diffs(
            prom,
            r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1.5,2]}]}}"#
        )
        .len(),
        1
    );
    assert_eq!(
        diffs(prom, r#"{"status":"success","data":{"result":[]}}"#).len(),
        1
    );
    assert_eq!(
        diffs(
            prom,
            r#"{"status":"success","data":{"resultType":"vector","result":[]},"warnings":[]}"#
        )
        .len(),
        1
    );
    assert_eq!(diffs(prom, r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":["1.5","2"]}]}}"#).len(), 1);
    // A label value that is not a string (seen from both sides of the map comparison).
    assert_eq!(diffs(prom, r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"a":1},"value":[1.5,"2"]}]}}"#).len(), 2);
}
