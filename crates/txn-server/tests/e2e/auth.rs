//! The optional bearer token: with a public key configured, every call
//! needs an unexpired RS256 token signed by the matching private key.

use std::path::Path;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use kvs_proto::api::DurableSequenceRequest;
use kvs_testkit::stack::Stack;
use reqwest::StatusCode;

/// An RSA key pair made with openssl: (private PEM path, public PEM path).
pub fn rsa_pair(dir: &Path, name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let private = dir.join(format!("{name}.pem"));
    let public = dir.join(format!("{name}.pub.pem"));
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .output()
            .expect("the openssl command is needed to make the test's RSA keys");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&["genrsa", "-out", private.to_str().unwrap(), "2048"]);
    run(&[
        "rsa",
        "-in",
        private.to_str().unwrap(),
        "-pubout",
        "-out",
        public.to_str().unwrap(),
    ]);
    (private, public)
}

/// Seconds since the Unix epoch.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// An RS256 JWT with these claims, signed by the key at `private`.
pub fn sign(private: &Path, claims: serde_json::Value) -> String {
    let key = EncodingKey::from_rsa_pem(&std::fs::read(private).unwrap()).unwrap();
    jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, &key).unwrap()
}

pub fn token(private: &Path, expires_in: i64) -> String {
    sign(
        private,
        serde_json::json!({ "sub": "kvs-server", "exp": now() + expires_in }),
    )
}

async fn ask(stack: &Stack, bearer: Option<String>) -> Result<u64, tonic::Code> {
    call(stack, bearer).await.map_err(|s| s.code())
}

/// A `DurableSequence` call carrying `bearer`, as txn-server answers it.
pub async fn call(stack: &Stack, bearer: Option<String>) -> Result<u64, tonic::Status> {
    let mut request = tonic::Request::new(DurableSequenceRequest {
        writer_id: "probe".into(),
        fence: 0,
    });
    if let Some(b) = bearer {
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {b}").parse().unwrap());
    }
    stack
        .grpc_client()
        .await
        .durable_sequence(request)
        .await
        .map(|r| r.into_inner().durable_sequence)
}

#[tokio::test]
async fn with_a_public_key_only_valid_tokens_get_through() {
    let keys = tempfile::tempdir().unwrap();
    let (private, public) = rsa_pair(keys.path(), "issuer");
    let (other, _) = rsa_pair(keys.path(), "other");
    let token_file = keys.path().join("token");
    std::fs::write(&token_file, token(&private, 3600)).unwrap();
    let txn_args = ["--jwt-public-key".to_owned(), public.display().to_string()];
    let stack = Stack::file_with(
        &txn_args,
        &["--txn-token-file", token_file.to_str().unwrap()],
    )
    .await;

    assert_eq!(ask(&stack, Some(token(&private, 3600))).await, Ok(0));
    assert_eq!(ask(&stack, None).await, Err(tonic::Code::Unauthenticated));
    assert_eq!(
        ask(&stack, Some(token(&other, 3600))).await,
        Err(tonic::Code::Unauthenticated)
    );
    assert_eq!(
        ask(&stack, Some(token(&private, -3600))).await,
        Err(tonic::Code::Unauthenticated)
    );
    assert_eq!(
        ask(&stack, Some("not.a.token".into())).await,
        Err(tonic::Code::Unauthenticated)
    );

    // kvs-server, given a valid token, replays and writes as usual.
    let base = stack.api();
    assert_eq!(base.put("/str/k", "v").await, StatusCode::OK);
    assert_eq!(base.get("/str/k").await, (StatusCode::OK, "v".to_owned()));
}
