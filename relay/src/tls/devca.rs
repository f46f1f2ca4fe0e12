//! A development certificate authority: what `meshfed certs` writes for the demo and what tests
//! use to make good, expired and foreign certificates. Production deployments bring their own CA
//! (cert-manager, Vault); see the README's security section.

use std::path::Path;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
    KeyPair, KeyUsagePurpose, SanType,
};
use time::{Duration, OffsetDateTime};

use super::TlsError;

fn cfg_err(e: impl ToString) -> TlsError {
    TlsError::Config(e.to_string())
}

/// A PEM certificate and its PEM key.
#[derive(Clone, Debug)]
pub struct Issued {
    /// Certificate, PEM.
    pub cert_pem: String,
    /// Private key, PEM (PKCS#8).
    pub key_pem: String,
}

impl Issued {
    /// Writes `<name>.pem` and `<name>-key.pem` into `dir`.
    pub fn write(&self, dir: &Path, name: &str) -> Result<(), TlsError> {
        write_file(&dir.join(format!("{name}.pem")), &self.cert_pem)?;
        write_file(&dir.join(format!("{name}-key.pem")), &self.key_pem)
    }
}

fn write_file(path: &Path, body: &str) -> Result<(), TlsError> {
    // Write then rename, so a watcher never reads half a file.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, body)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| TlsError::File {
            path: path.display().to_string(),
            reason: e.to_string(),
        })
}

/// A self-signed CA that issues relay certificates.
pub struct DevCa {
    issuer: Issuer<'static, KeyPair>,
    /// The CA certificate, PEM.
    pub cert_pem: String,
    /// The CA key, PEM.
    pub key_pem: String,
}

/// Validity window of an issued certificate.
#[derive(Clone, Copy, Debug)]
pub struct Validity {
    /// Start.
    pub not_before: OffsetDateTime,
    /// End.
    pub not_after: OffsetDateTime,
}

impl Validity {
    /// From an hour ago for `days` days.
    pub fn days(days: i64) -> Self {
        let now = OffsetDateTime::now_utc();
        Self {
            not_before: now - Duration::hours(1),
            not_after: now + Duration::days(days),
        }
    }

    /// A window that ended a day ago.
    pub fn expired() -> Self {
        let now = OffsetDateTime::now_utc();
        Self {
            not_before: now - Duration::days(30),
            not_after: now - Duration::days(1),
        }
    }
}

impl DevCa {
    /// A new CA named `common_name`, valid ten years.
    pub fn new(common_name: &str) -> Result<Self, TlsError> {
        let mut params = CertificateParams::default();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name = name(common_name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let v = Validity::days(3650);
        params.not_before = v.not_before;
        params.not_after = v.not_after;
        let key = KeyPair::generate().map_err(cfg_err)?;
        let cert = params.self_signed(&key).map_err(cfg_err)?;
        let key_pem = key.serialize_pem();
        Ok(Self {
            issuer: Issuer::new(params, key),
            cert_pem: cert.pem(),
            key_pem,
        })
    }

    /// A client certificate for a collector of `cluster`: SPIFFE URI
    /// `spiffe://<trust_domain>/cluster/<cluster>` and CN `<cluster>`.
    pub fn issue_client(
        &self,
        trust_domain: &str,
        cluster: &str,
        validity: Validity,
    ) -> Result<Issued, TlsError> {
        let uri = format!("spiffe://{trust_domain}/cluster/{cluster}");
        let san = SanType::URI(uri.try_into().map_err(cfg_err)?);
        self.issue(cluster, vec![san], ExtendedKeyUsagePurpose::ClientAuth, validity)
    }

    /// A server certificate for the aggregator, valid for each DNS name or IP address given.
    pub fn issue_server(&self, names: &[String], validity: Validity) -> Result<Issued, TlsError> {
        let mut sans = Vec::new();
        for n in names {
            sans.push(match n.parse::<std::net::IpAddr>() {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) => SanType::DnsName(n.clone().try_into().map_err(cfg_err)?),
            });
        }
        self.issue(
            "meshfed-aggregator",
            sans,
            ExtendedKeyUsagePurpose::ServerAuth,
            validity,
        )
    }

    fn issue(
        &self,
        common_name: &str,
        sans: Vec<SanType>,
        usage: ExtendedKeyUsagePurpose,
        validity: Validity,
    ) -> Result<Issued, TlsError> {
        let mut params = CertificateParams::default();
        params.distinguished_name = name(common_name);
        params.subject_alt_names = sans;
        params.extended_key_usages = vec![usage];
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.not_before = validity.not_before;
        params.not_after = validity.not_after;
        let key = KeyPair::generate().map_err(cfg_err)?;
        let cert = params.signed_by(&key, &self.issuer).map_err(cfg_err)?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// Writes `ca.pem` (and `ca-key.pem` when `with_key`) into `dir`.
    pub fn write(&self, dir: &Path, with_key: bool) -> Result<(), TlsError> {
        write_file(&dir.join("ca.pem"), &self.cert_pem)?;
        if with_key {
            write_file(&dir.join("ca-key.pem"), &self.key_pem)?;
        }
        Ok(())
    }
}

fn name(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn.push(DnType::OrganizationName, "meshfed development CA");
    dn
}

/// Writes a complete development PKI into `dir`: `ca.pem`/`ca-key.pem`, `aggregator.pem`/`-key.pem`
/// for `server_names`, and `<cluster>.pem`/`-key.pem` per cluster, valid `days` days.
pub fn write_dev_pki(
    dir: &Path,
    trust_domain: &str,
    clusters: &[String],
    server_names: &[String],
    days: i64,
) -> Result<(), TlsError> {
    std::fs::create_dir_all(dir).map_err(|e| TlsError::File {
        path: dir.display().to_string(),
        reason: e.to_string(),
    })?;
    let ca = DevCa::new("meshfed development CA")?;
    ca.write(dir, true)?;
    ca.issue_server(server_names, Validity::days(days))?
        .write(dir, "aggregator")?;
    for c in clusters {
        if !super::identity::is_cluster_name(c) {
            return Err(TlsError::Config(format!(
                "{c:?} is not a valid cluster name (a DNS label)"
            )));
        }
        ca.issue_client(trust_domain, c, Validity::days(days))?
            .write(dir, c)?;
    }
    Ok(())
}
