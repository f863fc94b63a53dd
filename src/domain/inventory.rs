//! Inventory records: the checks each record of a batch passes before it is applied,
//! and the result each record gets.

use serde::Deserialize;
use serde_json::value::RawValue;

use super::json::parse_item;
use super::scalar::{checked_key, optional_integer, optional_text, required_key, Scalar};

pub const MAX_TEXT_CHARS: usize = 255;
pub const MAX_ATTRIBUTES_BYTES: usize = 16 * 1024;
pub const DEFAULT_TYPE: &str = "LAST_ON_HAND";

pub const CREATED: &str = "Inventory created";
pub const UPDATED: &str = "Inventory updated";

/// Result codes a record can get.
pub const CODE_OK: i32 = 200;
pub const CODE_INVALID: i32 = 400;
pub const CODE_OTHER_RETAILER: i32 = 401;
pub const CODE_FAILED: i32 = 500;

/// An InventoryPost as sent: its documented fields, and every other top-level field with
/// its value's text. Read in one pass; a documented field given twice is refused.
#[derive(Default)]
struct InventoryPostWire<'a> {
    retailer_id: Option<Scalar<'a>>,
    inventory_id: Option<Scalar<'a>>,
    sku_ref: Option<Scalar<'a>>,
    location_ref: Option<Scalar<'a>>,
    qty: Option<Scalar<'a>>,
    corrected_qty: Option<Scalar<'a>>,
    reserved_qty: Option<Scalar<'a>>,
    reference: Option<Scalar<'a>>,
    inventory_type: Option<Scalar<'a>>,
    status: Option<Scalar<'a>>,
    attributes: Option<&'a RawValue>,
    others: Vec<(String, &'a RawValue)>,
}

/// A top-level key of an InventoryPost: a documented field's index in
/// [`DOCUMENTED_FIELDS`], or another key.
enum FieldKey {
    Documented(usize),
    Other(String),
}

impl<'de> Deserialize<'de> for FieldKey {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Key;
        impl serde::de::Visitor<'_> for Key {
            type Value = FieldKey;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a field name")
            }
            fn visit_str<E: serde::de::Error>(self, key: &str) -> Result<FieldKey, E> {
                Ok(match DOCUMENTED_FIELDS.iter().position(|f| *f == key) {
                    Some(i) => FieldKey::Documented(i),
                    None => FieldKey::Other(key.to_owned()),
                })
            }
        }
        deserializer.deserialize_identifier(Key)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for InventoryPostWire<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Fields<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for Fields<'a> {
            type Value = InventoryPostWire<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an InventoryPost object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Self::Value, A::Error> {
                let mut wire = InventoryPostWire::default();
                let mut seen = [false; DOCUMENTED_FIELDS.len()];
                while let Some(key) = map.next_key::<FieldKey>()? {
                    let i = match key {
                        FieldKey::Other(key) => {
                            wire.others.push((key, map.next_value()?));
                            continue;
                        }
                        FieldKey::Documented(i) => i,
                    };
                    if std::mem::replace(&mut seen[i], true) {
                        return Err(serde::de::Error::duplicate_field(DOCUMENTED_FIELDS[i]));
                    }
                    // In DOCUMENTED_FIELDS' order.
                    let slot = match i {
                        0 => &mut wire.retailer_id,
                        1 => &mut wire.inventory_id,
                        2 => &mut wire.sku_ref,
                        3 => &mut wire.location_ref,
                        4 => &mut wire.qty,
                        5 => &mut wire.corrected_qty,
                        6 => &mut wire.reserved_qty,
                        7 => &mut wire.reference,
                        8 => &mut wire.inventory_type,
                        9 => &mut wire.status,
                        _ => {
                            wire.attributes = map.next_value()?;
                            continue;
                        }
                    };
                    *slot = map.next_value()?;
                }
                Ok(wire)
            }
        }
        deserializer.deserialize_map(Fields(std::marker::PhantomData))
    }
}

/// A record that passed every check: its retailer is the job's.
#[derive(Debug, Clone, PartialEq)]
pub struct InventoryRecord {
    pub location_ref: String,
    pub sku_ref: String,
    pub qty: i64,
    pub corrected_qty: Option<i64>,
    pub reserved_qty: Option<i64>,
    pub inventory_id: Option<String>,
    pub reference: Option<String>,
    pub inventory_type: String,
    pub status: Option<String>,
    /// The `attributes` object as JSON text.
    pub attributes: Option<String>,
    /// Every other top-level field (the SDK's `uom`, `lot`, `expiry`, `effectiveFrom`,
    /// anything else), as a JSON object, kept as sent.
    pub extra: Option<String>,
}

impl InventoryRecord {
    /// How results name the record: its `ref`, or `skuRef:locationRef`.
    pub fn entity_ref(&self) -> String {
        self.reference
            .clone()
            .unwrap_or_else(|| format!("{}:{}", self.sku_ref, self.location_ref))
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct KeyWire<'a> {
    #[serde(default, borrow)]
    retailer_id: Option<Scalar<'a>>,
    #[serde(default, borrow)]
    sku_ref: Option<Scalar<'a>>,
    #[serde(default, borrow)]
    location_ref: Option<Scalar<'a>>,
}

/// `key` of a record's retailer, location and SKU when its three key fields pass the same
/// checks [`check_record`] makes: every record the executor applies has one, so a batch's
/// key box covers what it touches.
pub fn record_key<R>(raw: &RawValue, key: impl FnOnce(&str, &str, &str) -> R) -> Option<R> {
    let wire: KeyWire = parse_item(raw).ok()?;
    Some(key(
        &checked_key("retailerId", wire.retailer_id.as_ref()).ok()?,
        &checked_key("locationRef", wire.location_ref.as_ref()).ok()?,
        &checked_key("skuRef", wire.sku_ref.as_ref()).ok()?,
    ))
}

/// Why a record was not applied, as its result will say.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordError {
    pub response_code: i32,
    pub message: String,
    pub entity_ref: Option<String>,
}

/// Checks one record of a batch posted to a job of `job_retailer_id`.
pub fn check_record(raw: &RawValue, job_retailer_id: &str) -> Result<InventoryRecord, RecordError> {
    let wire: InventoryPostWire = parse_item(raw).map_err(|e| RecordError {
        response_code: CODE_INVALID,
        message: format!("the record is {e}"),
        entity_ref: None,
    })?;
    let mut problems = Vec::new();
    macro_rules! take {
        ($check:expr) => {
            $check.map_err(|e| problems.push(e)).ok()
        };
    }

    let retailer_id = take!(checked_key("retailerId", wire.retailer_id.as_ref()));
    let sku_ref = take!(required_key("skuRef", wire.sku_ref.as_ref()));
    let location_ref = take!(required_key("locationRef", wire.location_ref.as_ref()));
    let qty = match &wire.qty {
        None => take!(Err::<i64, _>("'qty' is required".to_owned())),
        some => take!(optional_integer("qty", some.as_ref(), false)).flatten(),
    };
    let corrected_qty = take!(optional_integer(
        "correctedQty",
        wire.corrected_qty.as_ref(),
        true
    ))
    .flatten();
    let reserved_qty = take!(optional_integer(
        "reservedQty",
        wire.reserved_qty.as_ref(),
        false
    ))
    .flatten();
    let inventory_id = take!(optional_text(
        "inventoryId",
        wire.inventory_id.as_ref(),
        MAX_TEXT_CHARS
    ))
    .flatten();
    let reference = take!(optional_text(
        "ref",
        wire.reference.as_ref(),
        MAX_TEXT_CHARS
    ))
    .flatten();
    let inventory_type = take!(optional_text(
        "type",
        wire.inventory_type.as_ref(),
        MAX_TEXT_CHARS
    ))
    .flatten();
    let status = take!(optional_text(
        "status",
        wire.status.as_ref(),
        MAX_TEXT_CHARS
    ))
    .flatten();
    let attributes = take!(check_attributes(wire.attributes)).flatten();
    let extra = take!(extra_fields(wire.others)).flatten();

    // How the result names a refused record: built only for one.
    let entity_ref = |sku: &Option<String>, location: &Option<String>| {
        reference.clone().or_else(|| match (sku, location) {
            (Some(sku), Some(location)) => Some(format!("{sku}:{location}")),
            _ => None,
        })
    };
    if let Some(retailer) = &retailer_id {
        if retailer != job_retailer_id {
            return Err(RecordError {
                response_code: CODE_OTHER_RETAILER,
                message: format!("'retailerId' {retailer} is not the job's retailer"),
                entity_ref: entity_ref(&sku_ref, &location_ref),
            });
        }
    }
    match (retailer_id, sku_ref, location_ref, qty) {
        (Some(_), Some(sku_ref), Some(location_ref), Some(qty)) if problems.is_empty() => {
            Ok(InventoryRecord {
                location_ref,
                sku_ref,
                qty,
                corrected_qty,
                reserved_qty,
                inventory_id,
                reference,
                inventory_type: inventory_type.unwrap_or_else(|| DEFAULT_TYPE.to_owned()),
                status,
                attributes,
                extra,
            })
        }
        (_, sku_ref, location_ref, _) => Err(RecordError {
            response_code: CODE_INVALID,
            message: problems.join("; "),
            entity_ref: entity_ref(&sku_ref, &location_ref),
        }),
    }
}

/// The fields an InventoryPost documents; every other one is kept in `extra`.
const DOCUMENTED_FIELDS: [&str; 11] = [
    "retailerId",
    "inventoryId",
    "skuRef",
    "locationRef",
    "qty",
    "correctedQty",
    "reservedQty",
    "ref",
    "type",
    "status",
    "attributes",
];

/// The record's other fields as a JSON object (keys sorted; of a key given twice, the
/// last), if it has any.
fn extra_fields(others: Vec<(String, &RawValue)>) -> Result<Option<String>, String> {
    if others.is_empty() {
        return Ok(None);
    }
    let mut fields = serde_json::Map::new();
    for (key, raw) in others {
        // Stored in an object and served back parsed: one level deeper than sent.
        if nesting_depth(raw.get()) >= MAX_NESTING {
            return Err("the record is nested too deeply".to_owned());
        }
        let value = serde_json::from_str(raw.get()).map_err(|e| e.to_string())?;
        fields.insert(key, value);
    }
    let text = serde_json::Value::Object(fields).to_string();
    if text.len() > MAX_ATTRIBUTES_BYTES {
        return Err(format!(
            "the record's other fields must be at most {MAX_ATTRIBUTES_BYTES} bytes in all"
        ));
    }
    Ok(Some(text))
}

/// The deepest nesting of arrays and objects serde_json parses (its recursion limit).
const MAX_NESTING: usize = 127;

/// How deeply arrays and objects nest in `json`, which is valid JSON.
fn nesting_depth(json: &str) -> usize {
    let (mut depth, mut deepest, mut in_string, mut escaped) = (0usize, 0, false, false);
    for b in json.bytes() {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth -= 1,
            _ => {}
        }
    }
    deepest
}

fn check_attributes(raw: Option<&RawValue>) -> Result<Option<String>, String> {
    let Some(raw) = raw else { return Ok(None) };
    let text = raw.get();
    if !text.starts_with('{') {
        return Err("'attributes' must be an object".to_owned());
    }
    if text.len() > MAX_ATTRIBUTES_BYTES {
        return Err(format!(
            "'attributes' must be at most {MAX_ATTRIBUTES_BYTES} bytes"
        ));
    }
    // Stored as given and served back parsed: it must parse within serde_json's depth limit.
    if nesting_depth(text) > MAX_NESTING {
        return Err("'attributes' is nested too deeply".to_owned());
    }
    Ok(Some(text.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(json: &str) -> Result<InventoryRecord, RecordError> {
        let raw: Box<RawValue> = serde_json::from_str(json).unwrap();
        check_record(&raw, "197")
    }

    fn message(json: &str) -> (i32, String) {
        let e = check(json).unwrap_err();
        (e.response_code, e.message)
    }

    #[test]
    fn the_fluent_docs_record_passes() {
        let r = check(r#"{"locationRef":"158","qty":10,"correctedQty":11,"reservedQty":12,"skuRef":"29SPM0020X96-1-8","retailerId":197}"#).unwrap();
        assert_eq!((r.location_ref.as_str(), r.qty), ("158", 10));
        assert_eq!((r.corrected_qty, r.reserved_qty), (Some(11), Some(12)));
        assert_eq!(r.inventory_type, DEFAULT_TYPE);
        assert_eq!(r.entity_ref(), "29SPM0020X96-1-8:158");
    }

    #[test]
    fn every_field_is_kept() {
        let r = check(
            r#"{"retailerId":"197","inventoryId":"56470","skuRef":"S","locationRef":"L","qty":"10",
            "correctedQty":"-2","reservedQty":"2","ref":"R1","type":"DELTA","status":"ACTIVE",
            "attributes":{"condition":"NEW","expectedOn":"2026-12-01"}}"#,
        )
        .unwrap();
        assert_eq!(r.qty, 10);
        assert_eq!(r.corrected_qty, Some(-2));
        assert_eq!(r.inventory_id.as_deref(), Some("56470"));
        assert_eq!(r.inventory_type, "DELTA");
        assert_eq!(r.status.as_deref(), Some("ACTIVE"));
        assert_eq!(r.entity_ref(), "R1");
        assert_eq!(
            r.attributes.as_deref(),
            Some(r#"{"condition":"NEW","expectedOn":"2026-12-01"}"#)
        );
        assert_eq!(r.extra, None);
    }

    #[test]
    fn fields_beyond_the_documented_ones_are_kept_as_sent() {
        let r = check(
            r#"{"retailerId":197,"skuRef":"S","locationRef":"L","qty":1,"uom":"EA","lot":"L-7",
            "expiry":"2027-01-31","effectiveFrom":"2026-12-01T00:00:00Z","custom":{"a":[1,2]}}"#,
        )
        .unwrap();
        assert_eq!(
            r.extra.as_deref(),
            Some(
                r#"{"custom":{"a":[1,2]},"effectiveFrom":"2026-12-01T00:00:00Z","expiry":"2027-01-31","lot":"L-7","uom":"EA"}"#
            )
        );
    }

    #[test]
    fn bad_records_name_the_field() {
        assert_eq!(
            message(r#"{"retailerId":197,"locationRef":"L","qty":1}"#),
            (400, "'skuRef' is required".into())
        );
        assert_eq!(
            message(r#"{"retailerId":197,"skuRef":"S","locationRef":"L","qty":1.5}"#),
            (400, "'qty' must be an integer".into())
        );
        assert_eq!(
            message(r#"{"retailerId":197,"skuRef":"S","locationRef":"L","qty":-1}"#),
            (400, "'qty' must not be negative".into())
        );
        assert_eq!(
            message(r#"{"retailerId":197,"skuRef":"S","locationRef":"L"}"#),
            (400, "'qty' is required".into())
        );
        let long = format!(
            r#"{{"retailerId":197,"skuRef":"{}","locationRef":"L","qty":1}}"#,
            "s".repeat(256)
        );
        assert_eq!(
            message(&long),
            (400, "'skuRef' must be at most 255 characters".into())
        );
        assert_eq!(
            message(
                r#"{"retailerId":197,"skuRef":"S","locationRef":"L","qty":1,"attributes":[1]}"#
            ),
            (400, "'attributes' must be an object".into())
        );
        assert_eq!(
            message("[1]"),
            (400, "the record is not a JSON object".into())
        );
        assert_eq!(
            message(r#"{"qty":"x"}"#).1,
            "'retailerId' is required; 'skuRef' is required; 'locationRef' is required; 'qty' must be an integer"
        );
    }

    #[test]
    fn every_record_that_passes_has_the_key_it_is_applied_at() {
        for json in [
            r#"{"retailerId":197,"skuRef":"S","locationRef":"L","qty":1}"#,
            r#"{"retailerId":"197","skuRef":12,"locationRef":"L","qty":"3","ref":"R"}"#,
            r#"{"retailerId":197,"skuRef":"S","locationRef":"L","qty":-1}"#,
            r#"{"retailerId":197,"skuRef":" ","locationRef":"L","qty":1}"#,
            r#"[1]"#,
        ] {
            let raw: Box<RawValue> = serde_json::from_str(json).unwrap();
            let key = record_key(&raw, |r, l, s| [r, l, s].map(str::to_owned));
            if let Ok(r) = check_record(&raw, "197") {
                assert_eq!(
                    key,
                    Some(["197".to_owned(), r.location_ref, r.sku_ref]),
                    "{json}"
                );
            }
        }
    }

    #[test]
    fn nesting_is_measured_as_serde_json_limits_it() {
        for depth in [1, 2, MAX_NESTING - 1, MAX_NESTING, MAX_NESTING + 1] {
            let json = format!(
                r#"{}{{"a\"[":"]}}\\"}}{}"#,
                "[".repeat(depth - 1),
                "]".repeat(depth - 1)
            );
            assert_eq!(nesting_depth(&json), depth, "{json}");
            let parses = serde_json::from_str::<serde_json::Value>(&json).is_ok();
            assert_eq!(parses, depth <= MAX_NESTING, "depth {depth}");
        }
    }

    #[test]
    fn too_deep_or_repeated_fields_are_refused() {
        let deep = |field: &str, depth: usize| {
            format!(
                r#"{{"retailerId":197,"skuRef":"S","locationRef":"L","qty":1,"{field}":{}{}}}"#,
                "[".repeat(depth),
                "]".repeat(depth)
            )
        };
        assert!(check(&deep("lot", MAX_NESTING - 1)).is_ok());
        assert_eq!(
            message(&deep("lot", MAX_NESTING)),
            (400, "the record is nested too deeply".into())
        );
        let attributes = |depth: usize| {
            format!(
                r#"{{"retailerId":197,"skuRef":"S","locationRef":"L","qty":1,"attributes":{{"a":{}{}}}}}"#,
                "[".repeat(depth - 1),
                "]".repeat(depth - 1)
            )
        };
        assert!(check(&attributes(MAX_NESTING)).is_ok());
        assert_eq!(
            message(&attributes(MAX_NESTING + 1)),
            (400, "'attributes' is nested too deeply".into())
        );
        let (code, text) =
            message(r#"{"retailerId":197,"skuRef":"S","locationRef":"L","qty":1,"qty":2}"#);
        assert_eq!(code, 400);
        assert!(text.contains("duplicate field `qty`"), "{text}");
        let r = check(r#"{"retailerId":197,"skuRef":"S","locationRef":"L","qty":1,"u\u006fm":"EA","uom":"KG"}"#)
            .unwrap();
        assert_eq!(r.extra.as_deref(), Some(r#"{"uom":"KG"}"#));
    }

    #[test]
    fn another_retailers_record_is_unauthorised() {
        let e = check(r#"{"retailerId":198,"skuRef":"S","locationRef":"L","qty":1}"#).unwrap_err();
        assert_eq!(e.response_code, 401);
        assert_eq!(e.message, "'retailerId' 198 is not the job's retailer");
        assert_eq!(e.entity_ref.as_deref(), Some("S:L"));
    }
}
