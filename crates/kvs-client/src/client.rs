//! [`Client`]: one method per operation of the REST API.

use std::time::Duration;

use kvs_core::value::{MapValue, SetValue, parse_int};
use kvs_core::{Key, Value, ValueType};
use reqwest::header::{CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use reqwest::{RequestBuilder, Response, StatusCode, Url};

use crate::revision::{Precondition, PutOptions, Written, revision_of};
use crate::session::Session;
use crate::{ClientBuilder, Error, Result};

/// The header a DELETE answer carries when something was removed.
const DELETED: &str = "deleted";
/// The header a set-member PUT answer carries when the member was new.
const ADDED: &str = "added";
/// Whether a page of keys is the last one.
const LAST_PAGE: &str = "kvs-last-page";
/// The `after` of the next page of keys.
const NEXT_AFTER: &str = "kvs-next-after";
/// The media type of the server's error answers.
const PROBLEM_JSON: &str = "application/problem+json";
/// The media type of text bodies sent to the server.
pub(crate) const TEXT: &str = "text/plain; charset=utf-8";
/// How much of an unexpected body an error message quotes.
const QUOTE_LIMIT: usize = 200;

/// An async client of one KVS server.
///
/// Cloning is cheap: clones share one connection pool. Every method checks
/// its key (and a float's value, and a map field's or set member's name)
/// before sending anything, and answers [`Error::Status`] when the server
/// answers an error other than the "absent" that the method reports as
/// `None` or `false`.
///
/// A write sent to a follower is answered with a redirect to the primary,
/// which the client follows by itself (see [`ClientBuilder::token`] for
/// where the token goes, and [`crate::MAX_REDIRECTS`]).
#[derive(Debug, Clone)]
pub struct Client {
    pub(crate) http: reqwest::Client,
    /// The server's root URL with `/kvs/v1-0-0` appended.
    base: Url,
    /// `Authorization`, which [`crate::redirect`] decides where to send.
    token: Option<HeaderValue>,
    session: Session,
}

/// One page of a listing ([`Client::keys_page`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// The keys, sorted.
    pub keys: Vec<String>,
    /// Whether no key follows this page.
    pub last: bool,
    /// The `after` of the next page, when this is not the last.
    pub next_after: Option<String>,
}

impl Client {
    /// A client of the server at `base_url` (its root, such as
    /// `http://127.0.0.1:8080`), with the default settings of
    /// [`ClientBuilder`].
    pub fn new(base_url: &str) -> Result<Client> {
        ClientBuilder::new().base_url(base_url).build()
    }

    /// Settings to make a client with: base URL, timeouts, connection pool,
    /// default headers, token, CA.
    pub fn builder() -> ClientBuilder {
        ClientBuilder::new()
    }

    pub(crate) fn from_parts(
        http: reqwest::Client,
        base: Url,
        token: Option<HeaderValue>,
        session: Session,
    ) -> Client {
        Client {
            http,
            base,
            token,
            session,
        }
    }

    /// The URL every route is under: the server's root and `/kvs/v1-0-0`.
    pub fn base_url(&self) -> &Url {
        &self.base
    }

    // ----- any type -------------------------------------------------------

    /// `GET /{type}/{key}`: the value of `key` in type `ty`'s namespace, or
    /// `None` when it is absent.
    pub async fn get(&self, ty: ValueType, key: &str) -> Result<Option<Value>> {
        let url = self.url(&[ty.name(), Key::parse(key)?.as_str()]);
        match self.send_found(self.http.get(url)).await? {
            Some(resp) => value_of(ty, resp).await.map(Some),
            None => Ok(None),
        }
    }

    /// `PUT /{type}/{key}`: stores `value` under `key` in its type's
    /// namespace, replacing what was there.
    ///
    /// A float that is NaN or infinite is refused with
    /// [`Error::InvalidValue`] without a request: the server would refuse it.
    pub async fn put(&self, key: &str, value: &Value) -> Result<()> {
        self.put_sent(key, value, &PutOptions::default())
            .await
            .map(drop)
    }

    /// `PUT /{type}/{key}` with a condition, an expiry or both (see
    /// [`PutOptions`]); returns the key's new revision. A condition that
    /// does not hold is [`Error::PreconditionFailed`], and nothing changes.
    pub async fn put_with(&self, key: &str, value: &Value, options: &PutOptions) -> Result<u64> {
        revision_of(&self.put_sent(key, value, options).await?)
    }

    async fn put_sent(&self, key: &str, value: &Value, options: &PutOptions) -> Result<Response> {
        let ty = value.value_type();
        let mut url = self.url(&[ty.name(), Key::parse(key)?.as_str()]);
        if let Some(seconds) = options.ttl_seconds()? {
            url.query_pairs_mut()
                .append_pair("ttl", &seconds.to_string());
        }
        check_value(value)?;
        let body = value.render();
        let req = self
            .http
            .put(url)
            .header(CONTENT_TYPE, value.content_type())
            .body(body);
        self.send(Precondition::apply(options.condition, req)).await
    }

    /// `PUT /{type}/{key}` only if `condition` holds (compare-and-set with
    /// [`Precondition::Revision`], create-only with
    /// [`Precondition::Absent`]); returns the key's new revision.
    pub async fn put_if(&self, key: &str, value: &Value, condition: Precondition) -> Result<u64> {
        self.put_with(key, value, &PutOptions::default().condition(condition))
            .await
    }

    /// `PUT /{type}/{key}?ttl=SECONDS`: stores `value` until `ttl` has
    /// passed, after which the key is absent; returns the key's new
    /// revision. `ttl` must be a whole, positive number of seconds
    /// ([`Error::InvalidArgument`] otherwise). A later put without a TTL
    /// makes the key permanent again.
    pub async fn put_with_ttl(&self, key: &str, value: &Value, ttl: Duration) -> Result<u64> {
        self.put_with(key, value, &PutOptions::default().ttl(ttl))
            .await
    }

    /// `DELETE /{type}/{key}`: removes `key` from type `ty`'s namespace;
    /// `true` when it existed.
    pub async fn delete(&self, ty: ValueType, key: &str) -> Result<bool> {
        Ok(flag(&self.delete_sent(ty, key, None).await?, DELETED))
    }

    /// `DELETE /{type}/{key}` only if `condition` holds; `changed` says
    /// whether the key existed.
    pub async fn delete_if(
        &self,
        ty: ValueType,
        key: &str,
        condition: Precondition,
    ) -> Result<Written> {
        let resp = self.delete_sent(ty, key, Some(condition)).await?;
        Written::of(&resp, flag(&resp, DELETED))
    }

    async fn delete_sent(
        &self,
        ty: ValueType,
        key: &str,
        condition: Option<Precondition>,
    ) -> Result<Response> {
        let url = self.url(&[ty.name(), Key::parse(key)?.as_str()]);
        self.send(Precondition::apply(condition, self.http.delete(url)))
            .await
    }

    // ----- int ------------------------------------------------------------

    /// The `int` (`i32`) value of `key`, or `None` when absent.
    pub async fn int_get(&self, key: &str) -> Result<Option<i32>> {
        match self.get(ValueType::Int, key).await? {
            Some(Value::Int(v)) => Ok(Some(v)),
            other => unexpected(ValueType::Int, other),
        }
    }

    /// Stores an `int` value.
    pub async fn int_put(&self, key: &str, value: i32) -> Result<()> {
        self.put(key, &Value::Int(value)).await
    }

    /// Removes an `int` key; `true` when it existed.
    pub async fn int_delete(&self, key: &str) -> Result<bool> {
        self.delete(ValueType::Int, key).await
    }

    /// `POST /int/{key}/incr`: adds `by` (which may be negative) to an `int`
    /// key, an absent key counting as 0, and returns the value **after**
    /// the increment.
    ///
    /// An increment that would overflow `i32` changes nothing and fails
    /// with a 409 ([`Error::is_conflict`]).
    pub async fn int_incr(&self, key: &str, by: i32) -> Result<i32> {
        let url = self.url(&["int", Key::parse(key)?.as_str(), "incr"]);
        let req = self
            .http
            .post(url)
            .header(CONTENT_TYPE, TEXT)
            .body(by.to_string());
        let body = self.send(req).await?.bytes().await?;
        parse_int(&body).map_err(|e| Error::Decode(format!("increment result: {e}")))
    }

    // ----- uint -----------------------------------------------------------

    /// The `uint` (`u32`) value of `key`, or `None` when absent.
    pub async fn uint_get(&self, key: &str) -> Result<Option<u32>> {
        match self.get(ValueType::Uint, key).await? {
            Some(Value::Uint(v)) => Ok(Some(v)),
            other => unexpected(ValueType::Uint, other),
        }
    }

    /// Stores a `uint` value.
    pub async fn uint_put(&self, key: &str, value: u32) -> Result<()> {
        self.put(key, &Value::Uint(value)).await
    }

    /// Removes a `uint` key; `true` when it existed.
    pub async fn uint_delete(&self, key: &str) -> Result<bool> {
        self.delete(ValueType::Uint, key).await
    }

    // ----- float ----------------------------------------------------------

    /// The `float` (`f32`) value of `key`, or `None` when absent. The value
    /// read back has the same bits as the one stored.
    pub async fn float_get(&self, key: &str) -> Result<Option<f32>> {
        match self.get(ValueType::Float, key).await? {
            Some(Value::Float(v)) => Ok(Some(v)),
            other => unexpected(ValueType::Float, other),
        }
    }

    /// Stores a `float` value. NaN and infinities are refused with
    /// [`Error::InvalidValue`] before anything is sent.
    pub async fn float_put(&self, key: &str, value: f32) -> Result<()> {
        self.put(key, &Value::Float(value)).await
    }

    /// Removes a `float` key; `true` when it existed.
    pub async fn float_delete(&self, key: &str) -> Result<bool> {
        self.delete(ValueType::Float, key).await
    }

    // ----- str ------------------------------------------------------------

    /// The `str` value of `key`, exactly as stored, or `None` when absent.
    pub async fn str_get(&self, key: &str) -> Result<Option<String>> {
        match self.get(ValueType::Str, key).await? {
            Some(Value::Str(v)) => Ok(Some(v)),
            other => unexpected(ValueType::Str, other),
        }
    }

    /// Stores a `str` value (any UTF-8 text, the empty string included).
    pub async fn str_put(&self, key: &str, value: &str) -> Result<()> {
        self.put(key, &Value::Str(value.to_owned())).await
    }

    /// Removes a `str` key; `true` when it existed.
    pub async fn str_delete(&self, key: &str) -> Result<bool> {
        self.delete(ValueType::Str, key).await
    }

    // ----- map ------------------------------------------------------------

    /// The `map` value of `key` (a [`MapValue`], a `BTreeMap` of string to
    /// string, so that it iterates in the server's sorted order), or `None`
    /// when absent.
    pub async fn map_get(&self, key: &str) -> Result<Option<MapValue>> {
        match self.get(ValueType::Map, key).await? {
            Some(Value::Map(v)) => Ok(Some(v)),
            other => unexpected(ValueType::Map, other),
        }
    }

    /// Stores a whole `map` value, replacing every field.
    pub async fn map_put(&self, key: &str, value: &MapValue) -> Result<()> {
        self.put(key, &Value::Map(value.clone())).await
    }

    /// Removes a `map` key with all its fields; `true` when it existed.
    pub async fn map_delete(&self, key: &str) -> Result<bool> {
        self.delete(ValueType::Map, key).await
    }

    /// `GET /map/{key}/{field}`: one field's value, or `None` when the map
    /// or the field is absent. Any field name works except `""`, `"."` and
    /// `".."`, which cannot be a path segment ([`Error::InvalidArgument`]).
    pub async fn map_field_get(&self, key: &str, field: &str) -> Result<Option<String>> {
        let url = self.member_url(ValueType::Map, key, field)?;
        match self.send_found(self.http.get(url)).await? {
            Some(resp) => text(resp).await.map(Some),
            None => Ok(None),
        }
    }

    /// `PUT /map/{key}/{field}`: sets one field, creating the map when
    /// absent.
    pub async fn map_field_put(&self, key: &str, field: &str, value: &str) -> Result<()> {
        self.map_field_put_sent(key, field, value, None)
            .await
            .map(drop)
    }

    /// `PUT /map/{key}/{field}` only if `condition` holds on the map key.
    pub async fn map_field_put_if(
        &self,
        key: &str,
        field: &str,
        value: &str,
        condition: Precondition,
    ) -> Result<Written> {
        let resp = self
            .map_field_put_sent(key, field, value, Some(condition))
            .await?;
        Written::of(&resp, true)
    }

    async fn map_field_put_sent(
        &self,
        key: &str,
        field: &str,
        value: &str,
        condition: Option<Precondition>,
    ) -> Result<Response> {
        let url = self.member_url(ValueType::Map, key, field)?;
        let req = self
            .http
            .put(url)
            .header(CONTENT_TYPE, TEXT)
            .body(value.to_owned());
        self.send(Precondition::apply(condition, req)).await
    }

    /// `DELETE /map/{key}/{field}`: removes one field; `true` when it
    /// existed. A map left without fields stays, empty.
    pub async fn map_field_delete(&self, key: &str, field: &str) -> Result<bool> {
        let resp = self.map_field_delete_sent(key, field, None).await?;
        Ok(flag(&resp, DELETED))
    }

    /// `DELETE /map/{key}/{field}` only if `condition` holds on the map
    /// key; `changed` says whether the field existed.
    pub async fn map_field_delete_if(
        &self,
        key: &str,
        field: &str,
        condition: Precondition,
    ) -> Result<Written> {
        let resp = self
            .map_field_delete_sent(key, field, Some(condition))
            .await?;
        Written::of(&resp, flag(&resp, DELETED))
    }

    async fn map_field_delete_sent(
        &self,
        key: &str,
        field: &str,
        condition: Option<Precondition>,
    ) -> Result<Response> {
        let url = self.member_url(ValueType::Map, key, field)?;
        self.send(Precondition::apply(condition, self.http.delete(url)))
            .await
    }

    // ----- set ------------------------------------------------------------

    /// The `set` value of `key` (sorted), or `None` when absent.
    pub async fn set_get(&self, key: &str) -> Result<Option<SetValue>> {
        match self.get(ValueType::Set, key).await? {
            Some(Value::Set(v)) => Ok(Some(v)),
            other => unexpected(ValueType::Set, other),
        }
    }

    /// Stores a whole `set` value, replacing every member.
    pub async fn set_put(&self, key: &str, value: &SetValue) -> Result<()> {
        self.put(key, &Value::Set(value.clone())).await
    }

    /// Removes a `set` key with all its members; `true` when it existed.
    pub async fn set_delete(&self, key: &str) -> Result<bool> {
        self.delete(ValueType::Set, key).await
    }

    /// `GET /set/{key}/{member}`: whether `member` is in the set; `false`
    /// also when the set is absent. Any member works except `""`, `"."` and
    /// `".."` ([`Error::InvalidArgument`]).
    pub async fn set_contains(&self, key: &str, member: &str) -> Result<bool> {
        let url = self.member_url(ValueType::Set, key, member)?;
        Ok(self.send_found(self.http.get(url)).await?.is_some())
    }

    /// `PUT /set/{key}/{member}`: adds a member, creating the set when
    /// absent; `true` when it was not there before.
    pub async fn set_add(&self, key: &str, member: &str) -> Result<bool> {
        let resp = self.set_member_sent(key, member, true, None).await?;
        Ok(flag(&resp, ADDED))
    }

    /// `PUT /set/{key}/{member}` only if `condition` holds on the set key;
    /// `changed` says whether the member was new.
    pub async fn set_add_if(
        &self,
        key: &str,
        member: &str,
        condition: Precondition,
    ) -> Result<Written> {
        let resp = self
            .set_member_sent(key, member, true, Some(condition))
            .await?;
        Written::of(&resp, flag(&resp, ADDED))
    }

    /// `DELETE /set/{key}/{member}`: removes a member; `true` when it was
    /// there.
    pub async fn set_remove(&self, key: &str, member: &str) -> Result<bool> {
        let resp = self.set_member_sent(key, member, false, None).await?;
        Ok(flag(&resp, DELETED))
    }

    /// `DELETE /set/{key}/{member}` only if `condition` holds on the set
    /// key; `changed` says whether the member was there.
    pub async fn set_remove_if(
        &self,
        key: &str,
        member: &str,
        condition: Precondition,
    ) -> Result<Written> {
        let resp = self
            .set_member_sent(key, member, false, Some(condition))
            .await?;
        Written::of(&resp, flag(&resp, DELETED))
    }

    /// Adds (`present`) or removes `member`.
    async fn set_member_sent(
        &self,
        key: &str,
        member: &str,
        present: bool,
        condition: Option<Precondition>,
    ) -> Result<Response> {
        let url = self.member_url(ValueType::Set, key, member)?;
        let req = if present {
            self.http.put(url)
        } else {
            self.http.delete(url)
        };
        self.send(Precondition::apply(condition, req)).await
    }

    // ----- keys -----------------------------------------------------------

    /// `GET /keys/{type}`: the keys of type `ty`, sorted, that start with
    /// `prefix` (default: all) and sort after `after` (default: from the
    /// first), at most `limit` of them (default 1000; over 10000 is a 400).
    ///
    /// To page through every key, use [`Client::keys_page`] or
    /// [`Client::all_keys`].
    pub async fn keys(
        &self,
        ty: ValueType,
        prefix: Option<&str>,
        after: Option<&str>,
        limit: Option<usize>,
    ) -> Result<Vec<String>> {
        Ok(self.keys_page(ty, prefix, after, limit).await?.keys)
    }

    /// `GET /keys/{type}`, as [`Client::keys`], with what the answer says
    /// of the next page: whether there is one and where it starts.
    pub async fn keys_page(
        &self,
        ty: ValueType,
        prefix: Option<&str>,
        after: Option<&str>,
        limit: Option<usize>,
    ) -> Result<Page> {
        let mut url = self.url(&["keys", ty.name()]);
        if prefix.is_some() || after.is_some() || limit.is_some() {
            let mut query = url.query_pairs_mut();
            if let Some(p) = prefix {
                query.append_pair("prefix", p);
            }
            if let Some(a) = after {
                query.append_pair("after", a);
            }
            if let Some(n) = limit {
                query.append_pair("limit", &n.to_string());
            }
        }
        let resp = self.send(self.http.get(url)).await?;
        // A server that does not page answers every key at once.
        let last = resp
            .headers()
            .get(LAST_PAGE)
            .is_none_or(|v| v.as_bytes().eq_ignore_ascii_case(b"true"));
        let next_after = match resp.headers().get(NEXT_AFTER) {
            Some(v) => Some(
                v.to_str()
                    .map_err(|_| Error::Decode(format!("{NEXT_AFTER} is not ASCII")))?
                    .to_owned(),
            ),
            None => None,
        };
        if !last && next_after.is_none() {
            return Err(Error::Decode(format!(
                "a page that is not the last must say {NEXT_AFTER}"
            )));
        }
        let body = resp.bytes().await?;
        let keys = serde_json::from_slice(&body).map_err(|e| {
            Error::Decode(format!(
                "key list must be a JSON array of strings ({e}): {}",
                quote(&body)
            ))
        })?;
        Ok(Page {
            keys,
            last,
            next_after,
        })
    }

    /// Every key of type `ty` that starts with `prefix`, sorted, page by
    /// page (the server's default page size) until the server says the
    /// page is the last. Pages are read at different revisions: a key
    /// written or deleted meanwhile may or may not be listed.
    pub async fn all_keys(&self, ty: ValueType, prefix: Option<&str>) -> Result<Vec<String>> {
        let mut keys = Vec::new();
        let mut after = None;
        loop {
            let page = self.keys_page(ty, prefix, after.as_deref(), None).await?;
            keys.extend(page.keys);
            if page.last {
                return Ok(keys);
            }
            after = page.next_after;
        }
    }

    /// `DELETE /del/{key}`: removes `key` from every type that holds it;
    /// `true` when any was removed.
    pub async fn delete_everywhere(&self, key: &str) -> Result<bool> {
        let url = self.url(&["del", Key::parse(key)?.as_str()]);
        let resp = self.send(self.http.delete(url)).await?;
        Ok(flag(&resp, DELETED))
    }

    // ----- compatibility and operations -------------------------------------

    /// `POST /echo`: `text` with the case of every letter swapped.
    pub async fn echo(&self, text_in: &str) -> Result<String> {
        let req = self
            .http
            .post(self.url(&["echo"]))
            .header(CONTENT_TYPE, TEXT)
            .body(text_in.to_owned());
        text(self.send(req).await?).await
    }

    /// `POST /hello`: a greeting naming the service and its version.
    pub async fn hello(&self) -> Result<String> {
        text(self.send(self.http.post(self.url(&["hello"]))).await?).await
    }

    /// `POST /fibo?n=N`: the `n`th Fibonacci number (F(0) = 0, F(1) = 1).
    /// The server takes `0 <= n <= 93` (the last that fits in a `u64`) and
    /// answers 400 past that ([`Error::is_bad_request`]).
    pub async fn fibo(&self, n: u32) -> Result<u64> {
        let mut url = self.url(&["fibo"]);
        url.query_pairs_mut().append_pair("n", &n.to_string());
        let answer = text(self.send(self.http.post(url)).await?).await?;
        answer
            .trim()
            .parse()
            .map_err(|_| Error::Decode(format!("fibo result must be a u64: {answer:?}")))
    }

    /// `GET /healthz`: `Ok(())` when the server serves HTTP.
    pub async fn healthz(&self) -> Result<()> {
        let resp = self.probe(self.http.get(self.url(&["healthz"]))).await?;
        checked(resp).await.map(drop)
    }

    /// `GET /readyz`: `true` once the server has replayed its log and can
    /// make writes durable; `false` while it answers 503.
    pub async fn readyz(&self) -> Result<bool> {
        let resp = self.probe(self.http.get(self.url(&["readyz"]))).await?;
        match resp.status() {
            StatusCode::OK => Ok(true),
            StatusCode::SERVICE_UNAVAILABLE => Ok(false),
            _ => Err(status_error(resp).await),
        }
    }

    // ----- plumbing -------------------------------------------------------

    /// The base URL with `segments` appended, each percent-encoded as one
    /// path segment.
    pub(crate) fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .expect("the base URL was checked to be a base when the client was built")
            .extend(segments);
        url
    }

    /// `/{type}/{key}/{member}`, for map fields and set members.
    fn member_url(&self, ty: ValueType, key: &str, member: &str) -> Result<Url> {
        let key = Key::parse(key)?;
        // URL parsing (ours and every server's) treats these as "here" and
        // "up" rather than as names, so they cannot reach the server.
        if matches!(member, "" | "." | "..") {
            let what = if ty == ValueType::Map {
                "map field"
            } else {
                "set member"
            };
            return Err(Error::InvalidArgument(format!(
                "{what} {member:?} cannot be sent as a path segment"
            )));
        }
        Ok(self.url(&[ty.name(), key.as_str(), member]))
    }

    /// Sends `req`; an error status becomes [`Error::Status`].
    pub(crate) async fn send(&self, req: RequestBuilder) -> Result<Response> {
        checked(self.exchange(req).await?).await
    }

    /// Sends `req` with the token, following a follower's redirects, and
    /// with read-your-writes: a read names the revision of the client's
    /// writes, a write's answer moves that revision on.
    async fn exchange(&self, req: RequestBuilder) -> Result<Response> {
        let mut req = req.build()?;
        self.session.before(&mut req);
        let method = req.method().clone();
        let resp = crate::redirect::send(&self.http, req, self.token.as_ref()).await?;
        self.session.after(&method, &resp);
        Ok(resp)
    }

    /// Sends a health probe, which asks whether this server serves,
    /// whatever revision it is at: without read-your-writes.
    async fn probe(&self, req: RequestBuilder) -> Result<Response> {
        crate::redirect::send(&self.http, req.build()?, self.token.as_ref()).await
    }

    /// Like [`Client::send`], with the API's 404 meaning "absent" as `None`.
    /// Only a 404 in the API's error format counts: one from something that
    /// is not a KVS server (a wrong base URL) stays an error.
    pub(crate) async fn send_found(&self, req: RequestBuilder) -> Result<Option<Response>> {
        let resp = self.exchange(req).await?;
        if resp.status() == StatusCode::NOT_FOUND && is_problem(&resp) {
            Ok(None)
        } else if resp.status().is_success() {
            Ok(Some(resp))
        } else {
            Err(status_error(resp).await)
        }
    }
}

/// `resp` if it is a success; an error status becomes [`Error::Status`].
async fn checked(resp: Response) -> Result<Response> {
    if resp.status().is_success() {
        Ok(resp)
    } else {
        Err(status_error(resp).await)
    }
}

/// Whether the answer carries `name: true`.
pub(crate) fn flag(resp: &Response, name: &str) -> bool {
    resp.headers()
        .get(name)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"true"))
}

fn is_problem(resp: &Response) -> bool {
    resp.headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with(PROBLEM_JSON))
}

/// The value of type `ty` that the body of `resp` renders.
pub(crate) async fn value_of(ty: ValueType, resp: Response) -> Result<Value> {
    let body = resp.bytes().await?;
    Value::parse(ty, &body).map_err(|e| Error::Decode(format!("{e}")))
}

/// A text body, which must be UTF-8.
async fn text(resp: Response) -> Result<String> {
    let body = resp.bytes().await?;
    String::from_utf8(body.to_vec())
        .map_err(|_| Error::Decode(format!("body is not UTF-8: {}", quote(&body))))
}

/// Refuses a value the server would refuse: a float whose text does not
/// parse back to a finite `f32` (the server's own rule).
pub(crate) fn check_value(value: &Value) -> Result<()> {
    if value.value_type() == ValueType::Float {
        Value::parse(ValueType::Float, &value.render()).map_err(Error::InvalidValue)?;
    }
    Ok(())
}

/// A body shortened for an error message.
pub(crate) fn quote(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    match text.char_indices().nth(QUOTE_LIMIT) {
        Some((cut, _)) => format!("{:?}…", &text[..cut]),
        None => format!("{text:?}"),
    }
}

/// [`Error::Status`] from an error answer: the `detail` of its problem JSON
/// (or the start of its body), and its `Retry-After` in seconds; a 504 is
/// [`Error::OutcomeUnknown`].
pub(crate) async fn status_error(resp: Response) -> Error {
    let status = resp.status();
    let retry_after = resp
        .headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.trim().parse().ok())
        .map(Duration::from_secs);
    let body = resp.bytes().await.unwrap_or_default();
    let problem = serde_json::from_slice::<serde_json::Value>(&body).ok();
    let member = |name: &str| problem.as_ref().and_then(|p| p.get(name));
    let detail = member("detail")
        .and_then(|d| d.as_str().map(str::to_owned))
        .unwrap_or_else(|| {
            if body.is_empty() {
                status.canonical_reason().unwrap_or("error").to_owned()
            } else {
                quote(&body)
            }
        });
    if status == StatusCode::GATEWAY_TIMEOUT {
        return Error::OutcomeUnknown { detail };
    }
    if status == StatusCode::PRECONDITION_FAILED {
        let current = member("revision").and_then(serde_json::Value::as_u64);
        return Error::PreconditionFailed { current, detail };
    }
    if status == StatusCode::GONE
        && let Some(oldest) = member("oldest").and_then(serde_json::Value::as_u64)
    {
        return Error::Compacted { oldest, detail };
    }
    Error::Status {
        status: status.as_u16(),
        detail,
        retry_after,
    }
}

/// For the typed getters: [`Client::get`] only ever returns the type it was
/// asked for, so `other` is `None`.
fn unexpected<T>(ty: ValueType, other: Option<Value>) -> Result<Option<T>> {
    match other {
        None => Ok(None),
        Some(v) => Err(Error::Decode(format!(
            "asked for a {ty} value, got a {} value",
            v.value_type()
        ))),
    }
}
