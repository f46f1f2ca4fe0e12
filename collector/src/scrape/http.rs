//! The HTTP side of a scrape: one GET, the body streamed into a caller's buffer, size-limited and
//! gzip-decoded as it arrives.
//!
//! Plain-HTTP targets (every Istio sidecar's `:15020`) go through hyper-util's client directly,
//! because it lets us cap each connection's read buffer: reqwest grows a connection's buffer
//! towards the body size (~170 KB for a sidecar) and a pooled idle connection keeps it, which
//! made keep-alive cost ~27 MB across 160 targets. With a fixed 16 KiB read buffer an idle
//! connection costs 16 KiB, so connections are kept between scrapes (as Prometheus does) without
//! the memory. Other schemes (https) go through reqwest.

use std::io::Write;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use meshfed_model::exposition::Format;

use super::{ACCEPT_HEADER, ScrapeError};

/// Read buffer of a plain-HTTP connection: what an idle kept-alive connection holds.
const READ_BUF_BYTES: usize = 16 << 10;

const USER_AGENT: &str = concat!("meshfed-collector/", env!("CARGO_PKG_VERSION"));

/// The HTTP client scrapes share (cheap to clone: the connection pool is shared).
#[derive(Clone)]
pub struct ScrapeClient {
    /// For `http://` targets; `None` sends everything through `fallback`.
    plain: Option<Client<HttpConnector, Empty<Bytes>>>,
    fallback: reqwest::Client,
}

impl ScrapeClient {
    /// A client that keeps one idle connection per target when `keep_alive` is set, and otherwise
    /// opens a connection per scrape.
    pub fn new(keep_alive: bool) -> Self {
        let idle = usize::from(keep_alive);
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let plain = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(idle)
            .http1_read_buf_exact_size(READ_BUF_BYTES)
            .build(connector);
        let fallback = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .pool_max_idle_per_host(idle)
            .build()
            .unwrap_or_default();
        Self {
            plain: Some(plain),
            fallback,
        }
    }

    /// GETs `url` into `body` (appended), stopping as soon as the decoded body passes `limit`
    /// bytes; returns the format its Content-Type names.
    pub async fn fetch(
        &self,
        url: &str,
        timeout_ms: u64,
        limit: usize,
        body: &mut Vec<u8>,
    ) -> Result<Format, ScrapeError> {
        let timeout_header = format!("{}", timeout_ms as f64 / 1000.0);
        match &self.plain {
            Some(client) if url.starts_with("http://") => {
                fetch_plain(client, url, &timeout_header, limit, body).await
            }
            _ => fetch_reqwest(&self.fallback, url, &timeout_header, limit, body).await,
        }
    }
}

impl From<reqwest::Client> for ScrapeClient {
    /// Every scrape through `client` (its own pool and settings).
    fn from(client: reqwest::Client) -> Self {
        Self {
            plain: None,
            fallback: client,
        }
    }
}

async fn fetch_plain(
    client: &Client<HttpConnector, Empty<Bytes>>,
    url: &str,
    timeout_header: &str,
    limit: usize,
    body: &mut Vec<u8>,
) -> Result<Format, ScrapeError> {
    let request = http::Request::get(url)
        .header(http::header::ACCEPT, ACCEPT_HEADER)
        .header(http::header::ACCEPT_ENCODING, "gzip")
        .header(http::header::USER_AGENT, USER_AGENT)
        .header("X-Prometheus-Scrape-Timeout-Seconds", timeout_header)
        .body(Empty::new())
        .map_err(|e| ScrapeError::Http(e.to_string()))?;
    let resp = client
        .request(request)
        .await
        .map_err(|e| ScrapeError::Http(error_chain(&e)))?;
    if !resp.status().is_success() {
        return Err(ScrapeError::Status(resp.status().as_u16()));
    }
    let headers = resp.headers();
    let content_length = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let format = content_format(headers.get(http::header::CONTENT_TYPE));
    let gzip = match headers.get(http::header::CONTENT_ENCODING).map(|v| v.as_bytes()) {
        None => false,
        Some(e) if e.eq_ignore_ascii_case(b"gzip") || e.eq_ignore_ascii_case(b"x-gzip") => true,
        Some(e) if e.eq_ignore_ascii_case(b"identity") => false,
        Some(e) => {
            return Err(ScrapeError::Http(format!(
                "unsupported Content-Encoding {:?}",
                String::from_utf8_lossy(e)
            )));
        }
    };
    if !gzip {
        match content_length {
            Some(n) if n > limit as u64 => return Err(ScrapeError::BodyTooLarge(limit)),
            Some(n) => body.reserve(n as usize),
            None => {}
        }
    }
    let mut incoming = resp.into_body();
    let sink = LimitedSink { body, limit };
    let mut decoder = if gzip {
        Decoder::Gzip(Box::new(flate2::write::GzDecoder::new(sink)))
    } else {
        Decoder::Identity(sink)
    };
    // Dropping `incoming` before its end (limit, error) closes the connection: the rest is never
    // read and the connection is not reused.
    while let Some(frame) = incoming.frame().await {
        let frame = frame.map_err(|e| ScrapeError::Http(error_chain(&e)))?;
        if let Some(chunk) = frame.data_ref() {
            decoder.write_all(chunk).map_err(|e| write_error(e, limit))?;
        }
    }
    if let Decoder::Gzip(d) = decoder {
        d.finish().map_err(|e| write_error(e, limit))?;
    }
    Ok(format)
}

/// The reqwest path (https targets, or a client given by the caller): reqwest decodes gzip as it
/// reads, so a compressed bomb is cut off at `limit` too.
async fn fetch_reqwest(
    client: &reqwest::Client,
    url: &str,
    timeout_header: &str,
    limit: usize,
    body: &mut Vec<u8>,
) -> Result<Format, ScrapeError> {
    let mut resp = client
        .get(url)
        .header(reqwest::header::ACCEPT, ACCEPT_HEADER)
        .header("X-Prometheus-Scrape-Timeout-Seconds", timeout_header)
        .send()
        .await
        .map_err(|e| ScrapeError::Http(e.to_string()))?;
    if !resp.status().is_success() {
        return Err(ScrapeError::Status(resp.status().as_u16()));
    }
    match resp.content_length() {
        Some(n) if n > limit as u64 => return Err(ScrapeError::BodyTooLarge(limit)),
        Some(n) => body.reserve(n as usize),
        None => {}
    }
    let format = content_format(resp.headers().get(reqwest::header::CONTENT_TYPE));
    while let Some(chunk) = resp.chunk().await.map_err(|e| ScrapeError::Http(e.to_string()))? {
        if body.len() + chunk.len() > limit {
            // Dropping the response closes the connection: the rest is never read.
            return Err(ScrapeError::BodyTooLarge(limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(format)
}

fn content_format(content_type: Option<&http::HeaderValue>) -> Format {
    content_type
        .and_then(|v| v.to_str().ok())
        .map_or(Format::PrometheusText, Format::from_content_type)
}

/// The error and its sources on one line (hyper-util's errors say little at the top level).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// The gzip decoder's output: the body buffer, refusing to grow past the limit.
struct LimitedSink<'a> {
    body: &'a mut Vec<u8>,
    limit: usize,
}

/// The marker a [`LimitedSink`] fails with, told apart from corrupt gzip data.
#[derive(Debug)]
struct OverLimit;

impl std::fmt::Display for OverLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("body size limit")
    }
}

impl std::error::Error for OverLimit {}

impl Write for LimitedSink<'_> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if self.body.len() + data.len() > self.limit {
            return Err(std::io::Error::other(OverLimit));
        }
        self.body.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Where body bytes go: straight into the buffer, or through a gzip decoder into it.
enum Decoder<'a> {
    Identity(LimitedSink<'a>),
    Gzip(Box<flate2::write::GzDecoder<LimitedSink<'a>>>),
}

impl Write for Decoder<'_> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        match self {
            Decoder::Identity(s) => s.write(data),
            Decoder::Gzip(d) => d.write(data),
        }
    }

    fn write_all(&mut self, data: &[u8]) -> std::io::Result<()> {
        match self {
            Decoder::Identity(s) => s.write_all(data),
            Decoder::Gzip(d) => d.write_all(data),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Decoder::Identity(s) => s.flush(),
            Decoder::Gzip(d) => d.flush(),
        }
    }
}

fn write_error(e: std::io::Error, limit: usize) -> ScrapeError {
    if e.get_ref().is_some_and(|inner| inner.is::<OverLimit>()) {
        ScrapeError::BodyTooLarge(limit)
    } else {
        ScrapeError::Http(format!("gzip: {e}"))
    }
}
