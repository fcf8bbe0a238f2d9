//! Any request body and value type: `Value::parse` answers a value or an
//! error, never panics; a value renders to a body that parses back to the
//! same value (floats by bits), and strings keep their bytes exactly.
#![no_main]

use kvs_core::{Value, ValueType};
use libfuzzer_sys::fuzz_target;

fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Float(x), Value::Float(y)) => x.to_bits() == y.to_bits(),
        _ => a == b,
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&ty, body)) = data.split_first() else {
        return;
    };
    let ty = ValueType::ALL[ty as usize % ValueType::ALL.len()];
    let Ok(value) = Value::parse(ty, body) else {
        return;
    };
    assert_eq!(value.value_type(), ty);
    if let Value::Float(f) = value {
        assert!(f.is_finite(), "{body:?} parsed as a non-finite float");
    }
    let rendered = value.render();
    let again = Value::parse(ty, &rendered).unwrap_or_else(|e| {
        panic!(
            "{value:?} renders as {:?}, which does not parse: {e}",
            String::from_utf8_lossy(&rendered)
        )
    });
    assert!(
        same(&value, &again),
        "{value:?} renders as {:?} and parses back as {again:?}",
        String::from_utf8_lossy(&rendered)
    );
    assert_eq!(rendered, again.render(), "rendering is not stable");
    if ty == ValueType::Str {
        assert_eq!(rendered, body);
    }
});
