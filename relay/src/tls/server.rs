//! Server half of relay mTLS: the rustls config and an accept loop that completes handshakes off
//! the gRPC server's path and tags each connection with its peer identity.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use rustls::server::WebPkiClientVerifier;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::transport::server::Connected;
use tracing::{debug, warn};

use super::files::{Material, TlsReloader};
use super::identity::{PeerIdentity, identity_from_der};
use super::{TlsError, provider};

/// Builds the server config: requires a client certificate chaining to the CA bundle.
pub fn build_server_config(m: &Material) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(m.roots.clone()), provider())
        .build()
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(m.chain.clone(), m.key.clone_key())
        .map_err(|e| TlsError::Config(e.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// The identity a connection was accepted with, available to gRPC handlers through the
/// request's extensions.
#[derive(Clone, Debug)]
pub struct PeerInfo {
    /// Who the client certificate says the peer is.
    pub identity: PeerIdentity,
    /// The peer's socket address.
    pub remote_addr: Option<std::net::SocketAddr>,
}

/// An accepted, authenticated TLS connection.
pub struct TlsConn {
    stream: TlsStream<TcpStream>,
    info: PeerInfo,
}

impl Connected for TlsConn {
    type ConnectInfo = PeerInfo;
    fn connect_info(&self) -> PeerInfo {
        self.info.clone()
    }
}

impl AsyncRead for TlsConn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsConn {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// A bounded reason a handshake failed, for `meshfed_relay_handshake_failures_total{reason}`.
pub fn handshake_failure_reason(e: &io::Error) -> &'static str {
    use rustls::{CertificateError, Error as E};
    match e.get_ref().and_then(|inner| inner.downcast_ref::<E>()) {
        Some(E::InvalidCertificate(CertificateError::Expired | CertificateError::ExpiredContext { .. })) => {
            "expired"
        }
        Some(E::InvalidCertificate(
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. },
        )) => "not_yet_valid",
        Some(E::InvalidCertificate(CertificateError::UnknownIssuer | CertificateError::BadSignature)) => {
            "unknown_ca"
        }
        Some(E::InvalidCertificate(CertificateError::Revoked)) => "revoked",
        Some(E::InvalidCertificate(_)) => "bad_certificate",
        Some(E::NoCertificatesPresented) => "no_certificate",
        Some(E::InvalidMessage(_)) => "not_tls",
        Some(E::PeerIncompatible(_)) => "incompatible",
        Some(_) => "tls",
        None if e.kind() == io::ErrorKind::InvalidData => "not_tls",
        None => "io",
    }
}

/// Accepts TCP connections, completes TLS handshakes (each with a timeout, in its own task so a
/// slow or hostile client cannot hold up others) and yields authenticated connections.
pub fn tls_incoming(
    listener: TcpListener,
    tls: Arc<TlsReloader<rustls::ServerConfig>>,
    failures: Family<Vec<(String, String)>, Counter>,
    handshake_timeout: Duration,
    shutdown: CancellationToken,
) -> ReceiverStream<Result<TlsConn, io::Error>> {
    let (tx, rx) = mpsc::channel(128);
    tokio::spawn(async move {
        loop {
            let (tcp, addr) = tokio::select! {
                _ = shutdown.cancelled() => return,
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        warn!(error = %e, "Relay accept failed.");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let _ = tcp.set_nodelay(true);
            let acceptor = TlsAcceptor::from(tls.current());
            let tx = tx.clone();
            let failures = failures.clone();
            tokio::spawn(async move {
                let fail = |reason: &'static str, detail: String| {
                    failures
                        .get_or_create(&vec![("reason".to_owned(), reason.to_owned())])
                        .inc();
                    warn!(peer = %addr, reason, error = %detail, "Relay TLS handshake refused.");
                };
                let stream = match tokio::time::timeout(handshake_timeout, acceptor.accept(tcp)).await {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => return fail(handshake_failure_reason(&e), e.to_string()),
                    Err(_) => return fail("timeout", format!("no handshake within {handshake_timeout:?}")),
                };
                let identity = stream
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|c| c.first())
                    .ok_or_else(|| "no client certificate".to_owned())
                    .and_then(|leaf| identity_from_der(leaf).map_err(|e| e.to_string()));
                match identity {
                    Ok(identity) => {
                        debug!(peer = %addr, cluster = %identity.cluster, "Relay TLS handshake done.");
                        let info = PeerInfo {
                            identity,
                            remote_addr: Some(addr),
                        };
                        let _ = tx.send(Ok(TlsConn { stream, info })).await;
                    }
                    Err(e) => fail("no_identity", e),
                }
            });
        }
    });
    ReceiverStream::new(rx)
}
