//! A coarse performance guard: a dashboard-sized range query over many series must stay fast.
//! Ignored by default (timing-sensitive); run with `--ignored --nocapture`.

use std::sync::Arc;
use std::time::Instant;

use meshfed_model::Labels;
use meshfed_query::{Engine, EngineOptions};
use meshfed_store::{Store, StoreOptions};

#[test]
#[ignore]
fn dashboard_range_query() {
    let store = Arc::new(Store::new(StoreOptions::default()));
    // 2,000 counters x 1 hour at 15s = 480k samples.
    let mut batch = Vec::new();
    for i in 0..2000 {
        let labels = Labels::from_pairs([
            ("__name__", "istio_requests_total".to_string()),
            ("destination_service", format!("svc-{}", i % 50)),
            (
                "response_code",
                if i % 7 == 0 { "500".into() } else { "200".into() },
            ),
            ("pod", format!("pod-{i}")),
        ]);
        let r = store.get_or_create(&labels);
        for k in 0..240 {
            batch.push((r, k * 15_000, (k * (i % 13 + 1)) as f64));
        }
    }
    store.append_batch(&batch);
    let engine = Engine::new(store, EngineOptions::default());
    for q in [
        "sum by (destination_service) (rate(istio_requests_total[5m]))",
        "sum by (destination_service) (rate(istio_requests_total{response_code=~\"5..\"}[5m])) / sum by (destination_service) (rate(istio_requests_total[5m]))",
    ] {
        let t = Instant::now();
        let v = engine.query_range(q, 600_000, 3_600_000, 15_000).expect("query");
        println!("{:?} for {q} ({})", t.elapsed(), v.type_name());
    }
}
