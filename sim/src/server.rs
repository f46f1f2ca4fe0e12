//! Pod endpoints: one listener per pod on its own ephemeral port serving `GET /stats/prometheus`.
//! A dark cluster's listeners reset (or hold) new connections, and kept-alive connections fail on
//! their next read, so a scraper sees the outage whether or not it reuses connections.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::faults::DarkMode;
use crate::mesh::Mesh;
use crate::topology::{ClusterId, PodId};
use crate::{Result, SimError};

/// Content type of Prometheus text format 0.0.4.
pub const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The longest a hung connection to a dark cluster is held.
const MAX_HANG: Duration = Duration::from_secs(600);

struct DarkAwareListener {
    inner: TcpListener,
    mesh: Arc<Mesh>,
    cluster: ClusterId,
    token: CancellationToken,
}

impl axum::serve::Listener for DarkAwareListener {
    type Io = DarkAwareStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let (stream, addr) = match self.inner.accept().await {
                Ok(x) => x,
                Err(e) => {
                    // Resource exhaustion and aborted handshakes are transient; back off briefly.
                    tracing::debug!(error = %e, "Accept failed.");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            };
            match self.mesh.dark_mode(self.cluster) {
                None => {
                    let io = DarkAwareStream {
                        inner: stream,
                        mesh: self.mesh.clone(),
                        cluster: self.cluster,
                    };
                    return (io, addr);
                }
                Some(DarkMode::Refuse) => {
                    // RST instead of FIN: the client sees "connection reset" at once.
                    let _ = stream.set_zero_linger();
                    drop(stream);
                }
                Some(DarkMode::Hang) => {
                    tokio::spawn(hold(stream, self.mesh.clone(), self.cluster, self.token.clone()));
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// Holds a connection without answering until the cluster is no longer dark.
async fn hold(stream: TcpStream, mesh: Arc<Mesh>, cluster: ClusterId, token: CancellationToken) {
    let deadline = tokio::time::Instant::now() + MAX_HANG;
    while mesh.dark_mode(cluster).is_some() && tokio::time::Instant::now() < deadline {
        tokio::select! {
            _ = token.cancelled() => break,
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    }
    drop(stream);
}

/// A connection that fails on read once its cluster goes dark.
struct DarkAwareStream {
    inner: TcpStream,
    mesh: Arc<Mesh>,
    cluster: ClusterId,
}

impl AsyncRead for DarkAwareStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.mesh.dark_mode(this.cluster).is_some() {
            let _ = this.inner.set_zero_linger();
            return Poll::Ready(Err(io::Error::from(io::ErrorKind::ConnectionReset)));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for DarkAwareStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

async fn stats(State((mesh, pod)): State<(Arc<Mesh>, PodId)>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, TEXT_CONTENT_TYPE)], mesh.serve(pod))
}

/// The router of one pod endpoint.
pub(crate) fn pod_router(mesh: Arc<Mesh>, pod: PodId, gzip: bool) -> Router {
    let router = Router::new()
        .route("/stats/prometheus", get(stats))
        .with_state((mesh, pod));
    if gzip {
        router.layer(tower_http::compression::CompressionLayer::new())
    } else {
        router
    }
}

/// Binds `host:0` for `pod` and serves it until `token` is cancelled.
pub(crate) async fn spawn_pod(
    mesh: Arc<Mesh>,
    pod: PodId,
    host: &str,
    gzip: bool,
    token: CancellationToken,
) -> Result<(SocketAddr, JoinHandle<()>)> {
    let inner = TcpListener::bind((host, 0))
        .await
        .map_err(|source| SimError::Io {
            context: format!("binding a pod listener on {host}"),
            source,
        })?;
    let addr = inner.local_addr().map_err(|source| SimError::Io {
        context: "reading a pod listener address".into(),
        source,
    })?;
    let cluster = mesh.topology().pods[pod].cluster;
    let router = pod_router(mesh.clone(), pod, gzip);
    let listener = DarkAwareListener {
        inner,
        mesh,
        cluster,
        token: token.clone(),
    };
    let task = tokio::spawn(async move {
        let serve = axum::serve(listener, router).with_graceful_shutdown(token.cancelled_owned());
        if let Err(e) = serve.await {
            tracing::warn!(error = %e, "Pod endpoint stopped.");
        }
    });
    Ok((addr, task))
}
