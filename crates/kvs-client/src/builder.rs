//! [`ClientBuilder`]: where the server is and how to reach it.

use std::borrow::Cow;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use reqwest::Url;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use crate::session::Session;
use crate::{BASE_PATH, Client, Error, Result};

/// Where a KVS server listens by default: its root, without the base path.
pub const DEFAULT_BASE_URL: &str = "http://127.0.0.1:8080";
/// How long a whole request may take by default, from connecting to the
/// last byte of the answer.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long connecting may take by default.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Settings for a [`Client`]; start from [`Client::builder`].
///
/// ```
/// use std::time::Duration;
///
/// let client = kvs_client::Client::builder()
///     .base_url("http://127.0.0.1:8080")
///     .timeout(Duration::from_secs(2))
///     .pool_max_idle_per_host(8)
///     .build()?;
/// assert_eq!(client.base_url().as_str(), "http://127.0.0.1:8080/kvs/v1-0-0");
/// # Ok::<(), kvs_client::Error>(())
/// ```
///
/// A server that serves HTTPS with a certificate from its own CA (such as
/// one made by `kvs-certs`) and wants a bearer token:
///
/// ```no_run
/// let client = kvs_client::Client::builder()
///     .base_url("https://kvs.internal:8080")
///     .ca_file("certs/ca.crt")
///     .token(std::env::var("KVS_TOKEN").unwrap_or_default())
///     .build()?;
/// # Ok::<(), kvs_client::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    base_url: String,
    timeout: Option<Duration>,
    connect_timeout: Option<Duration>,
    pool_idle_timeout: Option<Option<Duration>>,
    pool_max_idle_per_host: Option<usize>,
    default_headers: HeaderMap,
    token: Option<Token>,
    ca: Option<Ca>,
    read_your_writes: bool,
}

/// A bearer token, which `Debug` does not show.
#[derive(Clone)]
struct Token(String);

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// The CA that https servers must have a certificate from.
#[derive(Debug, Clone)]
enum Ca {
    File(PathBuf),
    Pem(Vec<u8>),
}

impl Default for ClientBuilder {
    fn default() -> ClientBuilder {
        ClientBuilder {
            base_url: DEFAULT_BASE_URL.to_owned(),
            timeout: Some(DEFAULT_TIMEOUT),
            connect_timeout: Some(DEFAULT_CONNECT_TIMEOUT),
            pool_idle_timeout: None,
            pool_max_idle_per_host: None,
            default_headers: HeaderMap::new(),
            token: None,
            ca: None,
            read_your_writes: false,
        }
    }
}

impl ClientBuilder {
    /// The default settings (the same as [`Client::builder`]).
    pub fn new() -> ClientBuilder {
        ClientBuilder::default()
    }

    /// The server's root URL, such as `http://10.0.0.5:8080` or
    /// `http://gateway/prefix/` behind a proxy; the client appends
    /// `/kvs/v1-0-0` itself. Default: [`DEFAULT_BASE_URL`].
    pub fn base_url(mut self, url: impl Into<String>) -> ClientBuilder {
        self.base_url = url.into();
        self
    }

    /// The longest a whole request may take, connecting and reading the
    /// answer included; past it the call fails with a timeout
    /// ([`Error::is_timeout`]). Default: [`DEFAULT_TIMEOUT`].
    pub fn timeout(mut self, timeout: Duration) -> ClientBuilder {
        self.timeout = Some(timeout);
        self
    }

    /// Lets requests take as long as they take (no overall timeout).
    pub fn no_timeout(mut self) -> ClientBuilder {
        self.timeout = None;
        self
    }

    /// The longest connecting may take. Default: [`DEFAULT_CONNECT_TIMEOUT`].
    pub fn connect_timeout(mut self, timeout: Duration) -> ClientBuilder {
        self.connect_timeout = Some(timeout);
        self
    }

    /// How long an unused pooled connection is kept open; `None` keeps it
    /// until the server closes it. Default: reqwest's (90 seconds).
    pub fn pool_idle_timeout(mut self, timeout: Option<Duration>) -> ClientBuilder {
        self.pool_idle_timeout = Some(timeout);
        self
    }

    /// How many unused connections to the server are kept open at most.
    /// Default: reqwest's (no limit).
    pub fn pool_max_idle_per_host(mut self, max: usize) -> ClientBuilder {
        self.pool_max_idle_per_host = Some(max);
        self
    }

    /// Headers sent with every request (an authorization header for a
    /// gateway, say). They are added to, and may replace, the client's own
    /// `User-Agent: kvs-client/VERSION`. Calling it again adds more.
    pub fn default_headers(mut self, headers: HeaderMap) -> ClientBuilder {
        for (name, value) in &headers {
            self.default_headers.insert(name, value.clone());
        }
        self
    }

    /// A bearer token for a server started with `--auth-tokens` or
    /// `--auth-tokens-file`: every request carries
    /// `Authorization: Bearer TOKEN`, marked sensitive so that `Debug`
    /// output of the builder, the client and its requests does not show it.
    /// It replaces an `Authorization` header given to
    /// [`ClientBuilder::default_headers`].
    ///
    /// Without a token such a server answers 401
    /// ([`Error::is_unauthorized`]) to everything but `healthz`; with a
    /// read-only token it answers writes 403 ([`Error::is_forbidden`]).
    /// Use an `https` base URL to keep the token from being read on the way.
    ///
    /// The token also goes with a request that a server redirects with 307
    /// or 308, as a follower redirects a write to the primary, another host
    /// of the same service: the token goes to the base URL's server, and on
    /// from a server that had it to the one it redirects to, up to
    /// [`crate::MAX_REDIRECTS`] times, but never from `https` down to plain
    /// `http`, where anyone on the way could read it. A server that holds
    /// the token could use it anywhere itself; letting it name where the
    /// request goes next gives it nothing more. An `Authorization` header
    /// given to [`ClientBuilder::default_headers`] goes by the same rule.
    pub fn token(mut self, token: impl Into<String>) -> ClientBuilder {
        self.token = Some(Token(token.into()));
        self
    }

    /// Trusts only the CA certificates in the PEM file at `path` for
    /// `https` servers (the `ca.crt` that `kvs-certs` writes, for example),
    /// instead of the usual public CAs. The file is read when the client is
    /// built. Replaces an earlier [`ClientBuilder::ca_file`] or
    /// [`ClientBuilder::ca_pem`].
    ///
    /// A server whose certificate is not from that CA, or not for the base
    /// URL's host, fails every call with a TLS error ([`Error::is_tls`]).
    pub fn ca_file(mut self, path: impl Into<PathBuf>) -> ClientBuilder {
        self.ca = Some(Ca::File(path.into()));
        self
    }

    /// Like [`ClientBuilder::ca_file`], with the PEM text itself (one or more
    /// certificates), for a CA built into the program.
    pub fn ca_pem(mut self, pem: impl Into<Vec<u8>>) -> ClientBuilder {
        self.ca = Some(Ca::Pem(pem.into()));
        self
    }

    /// Read-your-writes, for a client that reads from a follower (a
    /// kvs-server started with `--role follower`, which serves what the
    /// primary has made durable, a moment behind it). The client keeps the
    /// highest `KVS-Revision` its own writes were answered with, shared by
    /// its clones, and sends it as `KVS-Min-Revision` on every read
    /// (values, listings, watches; not `healthz` or `readyz`). A follower
    /// that has not yet applied that revision waits for it briefly
    /// (`--min-revision-wait-ms`), then answers 503 with `Retry-After`,
    /// which is [`Error::is_unavailable`] with [`Error::retry_after`]. A
    /// primary or a single server has every revision it answered, and
    /// answers at once. Default: off (no header is sent).
    pub fn read_your_writes(mut self, on: bool) -> ClientBuilder {
        self.read_your_writes = on;
        self
    }

    /// Makes the client.
    ///
    /// Fails with [`Error::InvalidArgument`] when the base URL is not an
    /// absolute `http` or `https` URL without query or fragment, when the
    /// token is empty or holds anything but printable ASCII other than
    /// spaces, or when the CA file cannot be read or holds no valid PEM
    /// certificate; and with [`Error::Transport`] when reqwest cannot set up
    /// its client.
    pub fn build(self) -> Result<Client> {
        let base = base_url_of(&self.base_url)?;
        let mut headers = self.default_headers;
        // Kept apart from the default headers, which reqwest would send
        // wherever a request goes: see `redirect`.
        let given = headers.remove(AUTHORIZATION);
        let token = match &self.token {
            Some(token) => Some(token.header()?),
            None => given,
        };
        let mut http = reqwest::Client::builder()
            .user_agent(concat!("kvs-client/", env!("CARGO_PKG_VERSION")))
            .default_headers(headers)
            .redirect(reqwest::redirect::Policy::none())
            .tls_backend_preconfigured(tls_config(self.ca.as_ref())?);
        if let Some(t) = self.timeout {
            http = http.timeout(t);
        }
        if let Some(t) = self.connect_timeout {
            http = http.connect_timeout(t);
        }
        if let Some(t) = self.pool_idle_timeout {
            http = http.pool_idle_timeout(t);
        }
        if let Some(n) = self.pool_max_idle_per_host {
            http = http.pool_max_idle_per_host(n);
        }
        Ok(Client::from_parts(
            http.build()?,
            base,
            token,
            Session::new(self.read_your_writes),
        ))
    }
}

impl Token {
    /// `Bearer TOKEN`, marked sensitive. The token must be printable ASCII
    /// without spaces; the error does not quote it.
    fn header(&self) -> Result<HeaderValue> {
        if self.0.is_empty() || !self.0.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(Error::InvalidArgument(
                "the token must be non-empty printable ASCII without spaces".to_owned(),
            ));
        }
        let mut value = HeaderValue::try_from(format!("Bearer {}", self.0))
            .expect("printable ASCII is a valid header value");
        value.set_sensitive(true);
        Ok(value)
    }
}

impl Ca {
    /// The certificates, each a trust anchor.
    fn roots(&self) -> Result<RootCertStore> {
        let (pem, source) = match self {
            Ca::File(path) => {
                let source = format!("CA file {path:?}");
                let pem = std::fs::read(path)
                    .map_err(|e| Error::InvalidArgument(format!("{source} cannot be read: {e}")))?;
                (Cow::Owned(pem), source)
            }
            Ca::Pem(pem) => (Cow::Borrowed(pem), "CA PEM".to_owned()),
        };
        let bad = |why: String| Error::InvalidArgument(format!("{source} {why}"));
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(&pem) {
            let cert = cert.map_err(|e| bad(format!("is not valid PEM: {e}")))?;
            roots
                .add(cert)
                .map_err(|e| bad(format!("holds a certificate that cannot be a CA: {e}")))?;
        }
        if roots.is_empty() {
            return Err(bad("holds no PEM certificate".to_owned()));
        }
        Ok(roots)
    }
}

/// rustls with the ring provider, trusting `ca` or else the public CAs
/// that Mozilla includes.
fn tls_config(ca: Option<&Ca>) -> Result<rustls::ClientConfig> {
    let roots = match ca {
        Some(ca) => ca.roots()?,
        None => webpki_roots::TLS_SERVER_ROOTS.iter().cloned().collect(),
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// The server's root URL with the API's base path appended.
fn base_url_of(root: &str) -> Result<Url> {
    let bad = |why: String| Error::InvalidArgument(format!("base URL {root:?} {why}"));
    let mut url = Url::parse(root).map_err(|e| bad(format!("does not parse: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("must start with http:// or https://".to_owned()));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("must have no query or fragment".to_owned()));
    }
    url.path_segments_mut()
        .map_err(|()| bad("cannot be a base".to_owned()))?
        .pop_if_empty()
        .extend(BASE_PATH.split('/').filter(|s| !s.is_empty()));
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_base_path_is_appended_to_the_root_with_or_without_a_trailing_slash() {
        for (root, want) in [
            ("http://h:1", "http://h:1/kvs/v1-0-0"),
            ("http://h:1/", "http://h:1/kvs/v1-0-0"),
            ("http://h:1/gw", "http://h:1/gw/kvs/v1-0-0"),
            ("https://h/gw/", "https://h/gw/kvs/v1-0-0"),
        ] {
            assert_eq!(base_url_of(root).unwrap().as_str(), want, "{root}");
        }
    }

    #[test]
    fn a_base_url_that_is_not_plain_http_is_refused() {
        for root in [
            "",
            "127.0.0.1:8080",
            "ftp://h/",
            "mailto:a@b",
            "http://h/?q=1",
            "http://h/#f",
        ] {
            assert!(
                matches!(base_url_of(root), Err(Error::InvalidArgument(_))),
                "{root}"
            );
        }
    }
}
