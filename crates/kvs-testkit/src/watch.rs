//! A watch stream (`GET /watch`) read by a test, as the SSE format says.

use reqwest::{Response, StatusCode};

/// What a watch stream sends: an event, or a comment (a heartbeat).
#[derive(Debug, Clone, PartialEq)]
pub enum Sent {
    Event(Event),
    Comment(String),
}

/// One Server-Sent Event, its data parsed as JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub id: Option<u64>,
    pub kind: String,
    pub data: serde_json::Value,
}

/// Long enough for any machine: a watch test that waits this long for
/// an event has failed.
const PATIENT: std::time::Duration = std::time::Duration::from_secs(60);

/// A watch stream read as the SSE format says: `field: value` lines, an
/// event ended by a blank line, `:` starting a comment.
pub struct Watch {
    resp: Response,
    buf: Vec<u8>,
}

impl Watch {
    /// `GET {base}/watch{query}`, resuming after `last_id` when given; it
    /// must answer a stream.
    pub async fn open(
        client: &reqwest::Client,
        base: &str,
        query: &str,
        last_id: Option<u64>,
    ) -> Watch {
        let mut req = client.get(format!("{base}/watch{query}"));
        if let Some(id) = last_id {
            req = req.header("last-event-id", id.to_string());
        }
        let resp = req.send().await.expect("GET /watch");
        assert_eq!(resp.status(), StatusCode::OK, "GET /watch{query}");
        assert_eq!(resp.headers()["content-type"], "text/event-stream");
        Watch {
            resp,
            buf: Vec::new(),
        }
    }

    /// What comes next; `None` once the stream ended.
    pub async fn next(&mut self) -> Option<Sent> {
        let (mut id, mut kind, mut data, mut comment) = (None, None, Vec::new(), None);
        loop {
            let Some(end) = self.buf.iter().position(|&b| b == b'\n') else {
                let chunk = tokio::time::timeout(PATIENT, self.resp.chunk())
                    .await
                    .expect("nothing sent for a minute");
                match chunk {
                    Ok(Some(chunk)) => {
                        self.buf.extend_from_slice(&chunk);
                        continue;
                    }
                    Ok(None) | Err(_) => return None,
                }
            };
            let line: Vec<u8> = self.buf.drain(..=end).collect();
            let line = String::from_utf8(line).expect("UTF-8");
            let line = line.trim_end_matches(['\n', '\r']);
            if line.is_empty() {
                if let Some(c) = comment.take() {
                    return Some(Sent::Comment(c));
                }
                if !data.is_empty() {
                    let data = serde_json::from_str(&data.join("\n")).expect("JSON data");
                    let kind = kind.unwrap_or_else(|| "message".to_owned());
                    return Some(Sent::Event(Event { id, kind, data }));
                }
                continue;
            }
            if let Some(c) = line.strip_prefix(':') {
                comment = Some(c.trim().to_owned());
                continue;
            }
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "id" => id = Some(value.parse().expect("a revision")),
                "event" => kind = Some(value.to_owned()),
                "data" => data.push(value.to_owned()),
                other => panic!("unexpected SSE field {other:?}"),
            }
        }
    }

    /// The next event, past any heartbeat; panics at the stream's end.
    pub async fn event(&mut self) -> Event {
        loop {
            match self.next().await {
                Some(Sent::Event(e)) => return e,
                Some(Sent::Comment(_)) => {}
                None => panic!("the watch stream ended"),
            }
        }
    }
}
