//! Keys: parsed once at the edge, trusted everywhere after.

use std::borrow::Borrow;
use std::fmt;

use smol_str::SmolStr;

/// The longest key, in bytes.
pub const MAX_KEY_LEN: usize = 256;

/// A key that matches `[0-9A-Za-z_]+` and is 1 to [`MAX_KEY_LEN`] bytes long.
///
/// Held inline up to 23 bytes (most keys): no allocation to make one, and
/// a table's entry holds its key's bytes, so a lookup compares them without
/// a trip to the heap.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key(SmolStr);

/// Why a string is not a key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("key must not be empty")]
    Empty,
    #[error("key is {0} bytes long; the limit is 256")]
    TooLong(usize),
    #[error("key may hold only letters, digits and '_'; found {0:?}")]
    BadChar(char),
}

impl Key {
    /// Checks `s` against the key rules.
    pub fn parse(s: &str) -> Result<Key, KeyError> {
        if s.is_empty() {
            return Err(KeyError::Empty);
        }
        if s.len() > MAX_KEY_LEN {
            return Err(KeyError::TooLong(s.len()));
        }
        if let Some(c) = s
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '_'))
        {
            return Err(KeyError::BadChar(c));
        }
        Ok(Key(SmolStr::new(s)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<&str> for Key {
    type Error = KeyError;
    fn try_from(s: &str) -> Result<Key, KeyError> {
        Key::parse(s)
    }
}

impl Borrow<str> for Key {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_letters_digits_and_underscore_up_to_256_bytes() {
        assert_eq!(Key::parse("a_Z9").unwrap().as_str(), "a_Z9");
        assert!(Key::parse(&"k".repeat(256)).is_ok());
    }

    #[test]
    fn keys_up_to_23_bytes_are_held_inline() {
        assert!(!Key::parse(&"k".repeat(23)).unwrap().0.is_heap_allocated());
        assert!(Key::parse(&"k".repeat(24)).unwrap().0.is_heap_allocated());
    }

    #[test]
    fn rejects_empty_long_and_foreign_characters() {
        assert_eq!(Key::parse(""), Err(KeyError::Empty));
        assert_eq!(Key::parse(&"k".repeat(257)), Err(KeyError::TooLong(257)));
        assert_eq!(Key::parse("a-b"), Err(KeyError::BadChar('-')));
        assert_eq!(Key::parse("é"), Err(KeyError::BadChar('é')));
    }
}
