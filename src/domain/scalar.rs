//! Lenient JSON scalars: Fluent clients send ids and quantities as strings or numbers.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

/// Any JSON value, kept only as far as a field check needs it; a string borrows the
/// request's text where it has no escapes.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar<'a> {
    Str(Cow<'a, str>),
    Int(i64),
    /// A number that is not an integer, or an integer outside the 64-bit range.
    OtherNumber,
    Bool,
    Object,
    Array,
}

impl Scalar<'_> {
    /// The value as text when it is a string or an integer (ids arrive as either).
    pub fn as_text(&self) -> Option<Cow<'_, str>> {
        match self {
            Scalar::Str(s) => Some(Cow::Borrowed(s)),
            Scalar::Int(i) => Some(Cow::Owned(i.to_string())),
            _ => None,
        }
    }

    /// The value as a string, refusing numbers.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Scalar::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The value as an integer: a JSON integer, or a string of decimal digits like `"10"`.
    pub fn as_integer(&self) -> Option<i64> {
        match self {
            Scalar::Int(i) => Some(*i),
            Scalar::Str(s) => {
                let digits = s.strip_prefix('-').unwrap_or(s);
                if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                s.parse().ok()
            }
            _ => None,
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Scalar<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ScalarVisitor)
    }
}

struct ScalarVisitor;

impl<'de> Visitor<'de> for ScalarVisitor {
    type Value = Scalar<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Bool)
    }

    fn visit_i64<E>(self, v: i64) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Int(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Scalar<'de>, E> {
        Ok(i64::try_from(v).map_or(Scalar::OtherNumber, Scalar::Int))
    }

    fn visit_f64<E>(self, _: f64) -> Result<Scalar<'de>, E> {
        Ok(Scalar::OtherNumber)
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Str(Cow::Borrowed(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Str(Cow::Owned(v.to_owned())))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Str(Cow::Owned(v)))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Scalar<'de>, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Scalar::Object)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Scalar<'de>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Scalar::Array)
    }
}

/// Checks a required text field (string or integer, not blank, at most `max` characters).
pub fn required_text(field: &str, value: Option<&Scalar>, max: usize) -> Result<String, String> {
    present_text(field, value, max).map(Cow::into_owned)
}

fn present_text<'v>(
    field: &str,
    value: Option<&'v Scalar>,
    max: usize,
) -> Result<Cow<'v, str>, String> {
    let value = value.ok_or_else(|| format!("'{field}' is required"))?;
    match checked_text(field, value, max)? {
        text if text.trim().is_empty() => Err(format!("'{field}' must not be blank")),
        text => Ok(text),
    }
}

/// Most characters of a key (retailer, location, SKU).
pub const MAX_KEY_CHARS: usize = 255;
/// Most UTF-8 bytes of a key: three keys of this size fit in one PostgreSQL index entry
/// (at most 2704 bytes), so both backends store exactly the same keys. 255 characters of
/// any script but emoji and other 4-byte characters always fit.
pub const MAX_KEY_BYTES: usize = 765;

/// Checks a required key: text as [`required_text`], at most [`MAX_KEY_CHARS`] characters
/// and [`MAX_KEY_BYTES`] bytes.
pub fn required_key(field: &str, value: Option<&Scalar>) -> Result<String, String> {
    checked_key(field, value).map(Cow::into_owned)
}

/// [`required_key`], borrowing the key's text from `value` where it can.
pub fn checked_key<'v>(field: &str, value: Option<&'v Scalar>) -> Result<Cow<'v, str>, String> {
    let text = present_text(field, value, MAX_KEY_CHARS)?;
    if text.len() > MAX_KEY_BYTES {
        return Err(format!(
            "'{field}' must be at most {MAX_KEY_BYTES} bytes of UTF-8 (this one has {})",
            text.len()
        ));
    }
    Ok(text)
}

/// Checks an optional text field (string or integer, at most `max` characters). An empty
/// string counts as absent, so defaults and fallbacks apply.
pub fn optional_text(
    field: &str,
    value: Option<&Scalar>,
    max: usize,
) -> Result<Option<String>, String> {
    let Some(value) = value else { return Ok(None) };
    let text = checked_text(field, value, max)?;
    Ok((!text.is_empty()).then(|| text.into_owned()))
}

fn checked_text<'v>(field: &str, value: &'v Scalar, max: usize) -> Result<Cow<'v, str>, String> {
    let text = value
        .as_text()
        .ok_or_else(|| format!("'{field}' must be a string or an integer"))?;
    // At most `max` characters: no count is needed while the bytes are that few.
    if text.len() > max && text.chars().count() > max {
        return Err(format!("'{field}' must be at most {max} characters"));
    }
    // PostgreSQL text cannot hold NUL, and no identifier needs one.
    if text.contains('\0') {
        return Err(format!("'{field}' must not contain NUL characters"));
    }
    Ok(text)
}

/// Checks an optional integer field, refusing negatives unless `allow_negative`.
pub fn optional_integer(
    field: &str,
    value: Option<&Scalar>,
    allow_negative: bool,
) -> Result<Option<i64>, String> {
    let Some(value) = value else { return Ok(None) };
    let n = value
        .as_integer()
        .ok_or_else(|| format!("'{field}' must be an integer"))?;
    if n < 0 && !allow_negative {
        return Err(format!("'{field}' must not be negative"));
    }
    Ok(Some(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Scalar<'_> {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn ids_are_text_whether_string_or_number() {
        assert_eq!(parse("197").as_text().as_deref(), Some("197"));
        assert_eq!(parse("\"197\"").as_text().as_deref(), Some("197"));
        assert_eq!(parse("1.5").as_text(), None);
        assert_eq!(parse("{\"a\":[1]}"), Scalar::Object);
        assert_eq!(parse("[1,{}]"), Scalar::Array);
    }

    #[test]
    fn integers_accept_numeric_strings_only() {
        assert_eq!(parse("10").as_integer(), Some(10));
        assert_eq!(parse("\"10\"").as_integer(), Some(10));
        assert_eq!(parse("\"-3\"").as_integer(), Some(-3));
        for bad in [
            "\"10.5\"",
            "\" 10\"",
            "\"\"",
            "\"-\"",
            "\"1e3\"",
            "10.0",
            "true",
            "18446744073709551615",
        ] {
            assert_eq!(parse(bad).as_integer(), None, "{bad}");
        }
    }

    #[test]
    fn field_checks_name_the_field() {
        assert_eq!(
            required_text("skuRef", None, 255),
            Err("'skuRef' is required".into())
        );
        assert_eq!(
            required_text("skuRef", Some(&parse("\"\"")), 255),
            Err("'skuRef' must not be blank".into())
        );
        assert_eq!(
            required_text(
                "skuRef",
                Some(&parse(&format!("\"{}\"", "x".repeat(256)))),
                255
            ),
            Err("'skuRef' must be at most 255 characters".into())
        );
        assert_eq!(
            required_text("skuRef", Some(&parse("\"  \"")), 255),
            Err("'skuRef' must not be blank".into())
        );
        assert_eq!(optional_text("ref", Some(&parse("\"\"")), 255), Ok(None));
        let emoji = format!("\"{}\"", "\u{1F600}".repeat(255));
        assert_eq!(
            required_key("skuRef", Some(&parse(&emoji))),
            Err("'skuRef' must be at most 765 bytes of UTF-8 (this one has 1020)".into())
        );
        let cjk = format!("\"{}\"", "\u{4E2D}".repeat(255));
        assert_eq!(
            required_key("skuRef", Some(&parse(&cjk))).map(|k| k.len()),
            Ok(765)
        );
        assert_eq!(
            optional_text("ref", Some(&parse("\"a\\u0000b\"")), 255),
            Err("'ref' must not contain NUL characters".into())
        );
        assert_eq!(
            optional_text("ref", Some(&parse("true")), 255),
            Err("'ref' must be a string or an integer".into())
        );
        assert_eq!(
            optional_integer("qty", Some(&parse("-1")), false),
            Err("'qty' must not be negative".into())
        );
        assert_eq!(
            optional_integer("qty", Some(&parse("-1")), true),
            Ok(Some(-1))
        );
        assert_eq!(
            optional_integer("qty", Some(&parse("\"x\"")), false),
            Err("'qty' must be an integer".into())
        );
    }
}
