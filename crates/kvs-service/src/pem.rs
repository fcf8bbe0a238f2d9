//! Certificates and keys from PEM files, with errors that name the file.

use std::path::{Path, PathBuf};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

#[derive(Debug, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct PemError {
    pub path: PathBuf,
    pub reason: String,
}

impl PemError {
    fn new(path: &Path, reason: impl ToString) -> PemError {
        PemError {
            path: path.to_owned(),
            reason: reason.to_string(),
        }
    }
}

/// Every certificate in the file, in order; a file without one is an error.
pub fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, PemError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| PemError::new(path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| PemError::new(path, e))?;
    if certs.is_empty() {
        return Err(PemError::new(path, "no PEM certificate in the file"));
    }
    Ok(certs)
}

/// The first private key in the file (PKCS#8, PKCS#1 or SEC1).
pub fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, PemError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| PemError::new(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_file_and_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let e = read_certs(&empty).unwrap_err();
        assert_eq!(e.path, empty);
        assert!(e.reason.contains("no PEM certificate"), "{e}");

        let missing = dir.path().join("missing.pem");
        let e = read_key(&missing).unwrap_err();
        assert!(
            e.to_string().starts_with(&missing.display().to_string()),
            "{e}"
        );
    }

    #[test]
    fn reads_what_kvs_certs_writes() {
        let dir = tempfile::tempdir().unwrap();
        kvs_certs::write(dir.path(), &kvs_certs::Options::default()).unwrap();
        assert_eq!(read_certs(&dir.path().join("ca.crt")).unwrap().len(), 1);
        read_key(&dir.path().join("server.key")).unwrap();
    }
}
