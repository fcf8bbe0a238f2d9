//! Certificates made for one test, with the project's own generator.

use std::path::{Path, PathBuf};

pub struct Certs {
    dir: tempfile::TempDir,
}

impl Certs {
    /// A CA, a server certificate for localhost and 127.0.0.1, and a
    /// client certificate.
    pub fn new() -> Certs {
        let dir = tempfile::tempdir().expect("temp dir");
        kvs_certs::write(dir.path(), &kvs_certs::Options::default())
            .expect("generating certificates");
        Certs { dir }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// txn-server's TLS flags.
    pub fn server_args(&self) -> Vec<String> {
        self.args(&[
            ("--tls-ca", "ca.crt"),
            ("--tls-cert", "server.crt"),
            ("--tls-key", "server.key"),
        ])
    }

    /// kvs-server's TLS flags for reaching txn-server.
    pub fn client_args(&self) -> Vec<String> {
        self.args(&[
            ("--tls-ca", "ca.crt"),
            ("--tls-cert", "client.crt"),
            ("--tls-key", "client.key"),
        ])
    }

    fn args(&self, pairs: &[(&str, &str)]) -> Vec<String> {
        pairs
            .iter()
            .flat_map(|(flag, file)| [flag.to_string(), self.path(file).display().to_string()])
            .collect()
    }
}

impl Default for Certs {
    fn default() -> Certs {
        Certs::new()
    }
}
