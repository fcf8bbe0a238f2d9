//! Bearer tokens over time: kvs-server takes a token written to its token
//! file without a restart, and txn-server holds a token to its `nbf`, to
//! the leeway it is given and to a maximum lifetime.

use std::path::Path;
use std::time::Duration;

use kvs_testkit::http::Api;
use kvs_testkit::stack::Stack;
use kvs_testkit::wait_until;
use reqwest::StatusCode;
use serde_json::json;
use tokio::runtime::Handle;

use crate::auth::{call, now, rsa_pair, sign, token};

const LIMIT: Duration = Duration::from_secs(60);

/// Writes `contents` to `path` in one step, as an operator replacing a
/// token should (a reader never sees half a token).
fn replace(path: &Path, contents: &str) {
    let next = path.with_extension("next");
    std::fs::write(&next, contents).unwrap();
    std::fs::rename(&next, path).unwrap();
}

/// The status of a write made now, for the conditions of `wait_until`,
/// which are not async.
fn write_now(api: &Api) -> StatusCode {
    tokio::task::block_in_place(|| Handle::current().block_on(api.put("/str/probe", "x")))
}

/// txn-server's flags to check tokens against `public`, and more.
fn checking(public: &Path, more: &[&str]) -> Vec<String> {
    let mut args = vec!["--jwt-public-key".to_owned(), public.display().to_string()];
    args.extend(more.iter().map(|s| s.to_string()));
    args
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kvs_server_takes_a_new_token_from_its_file_without_a_restart() {
    let keys = tempfile::tempdir().unwrap();
    let (private, public) = rsa_pair(keys.path(), "issuer");
    let token_file = keys.path().join("token");
    std::fs::write(&token_file, token(&private, 3600)).unwrap();
    let stack = Stack::file_with(
        &checking(&public, &["--jwt-leeway-secs", "0"]),
        &["--txn-token-file", token_file.to_str().unwrap()],
    )
    .await;
    let api = stack.api();
    let kvs = stack.kvs.as_ref().unwrap();

    // A file that holds no token is reported, and the token held stays in use.
    replace(&token_file, "garbage");
    wait_until("the unusable token file reported", LIMIT, || {
        kvs.output()
            .contains("has no new token; keeping the one held")
    })
    .await;
    assert_eq!(write_now(&api), StatusCode::OK);

    // A token that expires two seconds from now is taken; once it has
    // expired, txn-server refuses it and writes are answered 503.
    let short = token(&private, 2);
    replace(&token_file, &short);
    wait_until("writes refused once the token expired", LIMIT, || {
        write_now(&api) == StatusCode::SERVICE_UNAVAILABLE
    })
    .await;

    // A fresh token in the file, and writes are taken again.
    let fresh = token(&private, 3600);
    replace(&token_file, &fresh);
    wait_until("a write taken with the fresh token", LIMIT, || {
        write_now(&api) == StatusCode::OK
    })
    .await;
    assert_eq!(
        api.get("/str/probe").await,
        (StatusCode::OK, "x".to_owned())
    );

    let output = kvs.output();
    assert!(
        output.matches("took the txn-server token").count() >= 3,
        "{output}"
    );
    assert!(
        !output.contains(&short) && !output.contains(&fresh),
        "a token was logged:\n{output}"
    );
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
