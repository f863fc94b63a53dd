//! Reading request bodies and records that must be JSON objects.

use serde::Deserialize;
use serde_json::value::RawValue;

const NOT_AN_OBJECT: &str = "not a JSON object";

/// Parses `bytes` as a JSON object into `T`. Serde would also read an array into a
/// struct, field by field; requests and records must be objects, so arrays are refused.
pub fn parse_object<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, String> {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') {
        return Err(
            match serde_json::from_slice::<serde::de::IgnoredAny>(bytes) {
                Ok(_) => NOT_AN_OBJECT.to_owned(),
                Err(e) => format!("not valid JSON: {e}"),
            },
        );
    }
    serde_json::from_slice(bytes).map_err(describe)
}

/// Parses one item of a batch, JSON already, as an object into `T`: from text, whose
/// UTF-8 is known to be valid, where [`parse_object`] would check it again.
pub fn parse_item<'a, T: Deserialize<'a>>(raw: &'a RawValue) -> Result<T, String> {
    if !raw.get().starts_with('{') {
        return Err(NOT_AN_OBJECT.to_owned());
    }
    serde_json::from_str(raw.get()).map_err(describe)
}

fn describe(e: serde_json::Error) -> String {
    match e.classify() {
        // Field values are read leniently, so what is left is e.g. a key given twice.
        serde_json::error::Category::Data => format!("not a valid JSON object: {e}"),
        _ => format!("not valid JSON: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize, Debug)]
    struct Two {
        #[allow(dead_code)]
        a: Option<i64>,
    }

    #[test]
    fn items_of_a_batch_are_objects() {
        let item = |json: &str| -> Box<RawValue> { serde_json::from_str(json).unwrap() };
        assert!(parse_item::<Two>(&item(r#"{"a":1}"#)).is_ok());
        assert_eq!(parse_item::<Two>(&item("[1]")).unwrap_err(), NOT_AN_OBJECT);
        assert!(parse_item::<Two>(&item(r#"{"a":1,"a":2}"#))
            .unwrap_err()
            .contains("duplicate field `a`"));
    }

    #[test]
    fn only_objects_pass() {
        assert!(parse_object::<Two>(br#" {"a":1}"#).is_ok());
        assert_eq!(parse_object::<Two>(b"[1]").unwrap_err(), NOT_AN_OBJECT);
        assert_eq!(parse_object::<Two>(b"7").unwrap_err(), NOT_AN_OBJECT);
        assert!(parse_object::<Two>(b"{")
            .unwrap_err()
            .starts_with("not valid JSON"));
        assert!(parse_object::<Two>(b"[1")
            .unwrap_err()
            .starts_with("not valid JSON"));
        assert!(parse_object::<Two>(br#"{"a":1,"a":2}"#)
            .unwrap_err()
            .contains("duplicate field `a`"));
    }
}
