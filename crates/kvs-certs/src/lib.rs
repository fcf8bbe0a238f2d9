//! Certificates for the mutual-TLS link between kvs-server and txn-server:
//! a CA, a server certificate and a client certificate signed by it, written
//! under the file names the original service used.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use time::{Duration, OffsetDateTime};

/// The six files, in the order they are written.
pub const FILES: [&str; 6] = [
    "ca.crt",
    "ca.key",
    "server.crt",
    "server.key",
    "client.crt",
    "client.key",
];

#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("generating certificates: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0} already exists; pass --force to replace the certificates")]
    Exists(PathBuf),
}

/// What to put in the certificates.
#[derive(Debug, Clone)]
pub struct Options {
    /// Names and addresses the server certificate is valid for.
    pub server_names: Vec<String>,
    /// The client certificate's common name.
    pub client_name: String,
    /// Days the certificates are valid, from now.
    pub days: i64,
    /// Replace existing files.
    pub force: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            server_names: vec!["localhost".into(), "127.0.0.1".into(), "::1".into()],
            client_name: "kvs-server".into(),
            days: 365,
            force: false,
        }
    }
}

/// PEM text of one certificate and its private key.
pub struct Pair {
    pub cert: String,
    pub key: String,
}

/// A CA and the server and client certificates it signed.
pub struct Bundle {
    pub ca: Pair,
    pub server: Pair,
    pub client: Pair,
}

fn params(
    common_name: &str,
    sans: Vec<String>,
    days: i64,
) -> Result<CertificateParams, rcgen::Error> {
    let mut p = CertificateParams::new(sans)?;
    p.distinguished_name.push(DnType::CommonName, common_name);
    p.distinguished_name.push(DnType::OrganizationName, "KVS");
    let now = OffsetDateTime::now_utc();
    // A day of slack for clocks that run behind.
    p.not_before = now - Duration::days(1);
    p.not_after = now + Duration::days(days);
    Ok(p)
}

/// Generates a fresh bundle (ECDSA P-256 keys).
pub fn generate(opts: &Options) -> Result<Bundle, CertError> {
    let mut ca = params("KVS certificate authority", Vec::new(), opts.days)?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_key = KeyPair::generate()?;
    let ca_key_pem = ca_key.serialize_pem();
    let issuer = CertifiedIssuer::self_signed(ca, ca_key)?;

    let leaf = |name: &str,
                sans: Vec<String>,
                usage: ExtendedKeyUsagePurpose|
     -> Result<Pair, CertError> {
        let mut p = params(name, sans, opts.days)?;
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.extended_key_usages = vec![usage];
        p.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate()?;
        let cert = p.signed_by(&key, &issuer)?;
        Ok(Pair {
            cert: cert.pem(),
            key: key.serialize_pem(),
        })
    };
    let server_cn = opts
        .server_names
        .first()
        .map_or("localhost", String::as_str);
    let server = leaf(
        server_cn,
        opts.server_names.clone(),
        ExtendedKeyUsagePurpose::ServerAuth,
    )?;
    let client = leaf(
        &opts.client_name,
        Vec::new(),
        ExtendedKeyUsagePurpose::ClientAuth,
    )?;
    Ok(Bundle {
        ca: Pair {
            cert: issuer.pem(),
            key: ca_key_pem,
        },
        server,
        client,
    })
}

/// Generates a bundle and writes it into `dir` (created if missing);
/// private keys are readable by their owner only. Returns the paths written.
pub fn write(dir: &Path, opts: &Options) -> Result<Vec<PathBuf>, CertError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| CertError::Io { path, source }
    };
    fs::create_dir_all(dir).map_err(io(dir))?;
    if !opts.force
        && let Some(existing) = FILES.iter().map(|f| dir.join(f)).find(|p| p.exists())
    {
        return Err(CertError::Exists(existing));
    }
    let b = generate(opts)?;
    let contents = [
        &b.ca.cert,
        &b.ca.key,
        &b.server.cert,
        &b.server.key,
        &b.client.cert,
        &b.client.key,
    ];
    let mut written = Vec::new();
    for (name, text) in FILES.iter().zip(contents) {
        let path = dir.join(name);
        let mode = if name.ends_with(".key") { 0o600 } else { 0o644 };
        let _ = fs::remove_file(&path);
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&path)
            .map_err(io(&path))?;
        f.write_all(text.as_bytes()).map_err(io(&path))?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn writes_all_six_files_with_private_keys_closed_to_others() {
        let dir = std::env::temp_dir().join(format!("kvs-certs-test-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let written = write(&dir, &Options::default()).unwrap();
        assert_eq!(written.len(), 6);
        for path in &written {
            let text = fs::read_to_string(path).unwrap();
            let mode = fs::metadata(path).unwrap().permissions().mode() & 0o777;
            if path.extension().unwrap() == "key" {
                assert!(text.contains("PRIVATE KEY"), "{}", path.display());
                assert_eq!(mode, 0o600, "{}", path.display());
            } else {
                assert!(
                    text.starts_with("-----BEGIN CERTIFICATE-----"),
                    "{}",
                    path.display()
                );
            }
        }
        assert!(matches!(
            write(&dir, &Options::default()),
            Err(CertError::Exists(_))
        ));
        let forced = Options {
            force: true,
            ..Options::default()
        };
        assert_eq!(write(&dir, &forced).unwrap().len(), 6);
        fs::remove_dir_all(&dir).unwrap();
    }
}
