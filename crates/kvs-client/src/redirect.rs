//! A follower's redirect: a write sent to a follower is answered
//! `307 Temporary Redirect` to the primary, and sent there again, with its
//! method, body, headers and token.
//!
//! reqwest's own redirect handling is off (see the builder): it drops
//! `Authorization` on every redirect to another host, and a follower and
//! its primary are different hosts of one service, so the token would not
//! reach the primary. Only 307 and 308 are followed, the two that keep the
//! method and the body; a 301, 302 or 303 would turn a write into a GET, and
//! is an error answer instead.

use reqwest::header::{AUTHORIZATION, HeaderValue, LOCATION};
use reqwest::{Request, Response, StatusCode, Url};

use crate::{Error, Result};

/// How many redirects one call follows before it fails with
/// [`Error::TooManyRedirects`]: a follower to the primary is one; a
/// follower that still points to a primary that has just lost its lease,
/// and that primary to the new one, is two.
pub const MAX_REDIRECTS: usize = 5;

/// Sends `req` with `token`, following 307 and 308 up to [`MAX_REDIRECTS`]
/// times.
///
/// The token goes with the first request, to the configured server, and on
/// each redirect that a server which had it issued, unless the redirect
/// leaves `https` for `http`: a server that holds the token could use it
/// anywhere itself, so letting it say where the request goes next gives it
/// nothing more, while a plain `http` hop would show the token to anyone on
/// the way.
pub(crate) async fn send(
    http: &reqwest::Client,
    mut req: Request,
    token: Option<&HeaderValue>,
) -> Result<Response> {
    let mut with_token = token.is_some();
    let mut hops = 0;
    loop {
        match token.filter(|_| with_token) {
            Some(token) => req.headers_mut().insert(AUTHORIZATION, token.clone()),
            None => req.headers_mut().remove(AUTHORIZATION),
        };
        // The clients' bodies are bytes, which clone; a body that did not
        // would leave the redirect as the answer.
        let again = req.try_clone();
        let resp = http.execute(req).await?;
        if !matches!(
            resp.status(),
            StatusCode::TEMPORARY_REDIRECT | StatusCode::PERMANENT_REDIRECT
        ) {
            return Ok(resp);
        }
        let Some(mut next) = again else {
            return Ok(resp);
        };
        let location = location(&resp)?;
        if hops == MAX_REDIRECTS {
            return Err(Error::TooManyRedirects {
                hops,
                location: location.to_string(),
            });
        }
        hops += 1;
        with_token &= keeps_token(resp.url(), &location);
        *next.url_mut() = location;
        req = next;
    }
}

/// Where a redirect points, resolved against the URL that answered it.
fn location(resp: &Response) -> Result<Url> {
    let value = resp.headers().get(LOCATION).ok_or_else(|| {
        Error::Decode(format!(
            "a {} answer must carry a Location",
            resp.status().as_u16()
        ))
    })?;
    let bad = || Error::Decode(format!("Location {value:?} is not a URL"));
    let url = resp
        .url()
        .join(value.to_str().map_err(|_| bad())?)
        .map_err(|_| bad())?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad());
    }
    Ok(url)
}

/// Whether the token may go from `from` on to `to`: anywhere but from
/// `https` down to `http`.
fn keeps_token(from: &Url, to: &Url) -> bool {
    !(from.scheme() == "https" && to.scheme() == "http")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_follows_a_redirect_to_another_host_but_never_down_to_plain_http() {
        let url = |s: &str| Url::parse(s).unwrap();
        for (from, to, kept) in [
            ("http://follower:8080/a", "http://primary:8080/a", true),
            ("http://follower:8080/a", "https://primary:8443/a", true),
            ("https://follower/a", "https://primary/a", true),
            ("https://follower/a", "http://primary/a", false),
            ("https://h/a", "http://h/a", false),
        ] {
            assert_eq!(keeps_token(&url(from), &url(to)), kept, "{from} -> {to}");
        }
    }
}
