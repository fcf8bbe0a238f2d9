//! Bearer tokens over time: txn-server holds a token to its `nbf`, to the
//! leeway it is given and to a maximum lifetime.

use std::path::Path;

use reqwest::StatusCode;
use serde_json::json;

use crate::auth::{call, now, rsa_pair, sign, token};
use crate::stack::Stack;

/// txn-server's flags to check tokens against `public`, and more.
fn checking(public: &Path, more: &[&str]) -> Vec<String> {
    let mut args = vec!["--jwt-public-key".to_owned(), public.display().to_string()];
    args.extend(more.iter().map(|s| s.to_string()));
    args
}

#[tokio::test]
async fn a_token_not_valid_yet_is_refused() {
    let keys = tempfile::tempdir().unwrap();
    let (private, public) = rsa_pair(keys.path(), "issuer");
    let token_file = keys.path().join("token");
    std::fs::write(&token_file, token(&private, 3600)).unwrap();
    let stack = Stack::file_with(
        &checking(&public, &[]),
        &["--txn-token-file", token_file.to_str().unwrap()],
    )
    .await;

    let early = sign(
        &private,
        json!({ "nbf": now() + 3600, "exp": now() + 7200 }),
    );
    let refused = call(&stack, Some(early)).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);
    assert!(
        refused.message().contains("not valid yet (nbf"),
        "{}",
        refused.message()
    );
    let begun = sign(&private, json!({ "nbf": now() - 1, "exp": now() + 3600 }));
    assert_eq!(call(&stack, Some(begun)).await.map_err(|s| s.code()), Ok(0));
}

#[tokio::test]
async fn with_a_maximum_lifetime_a_token_needs_iat_and_a_short_life() {
    let keys = tempfile::tempdir().unwrap();
    let (private, public) = rsa_pair(keys.path(), "issuer");
    let token_file = keys.path().join("token");
    let good = |private: &Path| sign(private, json!({ "iat": now(), "exp": now() + 300 }));
    std::fs::write(&token_file, good(&private)).unwrap();
    let stack = Stack::file_with(
        &checking(&public, &["--jwt-max-lifetime-secs", "600"]),
        &["--txn-token-file", token_file.to_str().unwrap()],
    )
    .await;

    for (claims, says) in [
        (
            json!({ "iat": now(), "exp": now() + 3600 }),
            "lives 3600 s (exp - iat), longer than the 600 s allowed",
        ),
        (json!({ "exp": now() + 300 }), "no iat claim"),
        (
            json!({ "iat": now() + 3600, "exp": now() + 3900 }),
            "issued in the future",
        ),
    ] {
        let refused = call(&stack, Some(sign(&private, claims.clone())))
            .await
            .unwrap_err();
        assert_eq!(refused.code(), tonic::Code::Unauthenticated, "{claims}");
        assert!(
            refused.message().contains(says),
            "{claims}: {}",
            refused.message()
        );
    }
    assert_eq!(
        call(&stack, Some(good(&private)))
            .await
            .map_err(|s| s.code()),
        Ok(0)
    );
    // kvs-server, whose token is within the limit, writes as usual.
    assert_eq!(stack.api().put("/str/k", "v").await, StatusCode::OK);
}

#[tokio::test]
async fn an_expired_token_passes_within_the_leeway_only() {
    let keys = tempfile::tempdir().unwrap();
    let (private, public) = rsa_pair(keys.path(), "issuer");
    let token_file = keys.path().join("token");
    std::fs::write(&token_file, token(&private, 3600)).unwrap();
    let mut stack = Stack::file_with(
        &checking(&public, &["--jwt-leeway-secs", "10"]),
        &["--txn-token-file", token_file.to_str().unwrap()],
    )
    .await;

    let expired = token(&private, -2);
    assert_eq!(
        call(&stack, Some(expired.clone()))
            .await
            .map_err(|s| s.code()),
        Ok(0)
    );

    stack.txn.take().unwrap().kill();
    stack.txn_args = checking(&public, &["--jwt-leeway-secs", "0"]);
    stack.start_txn();
    let refused = call(&stack, Some(expired)).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);
    assert!(
        refused.message().contains("expired (exp, with 0 s leeway)"),
        "{}",
        refused.message()
    );
}
