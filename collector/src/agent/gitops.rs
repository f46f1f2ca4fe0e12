//! GitOps sink: the snapshot as one canonical YAML file per object in a directory; stale files
//! are removed only when their manifest carries meshfed's managed-by label.

use std::path::PathBuf;

use futures::FutureExt;
use meshfed_controller::IstioObject;
use meshfed_relay::proto::ConfigError;

use super::Sink;

pub(super) struct GitOpsSink {
    dir: PathBuf,
}

impl GitOpsSink {
    pub(super) fn new(dir: PathBuf) -> Self {
        Self { dir }
    }
}

impl Sink for GitOpsSink {
    fn name(&self) -> &'static str {
        "gitops"
    }

    fn apply<'a>(&'a self, objects: &'a [IstioObject]) -> futures::future::BoxFuture<'a, Vec<ConfigError>> {
        let dir = self.dir.clone();
        let objects = objects.to_vec();
        async move {
            let result = tokio::task::spawn_blocking(move || {
                meshfed_controller::gitops::write_snapshot(&dir, &objects)
            })
            .await;
            match result {
                Ok(Ok(report)) => {
                    if !report.written.is_empty() || !report.removed.is_empty() {
                        tracing::info!(
                            written = report.written.len(),
                            removed = report.removed.len(),
                            "GitOps directory updated."
                        );
                    }
                    Vec::new()
                }
                Ok(Err(e)) => vec![ConfigError {
                    object: String::new(),
                    message: e.to_string(),
                }],
                Err(e) => vec![ConfigError {
                    object: String::new(),
                    message: format!("writer task failed: {e}"),
                }],
            }
        }
        .boxed()
    }
}
