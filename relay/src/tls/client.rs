//! Client half of relay mTLS: the rustls config and a tonic connector that dials TCP and
//! completes the handshake with whatever certificates are current at dial time.

use std::sync::Arc;

use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tonic::transport::Uri;

use super::files::{Material, TlsReloader};
use super::{TlsError, provider};

/// Builds the client config: trusts the CA bundle and presents the collector's certificate.
pub fn build_client_config(m: &Material) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_root_certificates(m.roots.clone())
        .with_client_auth_cert(m.chain.clone(), m.key.clone_key())
        .map_err(|e| TlsError::Config(e.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// A tower service usable with `Endpoint::connect_with_connector`: TCP, then TLS, checking the
/// server certificate against `server_name` (or the URI's host when `None`).
pub fn connector(
    tls: Arc<TlsReloader<rustls::ClientConfig>>,
    server_name: Option<String>,
) -> impl tower::Service<
    Uri,
    Response = TokioIo<tokio_rustls::client::TlsStream<TcpStream>>,
    Error = std::io::Error,
    Future = impl Send,
> + Clone
+ Send {
    tower::service_fn(move |uri: Uri| {
        let config = tls.current();
        let server_name = server_name.clone();
        async move {
            let invalid = |m: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, m);
            let host = uri
                .host()
                .ok_or_else(|| invalid(format!("no host in {uri}")))?
                .to_owned();
            let port = uri.port_u16().unwrap_or(443);
            let tcp = TcpStream::connect((host.trim_start_matches('[').trim_end_matches(']'), port)).await?;
            tcp.set_nodelay(true)?;
            let name =
                server_name.unwrap_or_else(|| host.trim_start_matches('[').trim_end_matches(']').to_owned());
            let name = ServerName::try_from(name).map_err(|e| invalid(e.to_string()))?;
            let stream = TlsConnector::from(config).connect(name, tcp).await?;
            Ok(TokioIo::new(stream))
        }
    })
}
