//! Reading a peer's cluster identity and validity out of its certificate.

use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::TlsError;

/// Who the peer is, according to its certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerIdentity {
    /// The cluster name.
    pub cluster: String,
    /// The SPIFFE id, when the certificate has one.
    pub spiffe_id: Option<String>,
    /// Expiry, seconds since the Unix epoch.
    pub not_after_unix: i64,
}

/// Extracts the identity from a DER certificate: the first `spiffe://<td>/cluster/<name>` URI SAN,
/// else the subject common name.
pub fn identity_from_der(der: &[u8]) -> Result<PeerIdentity, TlsError> {
    let (_, cert) = X509Certificate::from_der(der)
        .map_err(|e| TlsError::NoIdentity(format!("unparsable certificate: {e}")))?;
    let not_after_unix = cert.validity().not_after.timestamp();
    let mut spiffe = None;
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            if let GeneralName::URI(uri) = name
                && let Some(cluster) = cluster_from_spiffe(uri)
            {
                spiffe = Some((uri.to_string(), cluster));
                break;
            }
        }
    }
    if let Some((id, cluster)) = spiffe {
        return Ok(PeerIdentity {
            cluster,
            spiffe_id: Some(id),
            not_after_unix,
        });
    }
    let cn = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .unwrap_or_default();
    if is_cluster_name(cn) {
        return Ok(PeerIdentity {
            cluster: cn.to_owned(),
            spiffe_id: None,
            not_after_unix,
        });
    }
    Err(TlsError::NoIdentity(format!(
        "no spiffe://<trust-domain>/cluster/<name> SAN and no usable CN ({cn:?})"
    )))
}

/// `spiffe://<trust-domain>/cluster/<name>` → `<name>`.
pub fn cluster_from_spiffe(uri: &str) -> Option<String> {
    let rest = uri.strip_prefix("spiffe://")?;
    let (trust_domain, path) = rest.split_once('/')?;
    let name = path.strip_prefix("cluster/")?;
    (!trust_domain.is_empty() && is_cluster_name(name)).then(|| name.to_owned())
}

/// A cluster name is a DNS label: lowercase letters, digits and `-`, 1–63 characters.
pub fn is_cluster_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spiffe_uris() {
        assert_eq!(
            cluster_from_spiffe("spiffe://mesh.example/cluster/east-1").as_deref(),
            Some("east-1")
        );
        assert_eq!(cluster_from_spiffe("spiffe://mesh.example/ns/default/sa/x"), None);
        assert_eq!(cluster_from_spiffe("spiffe:///cluster/a"), None);
        assert_eq!(cluster_from_spiffe("spiffe://td/cluster/A_B"), None);
        assert_eq!(cluster_from_spiffe("https://td/cluster/a"), None);
    }
}
