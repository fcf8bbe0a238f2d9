//! The bearer token sent to txn-server, from the file `--txn-token-file`
//! names. Tokens expire, so the file is read again while the server runs:
//! every second in the background, which takes a token written there long
//! before the one held runs out, and at once after txn-server refuses a call
//! as unauthenticated. A call only clones the token held; it never touches
//! the file.
//!
//! kvs-server cannot check a token's signature (only txn-server holds the
//! key); it reads the claims to refuse what is no JWT and to say when the
//! token expires.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use kvs_service::throttle::Throttle;
use parking_lot::{RwLock, RwLockReadGuard};
use tonic::metadata::{Ascii, MetadataValue};

/// How often the file is read again.
const POLL: Duration = Duration::from_secs(1);

/// At most one warning this often about a file that cannot be used or a
/// token that has expired; the file is read every second.
const WARN_EVERY: Duration = Duration::from_secs(30);

/// A token as the file held it.
struct Token {
    /// The file's text, trimmed, to see when it changes.
    text: String,
    /// `Bearer <token>`, ready for the `authorization` metadata.
    header: MetadataValue<Ascii>,
    /// Its `exp`, in seconds since the Unix epoch.
    expires: u64,
}

#[derive(serde::Deserialize)]
struct Claims {
    exp: u64,
}

impl Token {
    fn parse(text: &str) -> Result<Token, String> {
        let text = text.trim();
        if text.is_empty() {
            return Err("it is empty".into());
        }
        let claims = jsonwebtoken::dangerous::insecure_decode::<Claims>(text)
            .map_err(|e| format!("it holds no JWT with an exp claim ({e})"))?
            .claims;
        // Metadata would take other bytes too, but no JWT holds them.
        let header = (text.bytes().all(|b| b.is_ascii_graphic()))
            .then(|| format!("Bearer {text}").parse().ok())
            .flatten()
            .ok_or_else(|| "the token is not printable ASCII".to_owned())?;
        Ok(Token {
            text: text.to_owned(),
            header,
            expires: claims.exp,
        })
    }

    /// Seconds until it expires; negative once it has.
    fn expires_in(&self) -> i64 {
        let now = jsonwebtoken::get_current_timestamp() as i64;
        i64::try_from(self.expires).unwrap_or(i64::MAX) - now
    }
}

/// The token file and the last good token read from it.
pub(crate) struct TokenFile {
    path: PathBuf,
    held: RwLock<Token>,
    warnings: Throttle,
}

impl fmt::Debug for TokenFile {
    /// The path only: the token is a secret.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenFile")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl TokenFile {
    /// Reads the token; a file that cannot be read or holds no token is an
    /// error, an expired token only a warning (the file may be replaced
    /// while the server waits for txn-server).
    pub(crate) fn open(path: &Path) -> Result<TokenFile, String> {
        let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
        let token = Token::parse(&text)?;
        let file = TokenFile {
            path: path.to_owned(),
            held: RwLock::new(token),
            warnings: Throttle::new(WARN_EVERY),
        };
        file.took(&file.held());
        Ok(file)
    }

    /// `Bearer <token>` of the token held.
    pub(crate) fn header(&self) -> MetadataValue<Ascii> {
        self.held().header.clone()
    }

    fn held(&self) -> RwLockReadGuard<'_, Token> {
        self.held.read()
    }

    /// Reads the file again from a thread of its own, every [`POLL`], for as
    /// long as anyone holds `file`.
    pub(crate) fn watch(file: &Arc<TokenFile>) {
        let weak = Arc::downgrade(file);
        let spawned = std::thread::Builder::new()
            .name("txn-token-file".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(POLL);
                    match weak.upgrade() {
                        Some(file) => file.reread(),
                        None => return,
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, path = %file.path.display(),
                "cannot watch the txn-server token file; it is read again only after a refusal");
        }
    }

    /// Takes the file's token if it changed and is a token; keeps the one
    /// held, with a warning, if the file cannot be read or holds none.
    pub(crate) fn reread(&self) {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(e) => return self.warn(&format!("cannot be read ({e})")),
        };
        if text.trim() == self.held().text {
            let left = self.held().expires_in();
            if left < 0 {
                self.warn(&format!(
                    "still holds the token that expired {} s ago",
                    -left
                ));
            }
            return;
        }
        match Token::parse(&text) {
            Ok(token) => {
                self.took(&token);
                *self.held.write() = token;
            }
            Err(why) => self.warn(&why),
        }
    }

    fn took(&self, token: &Token) {
        let left = token.expires_in();
        if left < 0 {
            tracing::warn!(path = %self.path.display(), expired_s_ago = -left,
                "took the txn-server token from its file, but it has expired already");
        } else {
            tracing::info!(path = %self.path.display(), expires_in_s = left,
                "took the txn-server token from its file");
        }
    }

    fn warn(&self, problem: &str) {
        if let Some(held_back) = self.warnings.admit() {
            let left = self.held().expires_in();
            tracing::warn!(path = %self.path.display(), problem, held_token_expires_in_s = left,
                held_back, "the txn-server token file has no new token; keeping the one held");
        }
    }
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::{EncodingKey, Header};

    use super::*;

    /// A JWT expiring `expires_in` seconds from now; kvs-server does not
    /// check signatures, so any key does.
    fn jwt(expires_in: i64) -> String {
        let exp = jsonwebtoken::get_current_timestamp() as i64 + expires_in;
        let claims = serde_json::json!({ "sub": "kvs-server", "exp": exp });
        jsonwebtoken::encode(&Header::default(), &claims, &EncodingKey::from_secret(b"k")).unwrap()
    }

    fn held(file: &TokenFile) -> String {
        file.header().to_str().unwrap().to_owned()
    }

    #[test]
    fn what_is_no_jwt_with_an_exp_is_refused() {
        let no_exp = jsonwebtoken::encode(
            &Header::default(),
            &serde_json::json!({ "sub": "kvs-server" }),
            &EncodingKey::from_secret(b"k"),
        )
        .unwrap();
        let not_ascii = format!("{}\u{e9}", jwt(3600));
        for (text, why) in [
            ("", "empty"),
            (" \n", "empty"),
            ("not.a.token", "no JWT"),
            (no_exp.as_str(), "no JWT with an exp claim"),
            (not_ascii.as_str(), "not printable ASCII"),
        ] {
            match Token::parse(text) {
                Err(e) => assert!(e.contains(why), "{text:?}: {e}"),
                Ok(_) => panic!("{text:?} was taken"),
            }
        }
    }

    #[test]
    fn a_new_token_is_taken_and_a_bad_file_keeps_the_one_held() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        let first = jwt(3600);
        std::fs::write(&path, format!("{first}\n")).unwrap();
        let file = TokenFile::open(&path).unwrap();
        assert_eq!(held(&file), format!("Bearer {first}"));

        for garbage in ["", "garbage"] {
            std::fs::write(&path, garbage).unwrap();
            file.reread();
            assert_eq!(held(&file), format!("Bearer {first}"), "{garbage:?}");
        }
        std::fs::remove_file(&path).unwrap();
        file.reread();
        assert_eq!(held(&file), format!("Bearer {first}"));

        let second = jwt(7200);
        std::fs::write(&path, &second).unwrap();
        file.reread();
        assert_eq!(held(&file), format!("Bearer {second}"));
    }

    #[test]
    fn an_unusable_file_at_start_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        assert!(TokenFile::open(&path).is_err());
        std::fs::write(&path, "garbage").unwrap();
        assert!(TokenFile::open(&path).unwrap_err().contains("no JWT"));
    }
}
