//! Mutual TLS for the relay.
//!
//! Operators supply a CA bundle, a certificate and a key as files (written by cert-manager, the
//! Vault agent, or `meshfed certs` for development). Both halves watch the files and pick up new
//! ones for new handshakes without a restart and without touching open streams.
//!
//! A collector's cluster identity comes only from its client certificate: the SPIFFE URI SAN
//! `spiffe://<trust-domain>/cluster/<name>`, or else the certificate's common name.

pub mod client;
pub mod devca;
pub mod files;
pub mod identity;
pub mod server;

pub use files::{TlsFiles, TlsReloader};
pub use identity::PeerIdentity;

/// Errors loading certificates or keys.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read or holds no usable PEM object.
    #[error("{path}: {reason}")]
    File {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// rustls refused the material (e.g. key does not match certificate).
    #[error("TLS configuration: {0}")]
    Config(String),
    /// A peer certificate carries no usable identity.
    #[error("certificate names no cluster: {0}")]
    NoIdentity(String),
}

/// The rustls crypto provider used throughout (the one reqwest already links).
pub(crate) fn provider() -> std::sync::Arc<rustls::crypto::CryptoProvider> {
    std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}
