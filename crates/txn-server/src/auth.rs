//! The original service's optional bearer token: an RS256 JWT in the
//! `authorization` metadata of every call, checked against a public key.
//! Mutual TLS already decides who may connect; the token is for operators
//! who also want a credential they can issue and expire per client.

use std::path::Path;
use std::sync::Arc;

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use tonic::service::Interceptor;
use tonic::{Request, Status};

/// Checks every call's token when a key is configured; lets every call
/// through otherwise.
#[derive(Clone, Default)]
pub struct BearerCheck {
    key: Option<Arc<(DecodingKey, Validation)>>,
}

#[derive(Debug, thiserror::Error)]
#[error("JWT public key {path}: {reason}")]
pub struct KeyError {
    path: String,
    reason: String,
}

/// Claims are not used beyond what validation checks (the signature and
/// `exp`, which is required).
#[derive(serde::Deserialize)]
struct Claims {}

impl BearerCheck {
    /// Reads an RSA public key in PEM form.
    pub fn from_pem_file(path: &Path) -> Result<BearerCheck, KeyError> {
        let bad = |reason: String| KeyError {
            path: path.display().to_string(),
            reason,
        };
        let pem = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
        let key = DecodingKey::from_rsa_pem(&pem).map_err(|e| bad(e.to_string()))?;
        Ok(BearerCheck {
            key: Some(Arc::new((key, Validation::new(Algorithm::RS256)))),
        })
    }
}

impl Interceptor for BearerCheck {
    fn call(&mut self, req: Request<()>) -> Result<Request<()>, Status> {
        let Some(check) = &self.key else {
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
        let (key, validation) = &**check;
        jsonwebtoken::decode::<Claims>(token, key, validation)
            .map_err(|e| Status::unauthenticated(format!("invalid bearer token: {e}")))?;
        Ok(req)
    }
}
