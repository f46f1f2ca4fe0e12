//! Helpers shared by the simulator's integration tests: a tiny text-format line splitter (the
//! model crate's parser is not a dependency here) and a minimal HTTP/1.1 client.

#![allow(dead_code)]

use std::sync::Arc;

use meshfed_sim::{ManualClock, Mesh, SimConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One parsed sample line.
#[derive(Clone, Debug, PartialEq)]
pub struct Line {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

impl Line {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Splits Prometheus text lines (quoted values may hold `,`, `}` and escapes).
pub fn parse(text: &str) -> Vec<Line> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(parse_line)
        .collect()
}

fn parse_line(line: &str) -> Line {
    let brace = line.find('{').expect("labels");
    let name = line[..brace].to_string();
    let mut labels = Vec::new();
    let bytes: Vec<char> = line[brace + 1..].chars().collect();
    let mut i = 0;
    loop {
        if bytes[i] == '}' {
            i += 1;
            break;
        }
        if bytes[i] == ',' {
            i += 1;
        }
        let start = i;
        while bytes[i] != '=' {
            i += 1;
        }
        let lname: String = bytes[start..i].iter().collect();
        i += 2; // ="
        let mut v = String::new();
        while bytes[i] != '"' {
            if bytes[i] == '\\' {
                i += 1;
                v.push(match bytes[i] {
                    'n' => '\n',
                    c => c,
                });
            } else {
                v.push(bytes[i]);
            }
            i += 1;
        }
        i += 1;
        labels.push((lname, v));
    }
    let rest: String = bytes[i..].iter().collect();
    Line {
        name,
        labels,
        value: rest.trim().parse().expect("value"),
    }
}

/// A mesh on a manual clock.
pub fn mesh(cfg: SimConfig) -> (Mesh, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new());
    (Mesh::new(&cfg, clock.clone()).expect("mesh"), clock)
}

/// Pods of a workload in a cluster.
pub fn pods(mesh: &Mesh, cluster: &str, workload: &str) -> Vec<String> {
    let t = mesh.topology();
    t.pods
        .iter()
        .filter(|p| t.clusters[p.cluster] == cluster && t.workloads[p.workload].name == workload)
        .map(|p| p.name.clone())
        .collect()
}

/// Sum of `istio_requests_total` over pods matching a predicate on the line.
pub fn sum_requests(mesh: &Mesh, pods: &[String], at_ms: u64, f: impl Fn(&Line) -> bool) -> f64 {
    pods.iter()
        .flat_map(|p| parse(&mesh.render_at(p, at_ms).expect("render")))
        .filter(|l| l.name == "istio_requests_total" && f(l))
        .map(|l| l.value)
        .sum()
}

/// GET (or another method) over a fresh connection; returns (status, body).
pub async fn http(
    addr: &str,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(addr).await?;
    let body = body.unwrap_or("");
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await?;
    let text = String::from_utf8_lossy(&buf).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no status line in {text:?}")))?;
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((text.as_str(), ""));
    let chunked = head.to_ascii_lowercase().contains("transfer-encoding: chunked");
    Ok((status, if chunked { dechunk(body) } else { body.to_string() }))
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}
