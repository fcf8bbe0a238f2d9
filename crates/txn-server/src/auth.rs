//! The original service's optional bearer token: an RS256 JWT in the
//! `authorization` metadata of every call, checked against a public key.
//! Mutual TLS already decides who may connect; the token is for operators
//! who also want a credential they can issue and expire per client.

use std::path::Path;
use std::sync::Arc;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use tonic::service::Interceptor;
use tonic::{Request, Status};

/// What a token must satisfy beyond its signature.
#[derive(Debug, Clone, Copy)]
pub struct TokenRules {
    /// Seconds of clock difference allowed around `exp`, `nbf` and `iat`.
    pub leeway_secs: u64,
    /// When set, a token must carry `iat` and may live (`exp - iat`) at
    /// most this many seconds.
    pub max_lifetime_secs: Option<u64>,
}

/// Checks every call's token when a key is configured; lets every call
/// through otherwise.
#[derive(Clone, Default)]
pub struct BearerCheck {
    check: Option<Arc<Check>>,
}

struct Check {
    key: DecodingKey,
    validation: Validation,
    rules: TokenRules,
}

#[derive(Debug, thiserror::Error)]
#[error("JWT public key {path}: {reason}")]
pub struct KeyError {
    path: String,
    reason: String,
}

/// The claims checked here; the signature, `exp` (required) and `nbf` (when
/// present) are checked by `jsonwebtoken`.
#[derive(serde::Deserialize)]
struct Claims {
    exp: u64,
    iat: Option<u64>,
}

impl BearerCheck {
    /// Reads an RSA public key in PEM form.
    pub fn from_pem_file(path: &Path, rules: TokenRules) -> Result<BearerCheck, KeyError> {
        let bad = |reason: String| KeyError {
            path: path.display().to_string(),
            reason,
        };
        let pem = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
        let key = DecodingKey::from_rsa_pem(&pem).map_err(|e| bad(e.to_string()))?;
        let mut validation = Validation::new(Algorithm::RS256);
        validation.validate_nbf = true;
        validation.leeway = rules.leeway_secs;
        Ok(BearerCheck {
            check: Some(Arc::new(Check {
                key,
                validation,
                rules,
            })),
        })
    }
}

impl Check {
    fn verify(&self, token: &str) -> Result<(), Status> {
        let claims = jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation)
            .map_err(|e| self.refusal(&e))?
            .claims;
        let Some(max) = self.rules.max_lifetime_secs else {
            return Ok(());
        };
        let iat = claims.iat.ok_or_else(|| {
            Status::unauthenticated(format!(
                "bearer token has no iat claim; one is required because tokens may live at most {max} s"
            ))
        })?;
        // An `iat` in the future would stretch the lifetime the limit bounds.
        let now = jsonwebtoken::get_current_timestamp();
        if iat > now + self.rules.leeway_secs {
            return Err(Status::unauthenticated(format!(
                "bearer token was issued in the future (iat {iat}, now {now})"
            )));
        }
        let lifetime = claims.exp.saturating_sub(iat);
        if lifetime > max {
            return Err(Status::unauthenticated(format!(
                "bearer token lives {lifetime} s (exp - iat), longer than the {max} s allowed"
            )));
        }
        Ok(())
    }

    /// Why `jsonwebtoken` refused a token, in words for the operator.
    fn refusal(&self, e: &jsonwebtoken::errors::Error) -> Status {
        let leeway = self.rules.leeway_secs;
        let why = match e.kind() {
            ErrorKind::ExpiredSignature => format!("it has expired (exp, with {leeway} s leeway)"),
            ErrorKind::ImmatureSignature => {
                format!("it is not valid yet (nbf, with {leeway} s leeway)")
            }
            _ => e.to_string(),
        };
        Status::unauthenticated(format!("invalid bearer token: {why}"))
    }
}

impl Interceptor for BearerCheck {
    fn call(&mut self, req: Request<()>) -> Result<Request<()>, Status> {
        let Some(check) = &self.check else {
            return Ok(req);
        };
        let header = req
            .metadata()
            .get("authorization")
            .ok_or_else(|| Status::unauthenticated("missing bearer token"))?
            .to_str()
            .map_err(|_| Status::unauthenticated("authorization is not text"))?;
        let token = header
            .strip_prefix("Bearer ")
            .ok_or_else(|| Status::unauthenticated("authorization must be 'Bearer <token>'"))?;
        check.verify(token)?;
        Ok(req)
    }
}
