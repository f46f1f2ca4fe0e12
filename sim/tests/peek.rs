use std::sync::Arc;
use meshfed_sim::{ManualClock, Mesh, SimConfig};

#[test]
#[ignore]
fn peek() {
    let clock = Arc::new(ManualClock::new());
    let mesh = Mesh::new(&SimConfig::quiet(), clock.clone()).unwrap();
    clock.set_ms(100_000);
    let topo = mesh.topology();
    for name in ["productpage-v1", "web-api", "accounts-db", "istio-ingressgateway"] {
        let p = topo.pods.iter().find(|p| topo.workloads[p.workload].name == name).unwrap();
        println!("===== {} ({})", p.name, topo.clusters[p.cluster]);
        println!("{}", mesh.render_at(&p.name, 100_000).unwrap());
    }
    println!("{}", topo.pods.len());
}
