//! Reading request bodies and records that must be JSON objects.

use serde::Deserialize;

/// Parses `bytes` as a JSON object into `T`. Serde would also read an array into a
/// struct, field by field; requests and records must be objects, so arrays are refused.
pub fn parse_object<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, String> {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    let parsed = serde_json::from_slice(bytes).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => NOT_AN_OBJECT.to_owned(),
        _ => format!("not valid JSON: {e}"),
    })?;
    if first == Some(&b'{') {
        Ok(parsed)
    } else {
        Err(NOT_AN_OBJECT.to_owned())
    }
}

const NOT_AN_OBJECT: &str = "not a JSON object";

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize, Debug)]
    struct Two {
        #[allow(dead_code)]
        a: Option<i64>,
    }

    #[test]
    fn only_objects_pass() {
        assert!(parse_object::<Two>(br#" {"a":1}"#).is_ok());
        assert_eq!(
            parse_object::<Two>(b"[1]").unwrap_err(),
            "not a JSON object"
        );
        assert_eq!(parse_object::<Two>(b"7").unwrap_err(), "not a JSON object");
        assert!(parse_object::<Two>(b"{")
            .unwrap_err()
            .starts_with("not valid JSON"));
    }
}
