//! The original service's routes, with the contract's statuses and bodies.

use reqwest::StatusCode;

use crate::helpers::{TestApp, assert_problem, deleted};

#[tokio::test]
async fn echo_swaps_the_case_of_every_letter() {
    let app = TestApp::spawn(&[]).await;
    let resp = app.post("/echo", "Hello, Wörld! ß ǅ 123").await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.text().await.unwrap(), "hELLO, wÖRLD! SS ǅ 123");
}

#[tokio::test]
async fn echo_rejects_a_body_that_is_not_utf8() {
    let app = TestApp::spawn(&[]).await;
    assert_problem(
        app.post("/echo", vec![0xffu8, 0xfe]).await,
        StatusCode::BAD_REQUEST,
        "UTF-8",
    )
    .await;
}

#[tokio::test]
async fn hello_names_the_service_and_its_version() {
    let app = TestApp::spawn(&[]).await;
    let resp = app.post("/hello", "").await;
    assert_eq!(resp.status(), StatusCode::OK);
    let text = resp.text().await.unwrap();
    assert!(text.contains("kvs") && text.contains("v1.0.0"), "{text}");
}

#[tokio::test]
async fn fibo_answers_f_of_n_up_to_93() {
    let app = TestApp::spawn(&[]).await;
    for (n, f) in [
        (0, "0"),
        (1, "1"),
        (2, "1"),
        (10, "55"),
        (93, "12200160415121876738"),
    ] {
        let resp = app.post(&format!("/fibo?n={n}"), "").await;
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.text().await.unwrap(), f, "F({n})");
    }
}

#[tokio::test]
async fn fibo_rejects_a_missing_or_bad_n() {
    let app = TestApp::spawn(&[]).await;
    for query in ["", "?n=94", "?n=-1", "?n=abc", "?m=3"] {
        assert_problem(
            app.post(&format!("/fibo{query}"), "").await,
            StatusCode::BAD_REQUEST,
            "n",
        )
        .await;
    }
}

#[tokio::test]
async fn int_put_get_and_delete_round_trip() {
    let app = TestApp::spawn(&[]).await;
    app.put_ok("/int-put/a", "-42").await;
    assert_eq!(app.get_ok("/int-get/a").await, "-42");
    assert!(deleted(&app.delete("/int-del/a").await));
    assert_problem(app.get("/int-get/a").await, StatusCode::NOT_FOUND, "a").await;
    assert!(
        !deleted(&app.delete("/int-del/a").await),
        "a second delete removes nothing"
    );
}

#[tokio::test]
async fn int_put_rejects_what_is_not_an_i32_and_keeps_the_old_value() {
    let app = TestApp::spawn(&[]).await;
    app.put_ok("/int-put/a", "7").await;
    for body in ["", "abc", "1.5", "2147483648", "-2147483649", "0x10"] {
        assert_problem(
            app.put("/int-put/a", body).await,
            StatusCode::BAD_REQUEST,
            "int",
        )
        .await;
    }
    assert_eq!(app.get_ok("/int-get/a").await, "7");
}

#[tokio::test]
async fn bad_keys_are_rejected_on_every_kind_of_route() {
    let app = TestApp::spawn(&[]).await;
    let long = "k".repeat(257);
    for key in ["a-b", "a.b", "%C3%A9", long.as_str()] {
        assert_problem(
            app.put(&format!("/int-put/{key}"), "1").await,
            StatusCode::BAD_REQUEST,
            "key",
        )
        .await;
        assert_problem(
            app.get(&format!("/str-get/{key}")).await,
            StatusCode::BAD_REQUEST,
            "key",
        )
        .await;
        assert_problem(
            app.delete(&format!("/del/{key}")).await,
            StatusCode::BAD_REQUEST,
            "key",
        )
        .await;
    }
    app.put_ok(&format!("/int-put/{}", "k".repeat(256)), "1")
        .await;
}

#[tokio::test]
async fn int_incr_returns_the_value_before_and_starts_absent_keys_at_zero() {
    let app = TestApp::spawn(&[]).await;
    assert_eq!(app.put("/int-incr/c", "").await.text().await.unwrap(), "0");
    assert_eq!(app.get_ok("/int-get/c").await, "1");
    assert_eq!(app.put("/int-incr/c", "").await.text().await.unwrap(), "1");
    assert_eq!(
        app.put("/int-incrby/c", "10").await.text().await.unwrap(),
        "2"
    );
    assert_eq!(app.get_ok("/int-get/c").await, "12");
    assert_eq!(
        app.put("/int-incrby/fresh", "-5")
            .await
            .text()
            .await
            .unwrap(),
        "0"
    );
    assert_eq!(app.get_ok("/int-get/fresh").await, "-5");
}

#[tokio::test]
async fn an_increment_that_would_overflow_is_a_conflict_and_changes_nothing() {
    let app = TestApp::spawn(&[]).await;
    app.put_ok("/int-put/c", "2147483647").await;
    assert_problem(
        app.put("/int-incr/c", "").await,
        StatusCode::CONFLICT,
        "overflow",
    )
    .await;
    app.put_ok("/int-put/d", "-2147483648").await;
    assert_problem(
        app.put("/int-incrby/d", "-1").await,
        StatusCode::CONFLICT,
        "overflow",
    )
    .await;
    assert_eq!(app.get_ok("/int-get/c").await, "2147483647");
    assert_eq!(app.get_ok("/int-get/d").await, "-2147483648");
}

#[tokio::test]
async fn int_incrby_rejects_a_bad_amount() {
    let app = TestApp::spawn(&[]).await;
    assert_problem(
        app.put("/int-incrby/c", "x").await,
        StatusCode::BAD_REQUEST,
        "int",
    )
    .await;
    assert_problem(app.get("/int-get/c").await, StatusCode::NOT_FOUND, "c").await;
}

#[tokio::test]
async fn uint_routes_take_u32_only() {
    let app = TestApp::spawn(&[]).await;
    app.put_ok("/uint/put/u", "4294967295").await;
    assert_eq!(app.get_ok("/uint/get/u").await, "4294967295");
    assert_problem(
        app.put("/uint/put/u", "-1").await,
        StatusCode::BAD_REQUEST,
        "uint",
    )
    .await;
    assert_problem(
        app.put("/uint/put/u", "4294967296").await,
        StatusCode::BAD_REQUEST,
        "uint",
    )
    .await;
    assert!(deleted(&app.delete("/uint/del/u").await));
    assert_problem(app.get("/uint/get/u").await, StatusCode::NOT_FOUND, "u").await;
}

#[tokio::test]
async fn float_get_returns_text_that_parses_back_to_the_same_f32() {
    let app = TestApp::spawn(&[]).await;
    for sent in ["0.1", "-3.4028235e38", "1e-45", "16777217", "2.5"] {
        app.put_ok("/float-put/f", sent).await;
        let got: f32 = app.get_ok("/float-get/f").await.parse().unwrap();
        assert_eq!(
            got.to_bits(),
            sent.parse::<f32>().unwrap().to_bits(),
            "{sent}"
        );
    }
    assert!(deleted(&app.delete("/float-del/f").await));
}

#[tokio::test]
async fn float_put_rejects_non_finite_and_non_numbers() {
    let app = TestApp::spawn(&[]).await;
    for body in ["NaN", "inf", "-infinity", "1e39", "one"] {
        assert_problem(
            app.put("/float-put/f", body).await,
            StatusCode::BAD_REQUEST,
            "float",
        )
        .await;
    }
}

#[tokio::test]
async fn str_values_are_stored_exactly_including_empty() {
    let app = TestApp::spawn(&[]).await;
    for text in ["", "  spaced \n", "ünïcödé ✓", "{\"not\": \"json\"}"] {
        app.put_ok("/str-put/s", text).await;
        assert_eq!(app.get_ok("/str-get/s").await, text);
    }
    assert_problem(
        app.put("/str-put/s", vec![0xc3u8, 0x28]).await,
        StatusCode::BAD_REQUEST,
        "UTF-8",
    )
    .await;
    assert!(deleted(&app.delete("/str-del/s").await));
}

#[tokio::test]
async fn map_values_are_json_objects_of_strings() {
    let app = TestApp::spawn(&[]).await;
    app.put_ok("/map-put/m", r#"{"b":"2","a":"1"}"#).await;
    let got: serde_json::Value = serde_json::from_str(&app.get_ok("/map-get/m").await).unwrap();
    assert_eq!(got, serde_json::json!({"a": "1", "b": "2"}));
    for body in [r#"{"a":1}"#, "[]", "{", r#""a""#] {
        assert_problem(
            app.put("/map-put/m", body).await,
            StatusCode::BAD_REQUEST,
            "map",
        )
        .await;
    }
    assert!(deleted(&app.delete("/map-del/m").await));
    assert_problem(app.get("/map-get/m").await, StatusCode::NOT_FOUND, "m").await;
}

#[tokio::test]
async fn set_values_collapse_duplicates_and_come_back_sorted() {
    let app = TestApp::spawn(&[]).await;
    app.put_ok("/set-put/s", r#"["b","a","b","c"]"#).await;
    assert_eq!(app.get_ok("/set-get/s").await, r#"["a","b","c"]"#);
    for body in [r#"["a",1]"#, "{}", "a"] {
        assert_problem(
            app.put("/set-put/s", body).await,
            StatusCode::BAD_REQUEST,
            "set",
        )
        .await;
    }
    assert!(deleted(&app.delete("/set-del/s").await));
}

#[tokio::test]
async fn each_type_is_its_own_namespace() {
    let app = TestApp::spawn(&[]).await;
    app.put_ok("/int-put/k", "1").await;
    app.put_ok("/str-put/k", "one").await;
    assert_eq!(app.get_ok("/int-get/k").await, "1");
    assert_eq!(app.get_ok("/str-get/k").await, "one");
    assert!(deleted(&app.delete("/int-del/k").await));
    assert_eq!(app.get_ok("/str-get/k").await, "one");
}

#[tokio::test]
async fn del_removes_the_key_from_every_type() {
    let app = TestApp::spawn(&[]).await;
    app.put_ok("/int-put/k", "1").await;
    app.put_ok("/uint/put/k", "2").await;
    app.put_ok("/set-put/k", "[]").await;
    app.put_ok("/str-put/other", "x").await;
    assert!(deleted(&app.delete("/del/k").await));
    for path in ["/int-get/k", "/uint/get/k", "/set-get/k"] {
        assert_eq!(
            app.get(path).await.status(),
            StatusCode::NOT_FOUND,
            "{path}"
        );
    }
    assert_eq!(app.get_ok("/str-get/other").await, "x");
    assert!(!deleted(&app.delete("/del/k").await));
}

#[tokio::test]
async fn a_body_over_the_limit_is_413_and_stores_nothing() {
    let app = TestApp::spawn(&["--max-body-bytes", "1024"]).await;
    app.put_ok("/str-put/s", &"x".repeat(1024)).await;
    assert_problem(
        app.put("/str-put/s", "y".repeat(1025)).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "limit",
    )
    .await;
    assert_eq!(app.get_ok("/str-get/s").await, "x".repeat(1024));
}
