//! Certificate files: loading PEM material and rebuilding a TLS config when the files change.
//!
//! cert-manager and the Vault agent replace files (often by swapping a symlink), so the watcher
//! compares each file's modification time and length on an interval, rebuilds the config when
//! any changed, and keeps serving the old config if the new files do not load (for example
//! while they are half written).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use parking_lot::RwLock;
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::TlsError;
use super::identity::identity_from_der;

/// The three files that make up one side's TLS identity.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// PEM bundle of CA certificates that peers must chain to.
    pub ca_file: PathBuf,
    /// PEM certificate chain presented to peers, leaf first.
    pub cert_file: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
}

impl TlsFiles {
    /// The files `ca.pem`, `<name>.pem` and `<name>-key.pem` in `dir` (the `meshfed certs` layout).
    pub fn in_dir(dir: &Path, name: &str) -> Self {
        Self {
            ca_file: dir.join("ca.pem"),
            cert_file: dir.join(format!("{name}.pem")),
            key_file: dir.join(format!("{name}-key.pem")),
        }
    }
}

/// Loaded PEM material.
pub struct Material {
    /// Trusted CAs.
    pub roots: RootCertStore,
    /// Own chain, leaf first.
    pub chain: Vec<CertificateDer<'static>>,
    /// Own key.
    pub key: PrivateKeyDer<'static>,
    /// Expiry of the own leaf certificate (Unix seconds).
    pub not_after_unix: i64,
}

fn file_err(path: &Path, reason: impl ToString) -> TlsError {
    TlsError::File {
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
}

/// Reads and checks the three files.
pub fn load(files: &TlsFiles) -> Result<Material, TlsError> {
    let mut roots = RootCertStore::empty();
    let ca: Vec<_> = CertificateDer::pem_file_iter(&files.ca_file)
        .map_err(|e| file_err(&files.ca_file, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| file_err(&files.ca_file, e))?;
    if ca.is_empty() {
        return Err(file_err(&files.ca_file, "no CERTIFICATE blocks"));
    }
    for c in ca {
        roots.add(c).map_err(|e| file_err(&files.ca_file, e))?;
    }
    let chain: Vec<_> = CertificateDer::pem_file_iter(&files.cert_file)
        .map_err(|e| file_err(&files.cert_file, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| file_err(&files.cert_file, e))?;
    let leaf = chain
        .first()
        .ok_or_else(|| file_err(&files.cert_file, "no CERTIFICATE blocks"))?;
    let not_after_unix = match identity_from_der(leaf) {
        Ok(id) => id.not_after_unix,
        Err(_) => leaf_not_after(leaf).map_err(|e| file_err(&files.cert_file, e))?,
    };
    let key = PrivateKeyDer::from_pem_file(&files.key_file).map_err(|e| file_err(&files.key_file, e))?;
    Ok(Material {
        roots,
        chain,
        key,
        not_after_unix,
    })
}

fn leaf_not_after(der: &[u8]) -> Result<i64, String> {
    use x509_parser::prelude::{FromDer, X509Certificate};
    X509Certificate::from_der(der)
        .map(|(_, c)| c.validity().not_after.timestamp())
        .map_err(|e| e.to_string())
}

type Stamp = Vec<Option<(SystemTime, u64)>>;

fn stamp(files: &TlsFiles) -> Stamp {
    [&files.ca_file, &files.cert_file, &files.key_file]
        .iter()
        .map(|p| {
            std::fs::metadata(p)
                .ok()
                .and_then(|m| Some((m.modified().ok()?, m.len())))
        })
        .collect()
}

type Builder<C> = fn(&Material) -> Result<Arc<C>, TlsError>;

struct Loaded<C> {
    stamp: Stamp,
    config: Arc<C>,
    not_after_unix: i64,
}

/// A TLS config (`rustls::ServerConfig` or `ClientConfig`) kept in step with its files.
pub struct TlsReloader<C> {
    files: TlsFiles,
    build: Builder<C>,
    loaded: RwLock<Loaded<C>>,
}

impl<C> std::fmt::Debug for TlsReloader<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsReloader")
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

impl<C: Send + Sync + 'static> TlsReloader<C> {
    /// Loads the files once; fails if they are unusable now.
    pub fn new(files: TlsFiles, build: Builder<C>) -> Result<Self, TlsError> {
        let stamp = stamp(&files);
        let material = load(&files)?;
        let config = build(&material)?;
        let loaded = Loaded {
            stamp,
            config,
            not_after_unix: material.not_after_unix,
        };
        Ok(Self {
            files,
            build,
            loaded: RwLock::new(loaded),
        })
    }

    /// The config for the next handshake.
    pub fn current(&self) -> Arc<C> {
        Arc::clone(&self.loaded.read().config)
    }

    /// Expiry of the current own certificate (Unix seconds).
    pub fn not_after_unix(&self) -> i64 {
        self.loaded.read().not_after_unix
    }

    /// Rebuilds the config if any file changed. `Ok(true)` when it was replaced; on error the
    /// previous config stays in use.
    pub fn reload_if_changed(&self) -> Result<bool, TlsError> {
        let now = stamp(&self.files);
        if self.loaded.read().stamp == now {
            return Ok(false);
        }
        let material = load(&self.files)?;
        let config = (self.build)(&material)?;
        *self.loaded.write() = Loaded {
            stamp: now,
            config,
            not_after_unix: material.not_after_unix,
        };
        Ok(true)
    }

    /// Polls the files every `every` until `shutdown`.
    pub fn spawn_watch(self: &Arc<Self>, every: Duration, shutdown: CancellationToken) -> JoinHandle<()> {
        let me = Arc::clone(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tick.tick() => {}
                }
                match me.reload_if_changed() {
                    Ok(true) => info!(cert = %me.files.cert_file.display(), "Reloaded TLS certificates."),
                    Ok(false) => {}
                    Err(e) => warn!(error = %e, "New TLS files are unusable; keeping the previous ones."),
                }
            }
        })
    }
}
