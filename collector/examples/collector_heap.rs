//! Runs the collector from a config file for a fixed time under the system allocator, so heap
//! profilers that hook `malloc` (heaptrack) see every allocation:
//! `heaptrack target/release/examples/collector_heap collector.yml 60`.

use std::path::Path;
use std::time::Duration;

use meshfed_collector::CollectorConfig;
use tokio_util::sync::CancellationToken;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args.next().ok_or("usage: collector_heap CONFIG [SECONDS]")?;
    let secs: u64 = args.next().map_or(Ok(60), |s| s.parse())?;
    let config = CollectorConfig::from_file(Path::new(&path))?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(secs)).await;
            stop.cancel();
        });
        meshfed_collector::run(config, shutdown).await
    })?;
    Ok(())
}
