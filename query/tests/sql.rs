#![allow(clippy::unwrap_used)]
//! SQL over the store: exact results of the engine, the limits, and `/api/v1/sql` through the
//! router without a socket (JSON, CSV and Arrow IPC, errors).
//!
//! One file on purpose: every test binary links DataFusion, and linking is the slow part.

use std::sync::Arc;

use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode, header};
use datafusion::arrow::ipc::reader::StreamReader;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::util::pretty::pretty_format_batches;
use meshfed_model::{Labels, stale_nan};
use meshfed_query::sql::{SqlLimits, SqlResult};
use meshfed_query::{Engine, EngineOptions, QueryError, SqlEngine, SqlOptions, router_with_sql};
use meshfed_store::{SeriesRef, Store, StoreOptions};
use tower::ServiceExt;

/// 2023-11-14T22:13:20Z.
const T0: i64 = 1_700_000_000_000;

/// Three request counters over two clusters, and two `up` series; every 15 s from `T0`.
fn store() -> (Arc<Store>, Vec<SeriesRef>) {
    let store = Arc::new(Store::new(StoreOptions::default()));
    let req = |cluster: &str, code: &str| {
        Labels::from_pairs([
            ("__name__", "istio_requests_total"),
            ("cluster", cluster),
            ("destination_service", "reviews"),
            ("response_code", code),
            ("source_workload", "productpage"),
        ])
    };
    let fixture: Vec<(Labels, Vec<f64>)> = vec![
        (req("east", "200"), vec![0.0, 10.0, 20.0, 30.0, 40.0]),
        (req("east", "500"), vec![0.0, 1.0, 2.0, 3.0, 4.0, stale_nan()]),
        (req("west", "200"), vec![0.0, 30.0, 60.0, 90.0, 120.0]),
        (
            Labels::from_pairs([("__name__", "up"), ("cluster", "east"), ("instance", "a")]),
            vec![1.0; 5],
        ),
        (
            Labels::from_pairs([("__name__", "up"), ("cluster", "west"), ("instance", "b")]),
            vec![1.0, 0.0],
        ),
    ];
    let mut refs = Vec::new();
    for (labels, values) in fixture {
        let r = store.get_or_create(&labels);
        for (i, v) in values.into_iter().enumerate() {
            store.append(r, T0 + 15_000 * i as i64, v).unwrap();
        }
        refs.push(r);
    }
    (store, refs)
}

fn engine(options: SqlOptions) -> SqlEngine {
    SqlEngine::new(store().0, options)
}

async fn run(sql: &str) -> SqlResult {
    let e = engine(SqlOptions::default());
    e.query(sql, e.options().limits()).await.unwrap()
}

fn table(batches: &[RecordBatch]) -> String {
    pretty_format_batches(batches).unwrap().to_string()
}

async fn assert_sql(sql: &str, expected: &[&str]) {
    let r = run(sql).await;
    assert!(!r.truncated);
    assert_eq!(table(&r.batches), expected.join("\n"), "{sql}");
}

#[tokio::test]
async fn count_series_by_name() {
    assert_sql(
        "SELECT name, count(*) AS n FROM series GROUP BY name ORDER BY 2 DESC LIMIT 10",
        &[
            "+----------------------+---+",
            "| name                 | n |",
            "+----------------------+---+",
            "| istio_requests_total | 3 |",
            "| up                   | 2 |",
            "+----------------------+---+",
        ],
    )
    .await;
}

#[tokio::test]
async fn staleness_markers_are_not_samples() {
    assert_sql(
        "SELECT count(*) AS n, sum(CASE WHEN isnan(value) THEN 1 ELSE 0 END) AS nan FROM samples",
        &[
            "+----+-----+",
            "| n  | nan |",
            "+----+-----+",
            "| 22 | 0   |",
            "+----+-----+",
        ],
    )
    .await;
}

#[tokio::test]
async fn group_by_label_at_one_time() {
    assert_sql(
        "SELECT labels['cluster'] AS cluster, sum(value) AS total FROM samples \
         WHERE name = 'istio_requests_total' AND ts = TIMESTAMP '2023-11-14T22:14:20Z' \
         GROUP BY 1 ORDER BY 1",
        &[
            "+---------+-------+",
            "| cluster | total |",
            "+---------+-------+",
            "| east    | 44.0  |",
            "| west    | 120.0 |",
            "+---------+-------+",
        ],
    )
    .await;
}

#[tokio::test]
async fn time_range_filters() {
    // [T0+30s, T0+60s): the samples at 30 s and 45 s of the four series that have them.
    assert_sql(
        "SELECT name, count(*) AS n FROM samples \
         WHERE ts >= TIMESTAMP '2023-11-14T22:13:50Z' AND ts < TIMESTAMP '2023-11-14T22:14:20Z' \
         GROUP BY name ORDER BY name",
        &[
            "+----------------------+---+",
            "| name                 | n |",
            "+----------------------+---+",
            "| istio_requests_total | 6 |",
            "| up                   | 2 |",
            "+----------------------+---+",
        ],
    )
    .await;
    // BETWEEN is inclusive, and an epoch-millisecond bound works through to_timestamp_millis.
    assert_sql(
        &format!(
            "SELECT min(ts) AS first, max(ts) AS last, count(*) AS n FROM samples \
             WHERE name = 'up' AND ts BETWEEN to_timestamp_millis({}) AND to_timestamp_millis({})",
            T0 + 15_000,
            T0 + 45_000
        ),
        &[
            "+----------------------+----------------------+---+",
            "| first                | last                 | n |",
            "+----------------------+----------------------+---+",
            "| 2023-11-14T22:13:35Z | 2023-11-14T22:14:05Z | 4 |",
            "+----------------------+----------------------+---+",
        ],
    )
    .await;
}

#[tokio::test]
async fn per_cluster_request_rate() {
    let r = run("WITH per_series AS ( \
           SELECT series_id, labels['cluster'] AS cluster, \
                  (max(value) - min(value)) / 60.0 AS rate \
           FROM samples \
           WHERE name = 'istio_requests_total' AND ts >= TIMESTAMP '2023-11-14T22:13:20Z' \
           GROUP BY series_id, labels['cluster']) \
         SELECT cluster, round(sum(rate), 4) AS rps FROM per_series GROUP BY cluster ORDER BY cluster")
    .await;
    assert_eq!(
        table(&r.batches),
        [
            "+---------+--------+",
            "| cluster | rps    |",
            "+---------+--------+",
            "| east    | 0.7333 |",
            "| west    | 2.0    |",
            "+---------+--------+",
        ]
        .join("\n")
    );
}

#[tokio::test]
async fn join_samples_with_series() {
    assert_sql(
        "SELECT s.labels['instance'] AS instance, count(*) AS n, avg(x.value) AS avg \
         FROM samples x JOIN series s ON x.series_id = s.series_id \
         WHERE s.name = 'up' GROUP BY 1 ORDER BY 1",
        &[
            "+----------+---+-----+",
            "| instance | n | avg |",
            "+----------+---+-----+",
            "| a        | 5 | 1.0 |",
            "| b        | 2 | 0.5 |",
            "+----------+---+-----+",
        ],
    )
    .await;
}

#[tokio::test]
async fn series_table_columns_and_label_filters() {
    assert_sql(
        "SELECT series_id, name, labels FROM series WHERE labels['instance'] = 'b'",
        &[
            "+-----------+------+------------------------------+",
            "| series_id | name | labels                       |",
            "+-----------+------+------------------------------+",
            "| 4         | up   | {cluster: west, instance: b} |",
            "+-----------+------+------------------------------+",
        ],
    )
    .await;
    // `!=` and `IN` are pushed down as matchers, and still exact.
    assert_sql(
        "SELECT series_id FROM series WHERE labels['cluster'] != 'east' AND name IN ('up', 'istio_requests_total') \
         ORDER BY 1",
        &["+-----------+", "| series_id |", "+-----------+", "| 2         |", "| 4         |", "+-----------+"],
    )
    .await;
}

#[tokio::test]
async fn series_id_filter_and_limit() {
    let (store, refs) = store();
    let e = SqlEngine::new(store, SqlOptions::default());
    let sql = format!(
        "SELECT count(*) AS n FROM samples WHERE series_id = {}",
        refs[1].0
    );
    let r = e.query(&sql, e.options().limits()).await.unwrap();
    assert_eq!(table(&r.batches), "+---+\n| n |\n+---+\n| 5 |\n+---+");
    let r = e
        .query("SELECT * FROM samples LIMIT 3", e.options().limits())
        .await
        .unwrap();
    assert_eq!((r.rows, r.truncated), (3, false));
}

#[tokio::test]
async fn row_limit_truncates_and_says_so() {
    let e = engine(SqlOptions {
        max_rows: 10,
        ..SqlOptions::default()
    });
    let r = e
        .query("SELECT * FROM samples", e.options().limits())
        .await
        .unwrap();
    assert_eq!((r.rows, r.truncated), (10, true));
    assert_eq!(r.batches.iter().map(RecordBatch::num_rows).sum::<usize>(), 10);
    // Exactly the limit is not truncated.
    let r = e
        .query("SELECT * FROM samples LIMIT 10", e.options().limits())
        .await
        .unwrap();
    assert_eq!((r.rows, r.truncated), (10, false));
    // A per-query limit can lower the engine's, never raise it.
    let limits = SqlLimits {
        max_rows: 1000,
        timeout_ms: 1000,
    };
    let r = e.query("SELECT * FROM samples", limits).await.unwrap();
    assert_eq!((r.rows, r.truncated), (10, true));
}

#[tokio::test]
async fn timeout_is_an_error() {
    let e = engine(SqlOptions {
        timeout_ms: 100,
        ..SqlOptions::default()
    });
    let err = e
        .query(
            "SELECT sum(value) FROM generate_series(1, 100000000000)",
            e.options().limits(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, QueryError::Timeout(_)), "{err:?}");
    assert_eq!(err.error_type(), "timeout");
}

#[tokio::test]
async fn bad_and_writing_statements_are_bad_data() {
    let e = engine(SqlOptions::default());
    for sql in [
        "SELEC 1",
        "SELECT nope FROM samples",
        "SELECT * FROM missing_table",
        "CREATE TABLE t AS SELECT 1",
        "CREATE VIEW v AS SELECT * FROM series",
        "DROP TABLE samples",
        "INSERT INTO samples VALUES (1, 'x', NULL, now(), 1.0)",
        "DELETE FROM samples",
        "COPY (SELECT 1) TO '/tmp/meshfed-sql-copy.csv'",
        "CREATE EXTERNAL TABLE f STORED AS CSV LOCATION '/etc/passwd'",
        "SELECT * FROM '/etc/passwd'",
        "SET datafusion.execution.batch_size = 1",
        "SELECT 1; SELECT 2",
    ] {
        let err = e.query(sql, e.options().limits()).await.unwrap_err();
        assert!(matches!(err, QueryError::BadData(_)), "{sql}: {err:?}");
    }
    assert!(!std::path::Path::new("/tmp/meshfed-sql-copy.csv").exists());
    // The tables are still there.
    let r = e
        .query("SELECT count(*) FROM series", e.options().limits())
        .await
        .unwrap();
    assert_eq!(r.rows, 1);
}

#[tokio::test]
async fn information_schema_lists_the_tables() {
    assert_sql(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1",
        &[
            "+------------+",
            "| table_name |",
            "+------------+",
            "| samples    |",
            "| series     |",
            "+------------+",
        ],
    )
    .await;
}

/// Every example in docs/query.md's SQL section plans and runs.
#[tokio::test]
async fn documented_examples_run() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/query.md")).unwrap();
    let section = doc.split("## SQL").nth(1).unwrap();
    let block = section
        .split("```sql")
        .nth(1)
        .unwrap()
        .split("```")
        .next()
        .unwrap();
    let code: String = block
        .lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n");
    let statements: Vec<&str> = code.split(';').map(str::trim).filter(|s| !s.is_empty()).collect();
    assert_eq!(statements.len(), 4);
    let e = engine(SqlOptions::default());
    for sql in statements {
        e.query(sql, e.options().limits())
            .await
            .unwrap_or_else(|err| panic!("{sql}: {err}"));
    }
}

// ---- HTTP ----

fn app(options: SqlOptions) -> axum::Router {
    let store = store().0;
    let engine = Arc::new(Engine::new(Arc::clone(&store), EngineOptions::default()));
    router_with_sql(engine, Arc::new(SqlEngine::new(store, options)))
}

async fn call(options: SqlOptions, req: Request<Body>) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
    let resp = app(options).oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = to_bytes(resp.into_body(), usize::MAX).await.unwrap();
    (status, headers, body.to_vec())
}

async fn post(body: &str, content_type: &str, accept: &str) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
    let req = Request::post("/api/v1/sql")
        .header(header::CONTENT_TYPE, content_type)
        .header(header::ACCEPT, accept)
        .body(Body::from(body.to_string()))
        .unwrap();
    call(SqlOptions::default(), req).await
}

async fn get(uri: &str) -> (StatusCode, axum::http::HeaderMap, String) {
    let (s, h, b) = call(
        SqlOptions::default(),
        Request::get(uri).body(Body::empty()).unwrap(),
    )
    .await;
    (s, h, String::from_utf8(b).unwrap())
}

const BY_NAME: &str = "SELECT name, count(*) AS n FROM series GROUP BY name ORDER BY name";
const BY_NAME_JSON: &str = r#"{"status":"success","data":{"columns":[{"name":"name","type":"Utf8"},{"name":"n","type":"Int64"}],"rows":[["istio_requests_total",3],["up",2]],"truncated":false}}"#;

#[tokio::test]
async fn http_json_from_raw_body_json_body_form_and_get() {
    let (s, h, b) = post(BY_NAME, "text/plain", "*/*").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(h[header::CONTENT_TYPE], "application/json");
    assert_eq!(h["x-meshfed-truncated"], "false");
    assert_eq!(String::from_utf8(b).unwrap(), BY_NAME_JSON);

    let json = serde_json::json!({ "query": BY_NAME }).to_string();
    let (s, _, b) = post(&json, "application/json", "application/json").await;
    assert_eq!(
        (s, String::from_utf8(b).unwrap().as_str()),
        (StatusCode::OK, BY_NAME_JSON)
    );

    let form: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("query", BY_NAME)
        .finish();
    let (s, _, b) = post(&form, "application/x-www-form-urlencoded", "").await;
    assert_eq!(
        (s, String::from_utf8(b).unwrap().as_str()),
        (StatusCode::OK, BY_NAME_JSON)
    );

    let (s, _, b) = get(&format!("/api/v1/sql?{form}")).await;
    assert_eq!((s, b.as_str()), (StatusCode::OK, BY_NAME_JSON));
}

#[tokio::test]
async fn http_json_value_rendering() {
    let sql = "SELECT series_id, labels, ts, value, value / 0.0 AS inf, CAST('NaN' AS DOUBLE) AS nan, \
               value > 0 AS pos, CAST(NULL AS VARCHAR) AS nothing \
               FROM samples WHERE name = 'up' AND labels['instance'] = 'b' ORDER BY ts";
    let (s, _, b) = post(sql, "application/sql", "application/json").await;
    assert_eq!(s, StatusCode::OK);
    let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
    assert_eq!(
        v["data"]["rows"],
        serde_json::json!([
            [4, {"cluster": "west", "instance": "b"}, "2023-11-14T22:13:20Z", 1.0, "+Inf", "NaN", true, null],
            [4, {"cluster": "west", "instance": "b"}, "2023-11-14T22:13:35Z", 0.0, "NaN", "NaN", false, null],
        ])
    );
    assert_eq!(
        v["data"]["columns"][3],
        serde_json::json!({"name": "value", "type": "Float64"})
    );
}

#[tokio::test]
async fn http_csv() {
    let (s, h, b) = post(BY_NAME, "text/plain", "text/csv").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(h[header::CONTENT_TYPE], "text/csv; charset=utf-8");
    assert_eq!(
        String::from_utf8(b).unwrap(),
        "name,n\nistio_requests_total,3\nup,2\n"
    );
    let (s, _, b) = get(
        "/api/v1/sql?format=csv&query=SELECT%20name,%20labels%20FROM%20series%20WHERE%20series_id%20%3D%204",
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        b,
        "name,labels\nup,\"{\"\"cluster\"\":\"\"west\"\",\"\"instance\"\":\"\"b\"\"}\"\n"
    );
    // An empty result still has its header.
    let (_, _, b) = post(
        "SELECT name FROM series WHERE name = 'none'",
        "text/plain",
        "text/csv",
    )
    .await;
    assert_eq!(String::from_utf8(b).unwrap(), "name\n");
}

#[tokio::test]
async fn http_arrow_ipc_decodes_to_the_same_batches() {
    let sql = "SELECT * FROM samples ORDER BY series_id, ts";
    let (s, h, b) = post(sql, "text/plain", "application/vnd.apache.arrow.stream").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(h[header::CONTENT_TYPE], "application/vnd.apache.arrow.stream");
    let reader = StreamReader::try_new(std::io::Cursor::new(b), None).unwrap();
    let schema = reader.schema();
    let decoded: Vec<RecordBatch> = reader.collect::<Result<_, _>>().unwrap();
    let direct = run(sql).await;
    assert_eq!(schema, direct.schema);
    assert_eq!(decoded, direct.batches);
    assert_eq!(decoded.iter().map(RecordBatch::num_rows).sum::<usize>(), 22);
}

#[tokio::test]
async fn http_row_limit_is_flagged() {
    let (s, h, b) = get("/api/v1/sql?query=SELECT%20*%20FROM%20samples&limit=3").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(h["x-meshfed-truncated"], "true");
    let v: serde_json::Value = serde_json::from_str(&b).unwrap();
    assert_eq!(v["data"]["rows"].as_array().unwrap().len(), 3);
    assert_eq!(v["data"]["truncated"], true);
    assert_eq!(v["warnings"][0], "result truncated to the row limit of 3 rows");
}

#[tokio::test]
async fn http_errors_use_the_prometheus_envelope() {
    let (s, _, b) = post("SELECT * FROM nowhere", "text/plain", "text/csv").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
    assert_eq!(v["status"], "error");
    assert_eq!(v["errorType"], "bad_data");
    assert!(v["error"].as_str().unwrap().contains("nowhere"), "{v}");

    let (s, _, b) = post("DROP TABLE samples", "text/plain", "").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
    assert_eq!(v["errorType"], "bad_data");

    let (s, _, b) = get("/api/v1/sql").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(b.contains(r#"parameter \"query\": missing"#), "{b}");

    let (s, _, b) = get("/api/v1/sql?query=SELECT%201&format=xml").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(b.contains("format"), "{b}");

    let (s, _, b) =
        get("/api/v1/sql?timeout=50ms&query=SELECT%20sum(value)%20FROM%20generate_series(1,%20100000000000)")
            .await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    let v: serde_json::Value = serde_json::from_str(&b).unwrap();
    assert_eq!(v["errorType"], "timeout");
}
