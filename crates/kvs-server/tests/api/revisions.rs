//! Revisions over HTTP: ETags, the store's revision, compare-and-set,
//! create-only, 304, and listings that page.

use reqwest::{Response, StatusCode};

use crate::helpers::{TestApp, assert_problem, deleted};

/// The number in a response's `ETag`.
fn etag(resp: &Response) -> u64 {
    let tag = resp.headers()["etag"].to_str().unwrap();
    tag.trim_matches('"')
        .parse()
        .unwrap_or_else(|_| panic!("ETag {tag}"))
}

/// The store's revision an answer reflects.
fn revision(resp: &Response) -> u64 {
    resp.headers()["kvs-revision"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

impl TestApp {
    /// A PUT with one header; answers the response.
    async fn put_if(&self, path: &str, header: &str, tag: &str, body: &str) -> Response {
        self.client
            .put(self.url(path))
            .header(header, tag)
            .body(body.to_owned())
            .send()
            .await
            .unwrap()
    }
}

#[tokio::test]
async fn every_change_gets_the_next_revision_and_a_value_its_etag() {
    let app = TestApp::spawn(&[]).await;
    let first = app.put("/int/a", "1").await;
    assert_eq!(first.status(), StatusCode::OK);
    let (r1, t1) = (revision(&first), etag(&first));
    assert_eq!(r1, t1, "a put's ETag is its revision");
    let second = app.put("/str/b", "x").await;
    assert!(revision(&second) > r1);
    let got = app.get("/int/a").await;
    assert_eq!(etag(&got), t1, "unchanged by another key's write");
    assert!(revision(&got) >= revision(&second), "the store's revision");
    // A member change moves the set's ETag; the original's routes carry it too.
    let added = app.put("/set/s/m", "").await;
    let set_tag = etag(&added);
    assert!(set_tag > revision(&second));
    assert_eq!(etag(&app.get("/set/s").await), set_tag);
    assert_eq!(etag(&app.get("/set-get/s").await), set_tag);
    assert_eq!(etag(&app.get("/set/s/m").await), set_tag);
    // Adding a member already there changes nothing, its ETag neither.
    assert_eq!(etag(&app.put("/set/s/m", "").await), set_tag);
    let gone = app.delete("/int/a").await;
    assert!(deleted(&gone) && revision(&gone) > set_tag);
    assert!(app.get("/int/a").await.headers().get("etag").is_none());
}

/// The revision `path`'s value was created at, as GET answers it.
async fn created(app: &TestApp, path: &str) -> u64 {
    let resp = app.get(path).await;
    let v = &resp.headers()["kvs-create-revision"];
    v.to_str().unwrap().parse().unwrap()
}

#[tokio::test]
async fn a_value_remembers_its_creation_until_it_is_deleted() {
    let app = TestApp::spawn(&[]).await;
    let made = revision(&app.put("/int/c", "1").await);
    app.put_ok("/int/c", "2").await;
    assert_eq!(app.post("/int/c/incr", "").await.status(), StatusCode::OK);
    let resp = app.get("/int/c").await;
    assert!(etag(&resp) > made);
    assert_eq!(created(&app, "/int/c").await, made, "kept by puts");
    // A set made by its first member, then changed member by member.
    let first = revision(&app.put("/set/s/a", "").await);
    app.put_ok("/set/s/b", "").await;
    app.delete("/set/s/a").await;
    assert_eq!(created(&app, "/set/s").await, first);
    // Made again after a delete: a new creation.
    assert!(deleted(&app.delete("/int/c").await));
    let again = revision(&app.put("/int/c", "3").await);
    assert!(again > made);
    assert_eq!(created(&app, "/int/c").await, again);
    // A transaction's put of a new key creates it at the transaction's revision.
    let txn = r#"{"success":[{"op":"put","type":"str","key":"t","value":"v"}]}"#;
    let resp = app.post("/txn", txn).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let at = revision(&resp);
    assert_eq!(created(&app, "/str/t").await, at);
}

#[tokio::test]
async fn if_match_is_compare_and_set_and_a_stale_tag_changes_nothing() {
    let app = TestApp::spawn(&[]).await;
    let tag = etag(&app.put("/int/c", "1").await);
    let moved = app
        .put_if("/int/c", "if-match", &format!("\"{tag}\""), "2")
        .await;
    assert_eq!(moved.status(), StatusCode::OK);
    let now = etag(&moved);
    assert!(now > tag);

    let stale = app
        .put_if("/int/c", "if-match", &format!("\"{tag}\""), "3")
        .await;
    assert_eq!(stale.status(), StatusCode::PRECONDITION_FAILED);
    let problem: serde_json::Value = stale.json().await.unwrap();
    assert_eq!(problem["revision"], now, "{problem}");
    assert_eq!(app.get_ok("/int/c").await, "2");

    // The same on DELETE and on field and member routes.
    let refused = app
        .client
        .delete(app.url("/int/c"))
        .header("if-match", format!("\"{tag}\""))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::PRECONDITION_FAILED);
    assert_eq!(app.get_ok("/int/c").await, "2");
    let map = etag(&app.put("/map/m", r#"{"f":"1"}"#).await);
    let stale_field = app.put_if("/map/m/f", "if-match", "\"1\"", "2").await;
    assert_eq!(stale_field.status(), StatusCode::PRECONDITION_FAILED);
    let field = app
        .put_if("/map/m/f", "if-match", &format!("\"{map}\""), "2")
        .await;
    assert_eq!(field.status(), StatusCode::OK);
    assert_eq!(app.get_ok("/map/m/f").await, "2");
    let absent = app.put_if("/set/none/x", "if-match", "*", "").await;
    assert_eq!(absent.status(), StatusCode::PRECONDITION_FAILED);
    assert_eq!(app.get("/set/none").await.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn if_none_match_star_creates_only_and_a_current_tag_is_not_modified() {
    let app = TestApp::spawn(&[]).await;
    let created = app.put_if("/str/lock", "if-none-match", "*", "me").await;
    assert_eq!(created.status(), StatusCode::OK);
    let tag = etag(&created);
    let taken = app.put_if("/str/lock", "if-none-match", "*", "you").await;
    assert_eq!(taken.status(), StatusCode::PRECONDITION_FAILED);
    assert_eq!(app.get_ok("/str/lock").await, "me");

    let cached = app
        .client
        .get(app.url("/str/lock"))
        .header("if-none-match", format!("W/\"{tag}\""))
        .send()
        .await
        .unwrap();
    assert_eq!(cached.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(etag(&cached), tag);
    assert!(cached.text().await.unwrap().is_empty());
    let changed = app
        .client
        .get(app.url("/str/lock"))
        .header("if-none-match", format!("\"{}\"", tag + 1))
        .send()
        .await
        .unwrap();
    assert_eq!(changed.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_malformed_precondition_is_a_400() {
    let app = TestApp::spawn(&[]).await;
    assert_problem(
        app.put_if("/int/k", "if-match", "7", "1").await,
        StatusCode::BAD_REQUEST,
        "quoted",
    )
    .await;
    assert_eq!(app.get("/int/k").await.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn errors_carry_the_stores_revision_too() {
    let app = TestApp::spawn(&[]).await;
    let r = revision(&app.put("/int/a", "1").await);
    let missing = app.get("/int/nothing").await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert_eq!(revision(&missing), r);
}

#[tokio::test]
async fn listings_page_through_every_key_in_order_and_say_which_page_is_last() {
    let app = TestApp::spawn(&[]).await;
    let mut expected: Vec<String> = (0..25).map(|i| format!("p{i:02}")).collect();
    for k in &expected {
        app.put_ok(&format!("/int/{k}"), "1").await;
    }
    app.put_ok("/int/q", "1").await;
    let mut seen = Vec::new();
    let mut after = String::new();
    loop {
        let resp = app
            .get(&format!("/keys/int?prefix=p&limit=10&after={after}"))
            .await;
        assert_eq!(resp.status(), StatusCode::OK);
        let last = resp.headers()["kvs-last-page"] == "true";
        let next = resp
            .headers()
            .get("kvs-next-after")
            .map(|v| v.to_str().unwrap().to_owned());
        let page: Vec<String> = resp.json().await.unwrap();
        assert!(page.len() <= 10);
        seen.extend(page.iter().cloned());
        if last {
            assert!(next.is_none());
            break;
        }
        after = next.expect("a page that is not the last says where the next starts");
        assert_eq!(Some(&after), page.last());
    }
    expected.sort();
    assert_eq!(seen, expected);
    // A page that ends exactly at the last key is the last.
    let resp = app.get("/keys/int?prefix=p&limit=25").await;
    assert_eq!(resp.headers()["kvs-last-page"], "true");
}
