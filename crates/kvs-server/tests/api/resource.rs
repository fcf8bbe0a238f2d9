//! Resource-style routes: `/{type}/{key}`, map fields, set members, keys.

use reqwest::StatusCode;

use crate::helpers::{TestApp, assert_problem, deleted};

#[tokio::test]
async fn every_type_has_get_put_and_delete_at_type_slash_key() {
    let app = TestApp::spawn(&[]).await;
    let cases = [
        ("int", "-1"),
        ("uint", "1"),
        ("float", "1.5"),
        ("str", "text"),
        ("map", r#"{"a":"b"}"#),
        ("set", r#"["x","y"]"#),
    ];
    for (ty, value) in cases {
        app.put_ok(&format!("/{ty}/k"), value).await;
        assert_eq!(app.get_ok(&format!("/{ty}/k")).await, value, "{ty}");
    }
    for (ty, _) in cases {
        assert!(deleted(&app.delete(&format!("/{ty}/k")).await), "{ty}");
        assert_problem(
            app.get(&format!("/{ty}/k")).await,
            StatusCode::NOT_FOUND,
            "k",
        )
        .await;
    }
}

#[tokio::test]
async fn resource_and_compatibility_routes_share_one_store() {
    let app = TestApp::spawn(&[]).await;
    app.put_ok("/uint/k", "5").await;
    assert_eq!(app.get_ok("/uint/get/k").await, "5");
    app.put_ok("/map-put/m", r#"{"f":"v"}"#).await;
    assert_eq!(app.get_ok("/map/m/f").await, "v");
}

#[tokio::test]
async fn an_unknown_type_is_not_found() {
    let app = TestApp::spawn(&[]).await;
    assert_problem(app.get("/bool/k").await, StatusCode::NOT_FOUND, "bool").await;
    assert_problem(
        app.put("/bool/k", "true").await,
        StatusCode::NOT_FOUND,
        "bool",
    )
    .await;
}

#[tokio::test]
async fn an_unsupported_method_is_405_in_the_error_format() {
    let app = TestApp::spawn(&[]).await;
    let resp = app.client.patch(app.url("/int/k")).send().await.unwrap();
    assert_problem(resp, StatusCode::METHOD_NOT_ALLOWED, "method").await;
}

#[tokio::test]
async fn incr_adds_one_or_the_amount_and_answers_the_value_after() {
    let app = TestApp::spawn(&[]).await;
    assert_eq!(app.post("/int/n/incr", "").await.text().await.unwrap(), "1");
    assert_eq!(
        app.post("/int/n/incr", "41").await.text().await.unwrap(),
        "42"
    );
    assert_problem(
        app.post("/int/n/incr", "2147483647").await,
        StatusCode::CONFLICT,
        "overflow",
    )
    .await;
    assert_problem(
        app.post("/int/n/incr", "many").await,
        StatusCode::BAD_REQUEST,
        "int",
    )
    .await;
    assert_eq!(app.get_ok("/int/n").await, "42");
}

#[tokio::test]
async fn map_fields_can_be_read_written_and_removed_one_at_a_time() {
    let app = TestApp::spawn(&[]).await;
    assert_problem(app.get("/map/m/a").await, StatusCode::NOT_FOUND, "m").await;
    app.put_ok("/map/m/a", "1").await;
    app.put_ok("/map/m/b%20c", "two words").await;
    assert_eq!(app.get_ok("/map/m/a").await, "1");
    assert_eq!(app.get_ok("/map/m/b%20c").await, "two words");
    assert_eq!(app.get_ok("/map/m").await, r#"{"a":"1","b c":"two words"}"#);
    assert_problem(app.get("/map/m/zzz").await, StatusCode::NOT_FOUND, "zzz").await;
    assert!(deleted(&app.delete("/map/m/a").await));
    assert!(!deleted(&app.delete("/map/m/a").await));
    assert_eq!(app.get_ok("/map/m").await, r#"{"b c":"two words"}"#);
    assert_problem(
        app.put("/map/m/x", vec![0xffu8]).await,
        StatusCode::BAD_REQUEST,
        "UTF-8",
    )
    .await;
}

#[tokio::test]
async fn set_members_can_be_added_tested_and_removed_one_at_a_time() {
    let app = TestApp::spawn(&[]).await;
    let added = |r: &reqwest::Response| r.headers().get("added").is_some_and(|v| v == "true");
    let first = app.put("/set/s/x", "").await;
    assert_eq!(first.status(), StatusCode::OK);
    assert!(added(&first));
    assert!(
        !added(&app.put("/set/s/x", "").await),
        "adding twice adds once"
    );
    app.put("/set/s/a", "").await;
    assert_eq!(app.get_ok("/set/s/x").await, "true");
    assert_problem(app.get("/set/s/q").await, StatusCode::NOT_FOUND, "q").await;
    assert_eq!(app.get_ok("/set/s").await, r#"["a","x"]"#);
    assert!(deleted(&app.delete("/set/s/x").await));
    assert!(!deleted(&app.delete("/set/s/x").await));
    assert_eq!(app.get_ok("/set/s").await, r#"["a"]"#);
}

#[tokio::test]
async fn keys_are_listed_by_type_prefix_cursor_and_limit() {
    let app = TestApp::spawn(&[]).await;
    for key in ["user_3", "user_1", "user_2", "admin", "user_10"] {
        app.put_ok(&format!("/int/{key}"), "0").await;
    }
    app.put_ok("/str/user_x", "s").await;
    let list = |q: &'static str| {
        let app = &app;
        async move {
            serde_json::from_str::<Vec<String>>(&app.get_ok(&format!("/keys/int{q}")).await)
                .unwrap()
        }
    };
    assert_eq!(
        list("").await,
        ["admin", "user_1", "user_10", "user_2", "user_3"]
    );
    assert_eq!(list("?prefix=user_&limit=2").await, ["user_1", "user_10"]);
    assert_eq!(
        list("?prefix=user_&after=user_10").await,
        ["user_2", "user_3"]
    );
    assert_eq!(list("?prefix=nobody").await, Vec::<String>::new());
    assert_problem(
        app.get("/keys/int?limit=10001").await,
        StatusCode::BAD_REQUEST,
        "limit",
    )
    .await;
    assert_problem(
        app.get("/keys/int?limit=-1").await,
        StatusCode::BAD_REQUEST,
        "limit",
    )
    .await;
    assert_problem(app.get("/keys/bool").await, StatusCode::NOT_FOUND, "bool").await;
}

#[tokio::test]
async fn text_with_a_nul_character_is_refused_everywhere_it_can_enter() {
    let app = TestApp::spawn(&[]).await;
    for (path, body, says) in [
        ("/str/k", "a\0b", "a string value"),
        ("/str-put/k", "\0", "a string value"),
        ("/map/m", r#"{"f":"\u0000"}"#, "a map value"),
        ("/set/s", r#"["\u0000"]"#, "a set member"),
        ("/map/m/f", "x\0", "a map value"),
        ("/map/m/f%00", "x", "a map field"),
        ("/set/s/m%00", "", "a set member"),
    ] {
        assert_problem(app.put(path, body).await, StatusCode::BAD_REQUEST, says).await;
    }
    for path in ["/str/k", "/map/m", "/set/s"] {
        assert_eq!(
            app.get(path).await.status(),
            StatusCode::NOT_FOUND,
            "{path}"
        );
    }
    // Other control characters are text like any other.
    app.put_ok("/str/k", "a\u{1}b").await;
    assert_eq!(app.get_ok("/str/k").await, "a\u{1}b");
}
