//! One value of each type written through kvs-server, and read back after
//! whatever the test did in between.

use kvs_testkit::http::Api;
use reqwest::StatusCode;

/// One value of each type (resource path, body, what GET answers).
pub const MIX: [(&str, &str, &str); 6] = [
    ("/int/i", "-7", "-7"),
    ("/uint/u", "4000000000", "4000000000"),
    ("/float/f", "0.1", "0.1"),
    ("/str/s", "hello\nworld", "hello\nworld"),
    ("/map/m", r#"{"k":"v","a":""}"#, r#"{"a":"","k":"v"}"#),
    ("/set/t", r#"["y","x","y"]"#, r#"["x","y"]"#),
];

pub async fn write_mix(base: &Api) {
    for (path, body, _) in MIX {
        assert_eq!(base.put(path, body).await, StatusCode::OK, "{path}");
    }
    assert_eq!(base.put("/int/gone", "1").await, StatusCode::OK);
    assert!(base.delete("/del/gone").await);
    assert_eq!(base.put("/int-incr/i", "").await, StatusCode::OK);
}

pub async fn assert_mix(base: &Api) {
    for (path, _, expected) in MIX {
        let expected = if path == "/int/i" { "-6" } else { expected };
        assert_eq!(
            base.get(path).await,
            (StatusCode::OK, expected.to_owned()),
            "{path}"
        );
    }
    assert_eq!(base.get("/int/gone").await.0, StatusCode::NOT_FOUND);
}
