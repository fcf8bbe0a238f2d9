//! The schemas of values, keys, problems and transactions, each a type
//! that a route's `body = ...` names and the document's components hold.

use serde_json::json;
use utoipa::openapi::schema::{
    AdditionalProperties, AllOfBuilder, AnyOfBuilder, ArrayBuilder, KnownFormat, ObjectBuilder,
    OneOfBuilder, Schema, SchemaFormat, SchemaType, Type,
};
use utoipa::openapi::{Ref, RefOr};

use crate::store::expiry::MAX_TTL_SECS;

pub(super) fn string() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String)
}

pub(super) fn integer() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::Integer)
}

fn boolean() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::Boolean)
}

fn int32() -> ObjectBuilder {
    integer().format(Some(SchemaFormat::KnownFormat(KnownFormat::Int32)))
}

/// Any JSON value; the description says which.
fn any(description: &str) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(SchemaType::AnyValue)
        .description(Some(description))
}

/// A property that may take this one value only.
fn only(value: serde_json::Value) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(SchemaType::AnyValue)
        .enum_values(Some([value]))
}

pub(super) fn to(name: &str) -> RefOr<Schema> {
    Ref::from_schema_name(name).into()
}

/// An object that takes only the properties it names.
fn closed() -> ObjectBuilder {
    ObjectBuilder::new().additional_properties(Some(AdditionalProperties::FreeForm(false)))
}

fn array_of(items: impl Into<RefOr<Schema>>) -> ArrayBuilder {
    ArrayBuilder::new().items(items.into())
}

const VALUE_AS_JSON: &str = "The value as GET renders it: a number for `int`, `uint` and `float`, a string for `str`, an object of strings for `map`, an array of strings for `set`.";

/// Declares each schema as a type named like its component, and lists
/// them all for the document's components.
macro_rules! schemas {
    ($($name:ident => $schema:expr;)*) => {
        $(
            pub(crate) struct $name;

            impl utoipa::PartialSchema for $name {
                fn schema() -> RefOr<Schema> {
                    $schema.into()
                }
            }

            impl utoipa::ToSchema for $name {
                fn name() -> std::borrow::Cow<'static, str> {
                    stringify!($name).into()
                }
            }
        )*

        pub(super) fn all() -> Vec<(String, RefOr<Schema>)> {
            vec![$((stringify!($name).to_owned(), <$name as utoipa::PartialSchema>::schema())),*]
        }
    };
}

schemas! {
    Problem => ObjectBuilder::new()
        .description(Some("An error, as RFC 9457 problem details."))
        .required("type")
        .required("title")
        .required("status")
        .required("detail")
        .property("type", string()
            .format(Some(SchemaFormat::Custom("uri-reference".to_owned())))
            .default(Some(json!("about:blank")))
            .description(Some("Problem type; `about:blank` means the status alone says it. A 504 has `urn:kvs:problem:outcome-unknown`.")))
        .property("title", string()
            .description(Some("The reason phrase of the status."))
            .examples(["Bad Request"]))
        .property("status", integer().minimum(Some(400)).maximum(Some(599)).examples([400]))
        .property("detail", string()
            .description(Some("What was wrong, in one human sentence."))
            .examples(["int value must be a decimal 32-bit signed integer: \"abc\""]));
    Key => string()
        .pattern(Some("^[0-9A-Za-z_]+$"))
        .min_length(Some(1))
        .max_length(Some(256))
        .examples(["user_42"]);
    ValueType => string()
        .enum_values(Some(["int", "uint", "float", "str", "map", "set"]))
        .description(Some("Each type is its own key namespace."));
    IntText => string()
        .pattern(Some("^-?[0-9]+$"))
        .description(Some("A decimal `i32`."))
        .examples(["-17"]);
    UintText => string()
        .pattern(Some("^[0-9]+$"))
        .description(Some("A decimal `u32`."))
        .examples(["4000000000"]);
    FloatText => string()
        .description(Some("The shortest decimal text that parses back to the same finite `f32`."))
        .examples(["1.5", "-2000"]);
    Text => string()
        .description(Some("UTF-8 text, exactly as stored (may be empty)."))
        .examples(["hello"]);
    StringMap => ObjectBuilder::new()
        .additional_properties(Some(string()))
        .examples([json!({"name": "Ada", "lang": "en"})]);
    StringSet => array_of(string())
        .description(Some("Duplicates collapse; answered sorted."))
        .examples([json!(["blue", "green", "red"])]);
    MapOrSet => OneOfBuilder::new().item(to("StringMap")).item(to("StringSet"));
    KeyList => array_of(to("Key")).description(Some("Keys in ascending byte order."));
    Txn => closed()
        .property("compare", array_of(to("TxnCompare")))
        .property("success", array_of(to("TxnOp")))
        .property("failure", array_of(to("TxnOp")));
    TxnCompare => AllOfBuilder::new()
        .description(Some("Holds when the key's last change has `revision`, or it holds `value`, or it does not exist (`absent`); exactly one of the three."))
        .item(closed()
            .required("type")
            .required("key")
            .property("type", to("ValueType"))
            .property("key", to("Key"))
            .property("revision", integer().minimum(Some(0)))
            .property("value", any(VALUE_AS_JSON))
            .property("absent", only(json!(true))))
        .item(OneOfBuilder::new()
            .item(ObjectBuilder::new().required("revision"))
            .item(ObjectBuilder::new().required("value"))
            .item(ObjectBuilder::new().required("absent")));
    TxnOp => OneOfBuilder::new()
        .item(op("put", &["type", "key", "value"])
            .property("value", any(VALUE_AS_JSON))
            .property("ttl", integer()
                .minimum(Some(1))
                .maximum(Some(MAX_TTL_SECS))
                .description(Some("Seconds until the key expires; without it the key is permanent."))))
        .item(op("delete", &["type", "key"]))
        .item(op("get", &["type", "key"]))
        .item(op("incr", &["key", "by"]).property("by", int32()))
        .item(op("add_member", &["key", "member"]).property("member", string()))
        .item(op("remove_member", &["key", "member"]).property("member", string()))
        .item(op("put_field", &["key", "field", "value"])
            .property("field", string())
            .property("value", string()))
        .item(op("delete_field", &["key", "field"]).property("field", string()));
    TxnAnswer => ObjectBuilder::new()
        .required("succeeded")
        .required("revision")
        .required("results")
        .property("succeeded", boolean().description(Some("Whether every compare held (and `success` ran).")))
        .property("revision", integer()
            .minimum(Some(0))
            .description(Some("The transaction's revision, or the store's if it changed nothing.")))
        .property("results", array_of(to("TxnResult")).description(Some("One per operation that ran, in order.")));
    TxnProblem => AllOfBuilder::new()
        .item(to("Problem"))
        .item(ObjectBuilder::new()
            .property("list", ObjectBuilder::new()
                .schema_type(SchemaType::AnyValue)
                .enum_values(Some(["compare", "success", "failure"]))
                .description(Some("The list of the item that failed.")))
            .property("index", integer().minimum(Some(0)).description(Some("Its place in the list, from 0."))));
    TxnResult => AnyOfBuilder::new()
        .description(Some("By the operation: a `get` that found the key and an `incr` both answer a `value`."))
        .item(result("put", &["revision"]).property("revision", integer()))
        .item(result("delete", &["deleted"]).property("deleted", boolean()))
        .item(result("get of a key that exists", &["value", "revision"])
            .property("value", any(VALUE_AS_JSON))
            .property("revision", integer()))
        .item(result("get of an absent key", &["absent"]).property("absent", only(json!(true))))
        .item(result("incr: the value after", &["value"]).property("value", int32()))
        .item(result("member and field operations", &["changed"]).property("changed", boolean()));
}

/// One form of a transaction's operation: its `op`, the fields it needs,
/// and its key and type (when it has one).
fn op(name: &str, required: &[&str]) -> ObjectBuilder {
    let mut schema = closed().required("op").property("op", only(json!(name)));
    for field in required {
        schema = schema.required(*field);
    }
    if required.contains(&"type") {
        schema = schema.property("type", to("ValueType"));
    }
    schema.property("key", to("Key"))
}

/// One form of an operation's result.
fn result(what: &str, required: &[&str]) -> ObjectBuilder {
    required
        .iter()
        .fold(ObjectBuilder::new().description(Some(what)), |s, field| {
            s.required(*field)
        })
}

/// One event of a watch's stream.
pub(super) fn event() -> RefOr<Schema> {
    ObjectBuilder::new()
        .description(Some("One event of the stream, as OpenAPI 3.2 reads a schema of text/event-stream: its id (the revision, absent on an error event), its kind, and its data, one line of JSON."))
        .required("event")
        .required("data")
        .property("id", string().pattern(Some("^[0-9]+$")))
        .property("event", ObjectBuilder::new()
            .schema_type(SchemaType::AnyValue)
            .enum_values(Some(["put", "delete", "member", "field", "expire", "changes", "error"])))
        .property("data", string())
        .into()
}
