//! A real Prometheus (2.42 from Debian, `PROMETHEUS_BIN`) as a test peer: started on a free
//! loopback port with a given configuration and flags in its own temporary directory, and killed
//! (and its directory removed) when dropped.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::peer_program;

/// A running Prometheus.
pub struct PrometheusPeer {
    child: Child,
    /// Its HTTP address.
    pub addr: SocketAddr,
    /// Its temporary directory (configuration, TSDB, `prometheus.log`).
    pub dir: PathBuf,
}

/// A port that was free a moment ago.
pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl PrometheusPeer {
    /// Starts Prometheus with `config_yaml` and `extra_flags`, and waits until `/-/ready` answers.
    ///
    /// # Panics
    /// When no Prometheus is installed (see [`peer_program`]).
    pub async fn start(name: &str, config_yaml: &str, extra_flags: &[&str]) -> anyhow::Result<Self> {
        let program = peer_program("PROMETHEUS_BIN", "prometheus");
        let dir = std::env::temp_dir().join(format!("meshfed-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        let config = dir.join("prometheus.yml");
        std::fs::write(&config, config_yaml)?;
        let port = free_port()?;
        let child = Command::new(program)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .args(extra_flags)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("prometheus.log"))?)
            .spawn()?;
        let peer = Self {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            dir,
        };
        let client = reqwest::Client::new();
        for _ in 0..200 {
            let ready = client.get(peer.url("/-/ready")).send().await;
            if ready.is_ok_and(|r| r.status().is_success()) {
                return Ok(peer);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let log = std::fs::read_to_string(peer.dir.join("prometheus.log")).unwrap_or_default();
        anyhow::bail!("Prometheus did not become ready in 20 s:\n{log}")
    }

    /// `http://addr{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for PrometheusPeer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
