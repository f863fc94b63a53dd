//! Batches: what a valid create request is. Records are checked one by one when the
//! batch runs, so a bad record never refuses the batch.

use serde::Deserialize;
use serde_json::value::RawValue;

use foldhash::{HashMap, HashMapExt};

use super::inventory::record_key;
use super::json::parse_object;
use super::keys::KeyBox;
use super::scalar::Scalar;

/// Most records one batch may carry.
pub const MAX_BATCH_RECORDS: usize = 5000;
pub const UPSERT: &str = "UPSERT";
pub const INVENTORY: &str = "INVENTORY";

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateBatchWire<'a> {
    #[serde(default, borrow)]
    action: Option<Scalar<'a>>,
    #[serde(default, borrow)]
    entity_type: Option<Scalar<'a>>,
    #[serde(default, borrow)]
    entities: Option<&'a RawValue>,
    #[serde(default)]
    source: Option<serde_json::Value>,
    #[serde(default)]
    event: Option<serde_json::Value>,
    #[serde(default)]
    catalogue_ref: Option<serde_json::Value>,
    #[serde(default)]
    conditions: Option<serde_json::Value>,
}

/// An accepted batch request: its records stay raw JSON text until the executor runs it.
#[derive(Debug)]
pub struct BatchDraft {
    pub action: &'static str,
    pub entity_type: &'static str,
    pub entities: String,
    pub record_count: usize,
    /// By retailer, the box of the keys (location, SKU) of its records whose key fields
    /// are valid.
    pub boxes: HashMap<String, KeyBox>,
    /// The batch's own fields as sent (`source`, `event`, `catalogueRef`, `conditions`),
    /// as a JSON object; `None` when it sent none.
    pub meta: Option<String>,
}

impl BatchDraft {
    /// The box of what the batch touches when posted to a job of `retailer`: only records
    /// of the job's retailer are applied.
    pub fn key_box(&self, retailer: &str) -> Option<KeyBox> {
        self.boxes.get(retailer).cloned()
    }
}

/// Parses `POST /job/{id}/batch` and lists every request-level problem with it.
pub fn parse_create_batch(body: &[u8]) -> Result<BatchDraft, Vec<String>> {
    let wire: CreateBatchWire =
        parse_object(body).map_err(|e| vec![format!("the request body is {e}")])?;
    let mut errors = Vec::new();
    let meta = batch_meta(&wire, &mut errors);
    let mut expect = |field: &str, value: Option<Scalar>, wanted: &'static str| match value {
        None => errors.push(format!("'{field}' is required")),
        Some(Scalar::Str(s)) if s == wanted => {}
        Some(_) => errors.push(format!("'{field}' must be {wanted}")),
    };
    expect("action", wire.action, UPSERT);
    expect("entityType", wire.entity_type, INVENTORY);
    let records = match wire.entities {
        None => {
            errors.push("'entities' is required".to_owned());
            Vec::new()
        }
        Some(raw) => match serde_json::from_str::<Vec<&RawValue>>(raw.get()) {
            Err(_) => {
                errors.push("'entities' must be an array".to_owned());
                Vec::new()
            }
            Ok(records) if records.is_empty() => {
                errors.push("'entities' must hold at least 1 record".to_owned());
                records
            }
            Ok(records) if records.len() > MAX_BATCH_RECORDS => {
                errors.push(format!(
                    "'entities' must hold at most {MAX_BATCH_RECORDS} records, not {}",
                    records.len()
                ));
                records
            }
            Ok(records) => records,
        },
    };
    if !errors.is_empty() {
        return Err(errors);
    }
    let mut boxes: HashMap<String, KeyBox> = HashMap::new();
    for raw in &records {
        record_key(raw, |retailer, location, sku| {
            match boxes.get_mut(retailer) {
                Some(bounds) => bounds.widen(location, sku),
                None => {
                    boxes.insert(retailer.to_owned(), KeyBox::new(location, sku));
                }
            }
        });
    }
    Ok(BatchDraft {
        action: UPSERT,
        entity_type: INVENTORY,
        entities: wire.entities.map_or("[]", RawValue::get).to_owned(),
        record_count: records.len(),
        boxes,
        meta,
    })
}

/// The batch-level fields Fluent clients may send: texts of at most 255 characters, and
/// `conditions` an object (e.g. `hasRelatedInventoryQuantities`).
fn batch_meta(wire: &CreateBatchWire, errors: &mut Vec<String>) -> Option<String> {
    use serde_json::Value;
    let mut meta = serde_json::Map::new();
    for (name, value) in [
        ("source", &wire.source),
        ("event", &wire.event),
        ("catalogueRef", &wire.catalogue_ref),
    ] {
        match value {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) if s.chars().count() <= 255 && !s.contains('\0') => {
                meta.insert(name.to_owned(), Value::String(s.clone()));
            }
            Some(_) => errors.push(format!(
                "'{name}' must be a string of at most 255 characters"
            )),
        }
    }
    match &wire.conditions {
        None | Some(Value::Null) => {}
        Some(Value::Object(c)) if Value::Object(c.clone()).to_string().len() <= 4096 => {
            meta.insert("conditions".to_owned(), Value::Object(c.clone()));
        }
        Some(_) => errors.push("'conditions' must be an object of at most 4 KiB".to_owned()),
    }
    (!meta.is_empty()).then(|| Value::Object(meta).to_string())
}

/// Whether Batch Pre-Processing applies to a job's batches: unless its `meta` says
/// `"preprocessing": "skip"` (Fluent's switch).
pub fn preprocesses(job_meta: Option<&str>) -> bool {
    let skip = job_meta
        .and_then(|m| serde_json::from_str::<serde_json::Value>(m).ok())
        .is_some_and(|m| m["preprocessing"] == "skip");
    !skip
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fluent_docs_example_is_accepted() {
        let body = br#"{"action":"UPSERT","entityType":"INVENTORY","source":"batch","entities":[
            {"locationRef":"158","qty":10,"correctedQty":11,"reservedQty":12,"skuRef":"29SPM0020X96-1-8","retailerId":197}]}"#;
        let draft = parse_create_batch(body).unwrap();
        assert_eq!(draft.record_count, 1);
        let key_box = draft.key_box("197").unwrap();
        assert_eq!(
            (key_box.sku_min.as_str(), key_box.loc_max.as_str()),
            ("29SPM0020X96-1-8", "158")
        );
        assert_eq!(
            draft.key_box("198"),
            None,
            "records of another retailer touch nothing"
        );
        assert!(draft.entities.starts_with('[') && draft.entities.contains("29SPM0020X96-1-8"));
    }

    #[test]
    fn each_retailer_gets_the_box_of_its_own_valid_records() {
        let body = br#"{"action":"UPSERT","entityType":"INVENTORY","entities":[
            {"retailerId":"1","locationRef":"L5","skuRef":"S5","qty":1},
            {"retailerId":2,"locationRef":"L9","skuRef":"S0","qty":1},
            {"retailerId":"1","locationRef":"L1","skuRef":"S7","qty":1},
            {"retailerId":"1","locationRef":"L0","skuRef":" ","qty":1},
            {"retailerId":"1","locationRef":"L3","skuRef":"S9"}]}"#;
        let draft = parse_create_batch(body).unwrap();
        assert_eq!(
            draft.key_box("1"),
            KeyBox::of([("L5", "S5"), ("L1", "S7"), ("L3", "S9")]),
            "a blank SKU is no key; a missing qty does not matter"
        );
        assert_eq!(draft.key_box("2"), KeyBox::of([("L9", "S0")]));
        assert_eq!(draft.key_box("3"), None);
    }

    #[test]
    fn batch_fields_are_kept_and_checked() {
        let body = br#"{"action":"UPSERT","entityType":"INVENTORY","source":"SDK","event":"NORMAL",
            "catalogueRef":"DEFAULT:1","conditions":{"hasRelatedInventoryQuantities":true},"entities":[{}]}"#;
        assert_eq!(
            parse_create_batch(body).unwrap().meta.as_deref(),
            Some(
                r#"{"catalogueRef":"DEFAULT:1","conditions":{"hasRelatedInventoryQuantities":true},"event":"NORMAL","source":"SDK"}"#
            )
        );
        assert_eq!(
            parse_create_batch(br#"{"action":"UPSERT","entityType":"INVENTORY","entities":[{}],"source":1,"conditions":[]}"#)
                .unwrap_err(),
            vec![
                "'source' must be a string of at most 255 characters",
                "'conditions' must be an object of at most 4 KiB"
            ]
        );
        assert!(
            preprocesses(None)
                && preprocesses(Some("{}"))
                && preprocesses(Some(r#"{"description":"x"}"#))
        );
        assert!(!preprocesses(Some(r#"{"preprocessing":"skip"}"#)));
    }

    #[test]
    fn request_level_problems_are_all_listed() {
        assert_eq!(
            parse_create_batch(br#"{"action":"DELETE"}"#).unwrap_err(),
            vec![
                "'action' must be UPSERT",
                "'entityType' is required",
                "'entities' is required"
            ]
        );
        assert_eq!(
            parse_create_batch(br#"{"action":"UPSERT","entityType":"ORDER","entities":{}}"#)
                .unwrap_err(),
            vec![
                "'entityType' must be INVENTORY",
                "'entities' must be an array"
            ]
        );
        assert_eq!(
            parse_create_batch(br#"{"action":"UPSERT","entityType":"INVENTORY","entities":[]}"#)
                .unwrap_err(),
            vec!["'entities' must hold at least 1 record"]
        );
        assert_eq!(
            parse_create_batch(b"\"x\"").unwrap_err(),
            vec!["the request body is not a JSON object"]
        );
    }

    #[test]
    fn at_most_5000_records() {
        let records = |n: usize| {
            format!(
                r#"{{"action":"UPSERT","entityType":"INVENTORY","entities":[{}]}}"#,
                vec!["{}"; n].join(",")
            )
        };
        assert_eq!(
            parse_create_batch(records(5000).as_bytes())
                .unwrap()
                .record_count,
            5000
        );
        assert_eq!(
            parse_create_batch(records(5001).as_bytes()).unwrap_err(),
            vec!["'entities' must hold at most 5000 records, not 5001"]
        );
    }
}
