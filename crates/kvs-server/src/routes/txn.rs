//! `POST /txn`: a multi-key transaction. Its compares are checked and then
//! its `success` or its `failure` operations run, all under the locks of
//! every shard it names and at one revision ([`crate::store::Store::transact`]).
//! An operation that fails rolls back the whole transaction.
//!
//! The request is parsed and checked whole before any lock is taken; what
//! runs under the locks only looks values up and changes them.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use kvs_core::value::check_text;
use kvs_core::{Key, Value, ValueType};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::Body;
use super::openapi::responses::{
    Forbidden, OutcomeUnknown, RequestTimeout, ServiceUnavailable, TxnDone, Unauthorized,
};
use super::openapi::schemas::{Txn, TxnProblem};
use super::revision::stamped;
use super::values::{add, ttl_deadline};
use super::{AppState, based};
use crate::error::ApiError;
use crate::store::{KeyTx, Written};

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(based(routes!(txn)))
}

/// The body as it arrives: each list's items are parsed one by one, so
/// that an error names the item.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TxnJson {
    #[serde(default)]
    compare: Vec<serde_json::Value>,
    #[serde(default)]
    success: Vec<serde_json::Value>,
    #[serde(default)]
    failure: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CompareJson {
    #[serde(rename = "type")]
    ty: String,
    key: String,
    revision: Option<u64>,
    value: Option<serde_json::Value>,
    absent: Option<bool>,
}

#[derive(Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
enum OpJson {
    Put {
        #[serde(rename = "type")]
        ty: String,
        key: String,
        value: serde_json::Value,
        /// Seconds until the key expires; without it, it is permanent.
        ttl: Option<u64>,
    },
    Delete {
        #[serde(rename = "type")]
        ty: String,
        key: String,
    },
    Get {
        #[serde(rename = "type")]
        ty: String,
        key: String,
    },
    Incr {
        key: String,
        by: i32,
    },
    AddMember {
        key: String,
        member: String,
    },
    RemoveMember {
        key: String,
        member: String,
    },
    PutField {
        key: String,
        field: String,
        value: String,
    },
    DeleteField {
        key: String,
        field: String,
    },
}

/// What a compare expects of its key.
enum Expect {
    Revision(u64),
    Value(Value),
    Absent,
}

struct Compare {
    ty: ValueType,
    key: Key,
    expect: Expect,
}

impl Compare {
    fn parse(c: CompareJson) -> Result<Compare, ApiError> {
        let ty = value_type(&c.ty)?;
        let key = Key::parse(&c.key)?;
        let expect = match (c.revision, c.value, c.absent) {
            (Some(rev), None, None) => Expect::Revision(rev),
            (None, Some(v), None) => Expect::Value(Value::from_json(ty, &v)?),
            (None, None, Some(true)) => Expect::Absent,
            (None, None, Some(false)) => {
                return Err(ApiError::bad_request(
                    "absent must be true; compare the revision or the value of a key that exists",
                ));
            }
            _ => {
                return Err(ApiError::bad_request(
                    "a compare needs exactly one of revision, value and absent",
                ));
            }
        };
        Ok(Compare { ty, key, expect })
    }

    fn holds(&self, tx: &KeyTx<'_>) -> bool {
        match &self.expect {
            Expect::Revision(rev) => tx.revision(self.ty) == Some(*rev),
            Expect::Value(v) => tx.get(self.ty).is_some_and(|got| got.to_value() == *v),
            Expect::Absent => tx.get(self.ty).is_none(),
        }
    }
}

enum Op {
    /// Stores a value, to expire at the deadline, if any.
    Put(Value, Option<u64>),
    Delete(ValueType),
    Get(ValueType),
    Incr(i32),
    /// Adds `member` to a set, or removes it (`!present`).
    Member {
        member: String,
        present: bool,
    },
    /// Sets `field` of a map, or removes it (`None`).
    Field {
        field: String,
        value: Option<String>,
    },
}

struct Step {
    key: Key,
    op: Op,
}

impl Step {
    fn parse(op: OpJson) -> Result<Step, ApiError> {
        let (key, op) = match op {
            OpJson::Put {
                ty,
                key,
                value,
                ttl,
            } => {
                let value = Value::from_json(value_type(&ty)?, &value)?;
                (key, Op::Put(value, ttl.map(ttl_deadline).transpose()?))
            }
            OpJson::Delete { ty, key } => (key, Op::Delete(value_type(&ty)?)),
            OpJson::Get { ty, key } => (key, Op::Get(value_type(&ty)?)),
            OpJson::Incr { key, by } => (key, Op::Incr(by)),
            OpJson::AddMember { key, member } => {
                check_text("a set member", &member)?;
                let present = true;
                (key, Op::Member { member, present })
            }
            OpJson::RemoveMember { key, member } => {
                let present = false;
                (key, Op::Member { member, present })
            }
            OpJson::PutField { key, field, value } => {
                check_text("a map field", &field)?;
                check_text("a map value", &value)?;
                let value = Some(value);
                (key, Op::Field { field, value })
            }
            OpJson::DeleteField { key, field } => {
                let value = None;
                (key, Op::Field { field, value })
            }
        };
        let key = Key::parse(&key)?;
        Ok(Step { key, op })
    }

    fn run(&self, tx: &mut KeyTx<'_>) -> Result<Outcome, ApiError> {
        Ok(match &self.op {
            Op::Put(value, at_ms) => {
                tx.put(value.clone(), *at_ms)?;
                Outcome::Put
            }
            Op::Delete(ty) => Outcome::Deleted(tx.delete(*ty)),
            Op::Get(ty) => {
                let revision = if tx.changed(*ty) {
                    None
                } else {
                    tx.revision(*ty)
                };
                Outcome::Got(tx.get(*ty).map(|v| (v.to_value(), revision)))
            }
            Op::Incr(by) => Outcome::Incr(add(tx, *by)?.1),
            Op::Member { member, present } => Outcome::Changed(tx.set_member(member, *present)?),
            Op::Field { field, value } => Outcome::Changed(tx.map_field(field, value.clone())?),
        })
    }

    /// The key and type a `get` reads, for read auditing.
    fn read(&self) -> Option<(ValueType, &Key)> {
        match self.op {
            Op::Get(ty) => Some((ty, &self.key)),
            _ => None,
        }
    }
}

/// What an operation did.
enum Outcome {
    Put,
    Deleted(bool),
    /// The value and its revision (`None`: changed by this transaction, so
    /// at its revision), or nothing.
    Got(Option<(Value, Option<u64>)>),
    Incr(i32),
    Changed(bool),
}

impl Outcome {
    /// Its JSON form, for a transaction at `revision`.
    fn to_json(&self, revision: u64) -> serde_json::Value {
        match self {
            Outcome::Put => json!({ "revision": revision }),
            Outcome::Deleted(deleted) => json!({ "deleted": deleted }),
            Outcome::Got(Some((value, rev))) => {
                json!({ "value": value.to_json(), "revision": rev.unwrap_or(revision) })
            }
            Outcome::Got(None) => json!({ "absent": true }),
            Outcome::Incr(after) => json!({ "value": after }),
            Outcome::Changed(changed) => json!({ "changed": changed }),
        }
    }
}

/// A type named in the body; an unknown one is the client's error (400),
/// not a missing resource as in a path.
fn value_type(name: &str) -> Result<ValueType, ApiError> {
    name.parse()
        .map_err(|e: kvs_core::ValueError| ApiError::bad_request(e.to_string()))
}

/// The problem `e`, raised by item `index` of `list`, naming it.
fn at(e: ApiError, list: &'static str, index: usize) -> ApiError {
    e.within(&format!("{list}[{index}]"))
        .with("list", list.into())
        .with("index", index.into())
}

/// Parses every item of `list` with `parse`.
fn items<J: DeserializeOwned, T>(
    list: &'static str,
    items: Vec<serde_json::Value>,
    parse: impl Fn(J) -> Result<T, ApiError>,
) -> Result<Vec<T>, ApiError> {
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            serde_json::from_value(item)
                .map_err(|e| ApiError::bad_request(e.to_string()))
                .and_then(&parse)
                .map_err(|e| at(e, list, i))
        })
        .collect()
}

#[utoipa::path(
    post,
    path = "/txn",
    operation_id = "transaction",
    tag = "transactions",
    summary = "Run a multi-key transaction: compares, then the success or the failure operations",
    description = "All compares hold: the `success` operations run, else the `failure` ones. The transaction locks every key it names while it runs, is isolated from other requests, and all of its changes get one revision, the answer's `revision`, its `KVS-Revision` header and every changed key's `ETag`. An operation that fails (413 over the value limits, 409 on an overflowing `incr`) rolls back the whole transaction; the problem's `list` and `index` name it. A transaction that changes nothing is a consistent read of its keys and shows nothing that is not durable. At most `--max-txn-ops` (default 128) compares and operations in all.",
    request_body(
        content((Txn = "application/json", example = json!({
            "compare": [
                {"type": "int", "key": "a", "revision": 12},
                {"type": "str", "key": "b", "absent": true},
                {"type": "int", "key": "c", "value": 5}
            ],
            "success": [
                {"op": "put", "type": "int", "key": "a", "value": 13},
                {"op": "delete", "type": "map", "key": "m"},
                {"op": "get", "type": "str", "key": "b"}
            ],
            "failure": [{"op": "get", "type": "int", "key": "a"}]
        })))
    ),
    responses(
        (status = 200, response = inline(TxnDone)),
        (status = 400, description = "Not such a transaction (malformed JSON, an unknown op, field or type, a missing field, a value not of its type, a bad key, a compare without exactly one of `revision`, `value`, `absent`); `list` and `index` name the item. Nothing ran.", body = TxnProblem, content_type = "application/problem+json"),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 408, response = RequestTimeout),
        (status = 409, description = "An `incr` would overflow a 32-bit integer; `list` and `index` name it. Nothing was changed.", body = TxnProblem, content_type = "application/problem+json"),
        (status = 413, description = "More than `--max-txn-ops` compares and operations, a body over `--max-body-bytes`, or an operation that would put a value over `--max-value-bytes` or `--max-entries` (named by `list` and `index`). Nothing was changed.", body = TxnProblem, content_type = "application/problem+json"),
        (status = 503, response = ServiceUnavailable),
        (status = 504, response = OutcomeUnknown),
    )
)]
async fn txn(State(s): State<AppState>, Body(body): Body) -> Result<Response, ApiError> {
    let body: TxnJson = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("the transaction is not valid: {e}")))?;
    let count = body.compare.len() + body.success.len() + body.failure.len();
    if count > s.max_txn_ops {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the transaction has {count} compares and operations; at most {} are taken (--max-txn-ops)",
                s.max_txn_ops
            ),
        ));
    }
    let compares = items("compare", body.compare, Compare::parse)?;
    let success = items("success", body.success, Step::parse)?;
    let failure = items("failure", body.failure, Step::parse)?;
    let keys: Vec<&Key> = (compares.iter().map(|c| &c.key))
        .chain(success.iter().chain(&failure).map(|s| &s.key))
        .collect();
    let written = s
        .store
        .transact(&keys, |tx| {
            let succeeded = compares.iter().all(|c| c.holds(&tx.at(&c.key)));
            let (list, steps) = match succeeded {
                true => ("success", &success),
                false => ("failure", &failure),
            };
            let outcomes = steps
                .iter()
                .enumerate()
                .map(|(i, step)| step.run(&mut tx.at(&step.key)).map_err(|e| at(e, list, i)))
                .collect::<Result<Vec<_>, _>>()?;
            Ok::<_, ApiError>((succeeded, steps, outcomes))
        })
        .await?;
    let Written {
        out: (succeeded, steps, outcomes),
        revision,
        ..
    } = written;
    for (ty, key) in steps.iter().filter_map(Step::read) {
        s.store.audit_read(ty, key);
    }
    let results: Vec<_> = outcomes.iter().map(|o| o.to_json(revision)).collect();
    let answer = json!({ "succeeded": succeeded, "revision": revision, "results": results });
    Ok(stamped(Json(answer).into_response(), revision, None))
}
