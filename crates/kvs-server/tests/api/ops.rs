//! Health, readiness, metrics and the API's own documentation.

use std::collections::BTreeSet;

use reqwest::StatusCode;

use crate::helpers::TestApp;

#[tokio::test]
async fn health_and_readiness_answer_once_replay_is_done() {
    let app = TestApp::spawn(&[]).await;
    assert_eq!(app.get_ok("/healthz").await, "ok");
    assert_eq!(app.get_ok("/readyz").await, "ready");
}

#[tokio::test]
async fn metrics_count_requests_by_route_and_keys_by_type() {
    let app = TestApp::spawn(&[]).await;
    app.put_ok("/int/a", "1").await;
    app.put_ok("/int-put/b", "2").await;
    app.get("/int/missing").await;
    let resp = app.get("/metrics").await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    let text = resp.text().await.unwrap();
    assert_eq!(text.lines().last(), Some("# EOF"), "{text}");
    for line in [
        r#"kvs_http_requests_total{method="PUT",route="/kvs/v1-0-0/{type}/{key}",status="200"} 1"#,
        r#"kvs_http_requests_total{method="GET",route="/kvs/v1-0-0/{type}/{key}",status="404"} 1"#,
        // Latency by route: the PUT and the GET on the resource route.
        r#"kvs_http_request_duration_seconds_count{route="/kvs/v1-0-0/{type}/{key}"} 2"#,
        r#"kvs_http_request_duration_seconds_bucket{le="+Inf",route="/kvs/v1-0-0/{type}/{key}"} 2"#,
        r#"kvs_keys{type="int"} 2"#,
        "kvs_log_records_total 2",
        "kvs_log_batches_total 2",
        "kvs_log_append_seconds_count 2",
        r#"kvs_log_batch_records_bucket{le="1.0"} 2"#,
        "kvs_ready 1",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in\n{text}"
        );
    }
}

#[tokio::test]
async fn the_openapi_document_describes_every_route_served() {
    let app = TestApp::spawn(&[]).await;
    let doc: serde_json::Value = serde_json::from_str(&app.get_ok("/openapi.json").await).unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    let documented: BTreeSet<String> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, ops)| {
            ops.as_object()
                .unwrap()
                .keys()
                .map(move |m| format!("{} {path}", m.to_uppercase()))
        })
        .filter(|s| !s.starts_with("PARAMETERS"))
        .collect();
    // Each route the server answers, probed for real: a documented route
    // must not be a 404 "no such route" and vice versa.
    for entry in &documented {
        let (method, path) = entry.split_once(' ').unwrap();
        let concrete = path
            .replace("{type}", "int")
            .replace("{key}", "k")
            .replace("{field}", "f")
            .replace("{member}", "m");
        let resp = app
            .client
            .request(method.parse().unwrap(), app.url(&concrete))
            .send()
            .await
            .unwrap();
        let status = resp.status();
        // A watch's stream does not end: its head says enough.
        let streams = resp
            .headers()
            .get("content-type")
            .is_some_and(|ct| ct == "text/event-stream");
        let body = if streams {
            String::new()
        } else {
            resp.text().await.unwrap()
        };
        assert!(
            !(status == StatusCode::NOT_FOUND && body.contains("no such route"))
                && status != StatusCode::METHOD_NOT_ALLOWED,
            "{entry} is documented but not served ({status})"
        );
    }
    assert!(
        documented.len() >= 40,
        "only {} operations documented",
        documented.len()
    );
    // Routes refer to shared parts by name: each name must be there.
    let mut refs = Vec::new();
    references(&doc, &mut refs);
    assert!(!refs.is_empty());
    for r in refs {
        let target = r.strip_prefix('#').and_then(|p| doc.pointer(p));
        assert!(target.is_some(), "{r} refers to nothing in the document");
    }
    // Every operation is named once and shown under a declared tag.
    let tags: BTreeSet<&str> = doc["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    let mut ids = BTreeSet::new();
    for op in doc["paths"].as_object().unwrap().values() {
        for op in op.as_object().unwrap().values() {
            let id = op["operationId"].as_str().unwrap();
            assert!(ids.insert(id), "operationId {id} twice");
            let tag = op["tags"][0].as_str().unwrap();
            assert!(tags.contains(tag), "{id} has the undeclared tag {tag}");
        }
    }
}

#[tokio::test]
async fn the_openapi_document_names_the_headers_of_a_value_read() {
    let app = TestApp::spawn(&[]).await;
    let doc: serde_json::Value = serde_json::from_str(&app.get_ok("/openapi.json").await).unwrap();
    let get = &doc["paths"]["/{type}/{key}"]["get"];
    let answer = get["responses"]["200"]["$ref"].as_str().unwrap();
    let answer = doc.pointer(answer.strip_prefix('#').unwrap()).unwrap();
    for header in [
        "ETag",
        "KVS-Create-Revision",
        "KVS-Revision",
        "KVS-Expires-At",
    ] {
        assert!(
            answer["headers"].get(header).is_some(),
            "a value's GET does not name {header}: {answer}"
        );
    }
    let created = &answer["headers"]["KVS-Create-Revision"]["schema"]["type"];
    assert_eq!(created, "integer");
    // What a client must find on every 503 and in every listing.
    let retry = &doc["components"]["responses"]["Replaying"]["headers"]["Retry-After"];
    assert_eq!(retry["required"], true, "{retry}");
    let listing = &doc["paths"]["/keys/{type}"]["get"]["responses"]["200"]["headers"];
    assert_eq!(listing["KVS-Last-Page"]["required"], true, "{listing}");
}

/// Every `$ref` in `doc`.
fn references<'a>(doc: &'a serde_json::Value, out: &mut Vec<&'a str>) {
    match doc {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("$ref", serde_json::Value::String(r)) => out.push(r),
                    _ => references(v, out),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| references(v, out)),
        _ => {}
    }
}

#[tokio::test]
async fn the_docs_page_is_self_contained_html() {
    let app = TestApp::spawn(&[]).await;
    let resp = app.get("/docs").await;
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = resp.text().await.unwrap();
    assert!(html.contains("openapi.json"));
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "the page must not load anything from the network"
    );
}

async fn records_logged(app: &TestApp) -> u64 {
    app.get_ok("/metrics")
        .await
        .lines()
        .find_map(|l| l.strip_prefix("kvs_log_records_total "))
        .and_then(|v| v.parse().ok())
        .expect("kvs_log_records_total in /metrics")
}

#[tokio::test]
async fn reads_are_logged_only_when_read_auditing_is_on() {
    for (args, expected) in [(&[][..], 1), (&["--audit-reads"][..], 3)] {
        let app = TestApp::spawn(args).await;
        app.put_ok("/str/k", "v").await;
        app.get_ok("/str/k").await;
        app.get_ok("/str-get/k").await;
        // Audit records share the write queue: once a later write is
        // durable, so is every record queued before it.
        app.put_ok("/str/last", "v").await;
        assert_eq!(records_logged(&app).await, expected + 1, "{args:?}");
    }
}

#[tokio::test]
async fn the_root_and_the_base_path_lead_to_the_docs_page() {
    let app = TestApp::spawn(&[]).await;
    let root = app.base.strip_suffix("/kvs/v1-0-0").unwrap();
    let not_following = kvs_testkit::http::client_builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for path in ["/", "/kvs/v1-0-0", "/kvs/v1-0-0/"] {
        let resp = not_following
            .get(format!("{root}{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::SEE_OTHER, "{path}");
        assert_eq!(resp.headers()["location"], "/kvs/v1-0-0/docs", "{path}");
    }
    let page = app.client.get(format!("{root}/")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.text().await.unwrap().contains("<title>"));
    // Elsewhere, a 404 that says where to look.
    let resp = app
        .client
        .get(format!("{root}/nowhere"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
}
