//! The six value types, and how each is written as text or JSON on the wire.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

/// A map value: string fields to string values, kept sorted so that output
/// is stable.
pub type MapValue = BTreeMap<String, String>;
/// A set value: kept sorted, as the API returns it.
pub type SetValue = BTreeSet<String>;

/// [`Value::data_len`] of a map.
pub fn map_data_len(m: &MapValue) -> usize {
    m.iter().map(|(k, v)| k.len() + v.len()).sum()
}

/// [`Value::data_len`] of a set.
pub fn set_data_len(s: &SetValue) -> usize {
    s.iter().map(String::len).sum()
}

/// The type of a value; each type is a namespace of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ValueType {
    Int,
    Uint,
    Float,
    Str,
    Map,
    Set,
}

impl ValueType {
    pub const ALL: [ValueType; 6] = [
        ValueType::Int,
        ValueType::Uint,
        ValueType::Float,
        ValueType::Str,
        ValueType::Map,
        ValueType::Set,
    ];

    /// The name used in routes (`/int/{key}`) and metrics.
    pub fn name(self) -> &'static str {
        match self {
            ValueType::Int => "int",
            ValueType::Uint => "uint",
            ValueType::Float => "float",
            ValueType::Str => "str",
            ValueType::Map => "map",
            ValueType::Set => "set",
        }
    }

    /// Position in [`ValueType::ALL`], and the `StorageType` number of the
    /// gRPC contract.
    pub fn index(self) -> usize {
        self as usize
    }

    pub fn from_index(i: usize) -> Option<ValueType> {
        ValueType::ALL.get(i).copied()
    }
}

impl FromStr for ValueType {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<ValueType, ValueError> {
        ValueType::ALL
            .into_iter()
            .find(|t| t.name() == s)
            .ok_or_else(|| ValueError::UnknownType(s.to_owned()))
    }
}

impl fmt::Display for ValueType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A stored value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Int(i32),
    Uint(u32),
    Float(f32),
    Str(String),
    Map(MapValue),
    Set(SetValue),
}

/// Why a request body is not a value of the type asked for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    #[error("unknown value type {0:?}; expected one of int, uint, float, str, map, set")]
    UnknownType(String),
    #[error("value is not valid UTF-8")]
    NotUtf8,
    #[error("{ty} value must be {expected}; got {got:?}")]
    BadNumber {
        ty: ValueType,
        expected: &'static str,
        got: String,
    },
    #[error("float value must be finite; got {0:?}")]
    NotFinite(String),
    #[error("map value must be a JSON object of string to string: {0}")]
    BadMap(String),
    #[error("set value must be a JSON array of strings: {0}")]
    BadSet(String),
    #[error("{0} may not contain the NUL character (U+0000): PostgreSQL text cannot hold it")]
    Nul(&'static str),
}

/// Refuses text that a log backend cannot keep: PostgreSQL's `text` refuses
/// U+0000, and one such value would fail the whole batch it is committed in.
pub fn check_text(what: &'static str, text: &str) -> Result<(), ValueError> {
    if text.contains('\0') {
        return Err(ValueError::Nul(what));
    }
    Ok(())
}

/// The longest piece of a rejected body quoted back in an error message.
const QUOTE_LIMIT: usize = 64;

fn quote(s: &str) -> String {
    match s.char_indices().nth(QUOTE_LIMIT) {
        Some((cut, _)) => format!("{}…", &s[..cut]),
        None => s.to_owned(),
    }
}

fn parse_number<T: FromStr>(
    ty: ValueType,
    expected: &'static str,
    body: &[u8],
) -> Result<T, ValueError> {
    let text = std::str::from_utf8(body).map_err(|_| ValueError::NotUtf8)?;
    // Clients commonly send a trailing newline (`echo 5 | curl -d @-`).
    let trimmed = text.trim_ascii();
    trimmed.parse().map_err(|_| ValueError::BadNumber {
        ty,
        expected,
        got: quote(trimmed),
    })
}

/// Parses a decimal `i32`, as the int routes and increments take it.
pub fn parse_int(body: &[u8]) -> Result<i32, ValueError> {
    parse_number(ValueType::Int, "a decimal 32-bit signed integer", body)
}

impl Value {
    pub fn value_type(&self) -> ValueType {
        match self {
            Value::Int(_) => ValueType::Int,
            Value::Uint(_) => ValueType::Uint,
            Value::Float(_) => ValueType::Float,
            Value::Str(_) => ValueType::Str,
            Value::Map(_) => ValueType::Map,
            Value::Set(_) => ValueType::Set,
        }
    }

    /// Parses a request body as a value of type `ty`.
    pub fn parse(ty: ValueType, body: &[u8]) -> Result<Value, ValueError> {
        let value = Value::parse_unchecked(ty, body)?;
        value.validate()?;
        Ok(value)
    }

    /// Whether every log backend can keep the value: floats are finite, and
    /// no text holds U+0000. What a writer sends is checked; what a log
    /// already holds is replayed as it is.
    pub fn validate(&self) -> Result<(), ValueError> {
        match self {
            Value::Float(f) if !f.is_finite() => Err(ValueError::NotFinite(quote(&f.to_string()))),
            Value::Str(s) => check_text("a string value", s),
            Value::Map(m) => m.iter().try_for_each(|(k, v)| {
                check_text("a map field", k)?;
                check_text("a map value", v)
            }),
            Value::Set(s) => s.iter().try_for_each(|m| check_text("a set member", m)),
            _ => Ok(()),
        }
    }

    fn parse_unchecked(ty: ValueType, body: &[u8]) -> Result<Value, ValueError> {
        match ty {
            ValueType::Int => parse_int(body).map(Value::Int),
            ValueType::Uint => {
                parse_number(ty, "a decimal 32-bit unsigned integer", body).map(Value::Uint)
            }
            ValueType::Float => parse_number(ty, "a decimal 32-bit float", body).map(Value::Float),
            ValueType::Str => String::from_utf8(body.to_vec())
                .map(Value::Str)
                .map_err(|_| ValueError::NotUtf8),
            ValueType::Map => serde_json::from_slice(body)
                .map(Value::Map)
                .map_err(|e| ValueError::BadMap(e.to_string())),
            ValueType::Set => serde_json::from_slice::<Vec<String>>(body)
                .map(|v| Value::Set(v.into_iter().collect()))
                .map_err(|e| ValueError::BadSet(e.to_string())),
        }
    }

    /// The response body for this value: decimal or plain text for scalars,
    /// JSON for maps and sets. Floats use the shortest text that parses back
    /// to the same `f32`.
    pub fn render(&self) -> Vec<u8> {
        match self {
            Value::Int(v) => v.to_string().into_bytes(),
            Value::Uint(v) => v.to_string().into_bytes(),
            Value::Float(v) => v.to_string().into_bytes(),
            Value::Str(s) => s.clone().into_bytes(),
            Value::Map(m) => serde_json::to_vec(m).expect("a string map always serializes"),
            Value::Set(s) => serde_json::to_vec(s).expect("a string set always serializes"),
        }
    }

    /// The value as JSON, typed: a number, a string, an object of strings
    /// or an array of strings (what a watch event or a transaction's
    /// result holds).
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Value::Int(v) => (*v).into(),
            Value::Uint(v) => (*v).into(),
            // The shortest text that reads back as the same f32, as GET
            // renders it, not the f64 nearest the f32 (0.1 not 0.100000001).
            Value::Float(v) => v
                .to_string()
                .parse()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map_or(serde_json::Value::Null, serde_json::Value::Number),
            Value::Str(s) => s.clone().into(),
            Value::Map(m) => serde_json::to_value(m).expect("a string map always serializes"),
            Value::Set(s) => serde_json::to_value(s).expect("a string set always serializes"),
        }
    }

    /// A value of type `ty` from its JSON form ([`Value::to_json`]),
    /// checked as a request body is.
    pub fn from_json(ty: ValueType, json: &serde_json::Value) -> Result<Value, ValueError> {
        let got = || quote(&json.to_string());
        let number = |expected| ValueError::BadNumber {
            ty,
            expected,
            got: got(),
        };
        let value = match ty {
            ValueType::Int => json
                .as_i64()
                .and_then(|v| i32::try_from(v).ok())
                .map(Value::Int)
                .ok_or_else(|| number("a 32-bit signed integer"))?,
            ValueType::Uint => json
                .as_u64()
                .and_then(|v| u32::try_from(v).ok())
                .map(Value::Uint)
                .ok_or_else(|| number("a 32-bit unsigned integer"))?,
            // As a request body's text would: the nearest f32.
            ValueType::Float => json
                .as_f64()
                .map(|v| Value::Float(v as f32))
                .ok_or_else(|| number("a number"))?,
            ValueType::Str => json
                .as_str()
                .map(|s| Value::Str(s.to_owned()))
                .ok_or_else(|| ValueError::BadNumber {
                    ty,
                    expected: "a JSON string",
                    got: got(),
                })?,
            ValueType::Map => serde_json::from_value(json.clone())
                .map(Value::Map)
                .map_err(|e| ValueError::BadMap(e.to_string()))?,
            ValueType::Set => serde_json::from_value::<Vec<String>>(json.clone())
                .map(|v| Value::Set(v.into_iter().collect()))
                .map_err(|e| ValueError::BadSet(e.to_string()))?,
        };
        value.validate()?;
        Ok(value)
    }

    /// The bytes of text the value holds: a string's length, the sum of a
    /// map's field and value lengths, or of a set's members; 4 for numbers.
    /// What the server's value-size limit counts.
    pub fn data_len(&self) -> usize {
        match self {
            Value::Int(_) | Value::Uint(_) | Value::Float(_) => 4,
            Value::Str(s) => s.len(),
            Value::Map(m) => map_data_len(m),
            Value::Set(s) => set_data_len(s),
        }
    }

    /// Fields of a map or members of a set; 1 for any other value.
    pub fn entries(&self) -> usize {
        match self {
            Value::Map(m) => m.len(),
            Value::Set(s) => s.len(),
            _ => 1,
        }
    }

    /// The media type of [`Value::render`]'s output.
    pub fn content_type(&self) -> &'static str {
        match self {
            Value::Map(_) | Value::Set(_) => "application/json",
            _ => "text/plain; charset=utf-8",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_survives_its_json_form_and_a_wrong_one_is_refused() {
        let values = [
            Value::Int(i32::MIN),
            Value::Uint(u32::MAX),
            Value::Float(0.1),
            Value::Str("a \"b\"".into()),
            Value::Map([("f".into(), "v".into())].into()),
            Value::Set(["x".into(), "y".into()].into()),
        ];
        for v in values {
            let back = Value::from_json(v.value_type(), &v.to_json()).unwrap();
            assert_eq!(back, v);
        }
        assert_eq!(Value::Float(0.1).to_json().to_string(), "0.1");
        let refused = [
            (ValueType::Int, serde_json::json!(1u64 << 40)),
            (ValueType::Uint, serde_json::json!(-1)),
            (ValueType::Float, serde_json::json!("1.5")),
            (ValueType::Str, serde_json::json!(5)),
            (ValueType::Map, serde_json::json!({"f": 1})),
            (ValueType::Set, serde_json::json!("x")),
            (ValueType::Str, serde_json::json!("nul\u{0}")),
        ];
        for (ty, json) in refused {
            assert!(Value::from_json(ty, &json).is_err(), "{ty} {json}");
        }
    }

    #[test]
    fn text_with_nul_and_non_finite_floats_are_refused() {
        for (ty, body, says) in [
            (ValueType::Str, "a\0b", "a string value"),
            (ValueType::Map, r#"{"f\u0000":"v"}"#, "a map field"),
            (ValueType::Map, r#"{"f":"\u0000"}"#, "a map value"),
            (ValueType::Set, r#"["ok","\u0000"]"#, "a set member"),
            (ValueType::Float, "1e39", "finite"),
            (ValueType::Float, "NaN", "finite"),
        ] {
            let e = Value::parse(ty, body.as_bytes()).unwrap_err();
            assert!(e.to_string().contains(says), "{body:?}: {e}");
        }
        assert!(Value::Float(f32::NAN).validate().is_err());
        assert!(Value::Str("a\u{1}b".into()).validate().is_ok());
    }

    #[test]
    fn data_len_and_entries_count_what_a_value_holds() {
        let map = Value::parse(ValueType::Map, br#"{"ab":"cde","f":""}"#).unwrap();
        assert_eq!((map.data_len(), map.entries()), (6, 2));
        let set = Value::parse(ValueType::Set, br#"["x","yz","x"]"#).unwrap();
        assert_eq!((set.data_len(), set.entries()), (3, 2));
        let s = Value::Str("héllo".into());
        assert_eq!((s.data_len(), s.entries()), (6, 1));
        assert_eq!(
            (Value::Int(-1).data_len(), Value::Int(-1).entries()),
            (4, 1)
        );
    }

    #[test]
    fn numbers_parse_with_surrounding_whitespace_and_reject_out_of_range() {
        assert_eq!(Value::parse(ValueType::Int, b" -7\n"), Ok(Value::Int(-7)));
        assert!(Value::parse(ValueType::Int, b"2147483648").is_err());
        assert_eq!(
            Value::parse(ValueType::Uint, b"4294967295"),
            Ok(Value::Uint(u32::MAX))
        );
        assert!(Value::parse(ValueType::Uint, b"-1").is_err());
        assert!(Value::parse(ValueType::Int, b"").is_err());
    }

    #[test]
    fn floats_must_be_finite_and_render_back_to_the_same_bits() {
        for text in ["NaN", "inf", "-inf", "1e39"] {
            assert!(
                Value::parse(ValueType::Float, text.as_bytes()).is_err(),
                "{text}"
            );
        }
        for f in [0.1f32, -3.4028235e38, 1e-45, 16777217.0] {
            let v = Value::parse(ValueType::Float, f.to_string().as_bytes()).unwrap();
            let back: f32 = String::from_utf8(v.render()).unwrap().parse().unwrap();
            assert_eq!(back.to_bits(), f.to_bits());
        }
    }

    #[test]
    fn strings_keep_their_bytes_and_must_be_utf8() {
        assert_eq!(
            Value::parse(ValueType::Str, b""),
            Ok(Value::Str(String::new()))
        );
        assert_eq!(
            Value::parse(ValueType::Str, b" a\n").unwrap().render(),
            b" a\n"
        );
        assert_eq!(
            Value::parse(ValueType::Str, b"\xff"),
            Err(ValueError::NotUtf8)
        );
    }

    #[test]
    fn maps_take_string_values_only() {
        let v = Value::parse(ValueType::Map, br#"{"b":"2","a":"1"}"#).unwrap();
        assert_eq!(v.render(), br#"{"a":"1","b":"2"}"#);
        assert!(Value::parse(ValueType::Map, br#"{"a":1}"#).is_err());
        assert!(Value::parse(ValueType::Map, b"[]").is_err());
    }

    #[test]
    fn sets_collapse_duplicates_and_render_sorted() {
        let v = Value::parse(ValueType::Set, br#"["b","a","b"]"#).unwrap();
        assert_eq!(v.render(), br#"["a","b"]"#);
        assert!(Value::parse(ValueType::Set, br#"["a",1]"#).is_err());
    }

    #[test]
    fn long_bad_input_is_quoted_shortened() {
        let err = Value::parse(ValueType::Int, "9".repeat(1000).as_bytes()).unwrap_err();
        assert!(err.to_string().len() < 200, "{err}");
    }
}
