//! StateSet batch operations: what a valid `POST /api/v1/inventory/batch` is, and what each
//! item's `data` asks for. Request-level problems refuse the whole request; an item whose
//! `data` is wrong gets its own error result when the batch runs.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use validator::ValidateEmail;

use super::json::{self, parse_object};
use super::keys::{KeyBox, ITEM_LOCATION};
use super::scalar::{optional_text, required_key, Scalar, MAX_KEY_BYTES, MAX_KEY_CHARS};

/// Most items one request may carry.
pub const MAX_ITEMS: usize = 1000;
const MAX_TEXT_CHARS: usize = 255;
/// Largest `data` of one item, as sent.
const MAX_DATA_BYTES: usize = 16 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Update,
    Adjust,
    Transfer,
    CycleCount,
    Import,
}

impl Operation {
    pub const ALL: [Operation; 5] = [
        Operation::Update,
        Operation::Adjust,
        Operation::Transfer,
        Operation::CycleCount,
        Operation::Import,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Update => "update",
            Operation::Adjust => "adjust",
            Operation::Transfer => "transfer",
            Operation::CycleCount => "cycle_count",
            Operation::Import => "import",
        }
    }

    pub fn parse(name: &str) -> Option<Operation> {
        Operation::ALL.into_iter().find(|op| op.as_str() == name)
    }
}

/// A batch's options as stored with it; `default_location` is the principal's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Options {
    pub validate_only: bool,
    pub continue_on_error: bool,
    pub notification_email: Option<String>,
    pub default_location: String,
}

/// An accepted request: items stay raw JSON text until the executor runs them.
#[derive(Debug)]
pub struct StateSetDraft {
    pub operation: Operation,
    pub items: String,
    pub item_count: usize,
    pub options: Options,
    /// What the valid items touch; `None` when no item is valid.
    pub key_box: Option<KeyBox>,
}

#[derive(Deserialize)]
struct RequestWire<'a> {
    #[serde(default, borrow)]
    operation: Option<Scalar<'a>>,
    #[serde(default, borrow)]
    items: Option<&'a RawValue>,
    #[serde(default)]
    options: Option<Value>,
}

#[derive(Deserialize)]
struct ItemWire<'a> {
    #[serde(default, borrow)]
    sku: Option<Scalar<'a>>,
    #[serde(default, borrow)]
    data: Option<&'a RawValue>,
}

/// Parses the request, listing every request-level problem: the operation, the items'
/// count and shape (`sku` a key, `data` an object), and the options.
pub fn parse_batch_request(
    body: &[u8],
    default_location: &str,
) -> Result<StateSetDraft, Vec<String>> {
    let wire: RequestWire =
        parse_object(body).map_err(|e| vec![format!("the request body is {e}")])?;
    let mut errors = Vec::new();
    let names = || {
        Operation::ALL
            .iter()
            .map(|op| op.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let operation = match &wire.operation {
        None => {
            errors.push(format!("'operation' is required: one of {}", names()));
            None
        }
        Some(op) => match op.as_str().and_then(Operation::parse) {
            Some(op) => Some(op),
            None => {
                errors.push(format!("'operation' must be one of {}", names()));
                None
            }
        },
    };
    let items = check_items(wire.items, &mut errors);
    let options = check_options(wire.options, default_location, &mut errors);
    match (operation, items, options) {
        (Some(operation), Some(items), Some(options)) if errors.is_empty() => {
            let parsed: Vec<Result<Item, String>> = items
                .iter()
                .map(|raw| parse_item(operation, raw, &options.default_location))
                .collect();
            let key_box = KeyBox::of(
                parsed
                    .iter()
                    .flatten()
                    .flat_map(Item::keys)
                    .collect::<Vec<_>>(),
            );
            Ok(StateSetDraft {
                operation,
                item_count: items.len(),
                items: wire.items.map_or("[]", RawValue::get).to_owned(),
                options,
                key_box,
            })
        }
        _ => Err(errors),
    }
}

fn check_items<'a>(
    raw: Option<&'a RawValue>,
    errors: &mut Vec<String>,
) -> Option<Vec<&'a RawValue>> {
    let Some(raw) = raw else {
        errors.push("'items' is required".to_owned());
        return None;
    };
    let Ok(items) = serde_json::from_str::<Vec<&RawValue>>(raw.get()) else {
        errors.push("'items' must be an array".to_owned());
        return None;
    };
    if items.is_empty() || items.len() > MAX_ITEMS {
        errors.push(format!(
            "'items' must hold 1 to {MAX_ITEMS} items, not {}",
            items.len()
        ));
        return None;
    }
    let before = errors.len();
    for (i, item) in items.iter().enumerate() {
        match json::parse_item::<ItemWire>(item) {
            Err(e) => errors.push(format!("items[{i}] is {e}")),
            Ok(wire) => {
                if let Err(e) =
                    wire.sku
                        .as_ref()
                        .map_or(Err("'sku' is required".to_owned()), |sku| match sku {
                            Scalar::Str(_) => required_key("sku", Some(sku)),
                            _ => Err("'sku' must be a string".to_owned()),
                        })
                {
                    errors.push(format!("items[{i}]: {e}"));
                }
                match wire.data {
                    None => errors.push(format!("items[{i}]: 'data' is required")),
                    Some(d) if !d.get().starts_with('{') => {
                        errors.push(format!("items[{i}]: 'data' must be an object"))
                    }
                    Some(d) if d.get().len() > MAX_DATA_BYTES => errors.push(format!(
                        "items[{i}]: 'data' must be at most {MAX_DATA_BYTES} bytes"
                    )),
                    Some(_) => {}
                }
            }
        }
    }
    (errors.len() == before).then_some(items)
}

fn check_options(
    raw: Option<Value>,
    default_location: &str,
    errors: &mut Vec<String>,
) -> Option<Options> {
    let mut options = Options {
        validate_only: false,
        continue_on_error: false,
        notification_email: None,
        default_location: default_location.to_owned(),
    };
    let map = match raw {
        None | Some(Value::Null) => return Some(options),
        Some(Value::Object(map)) => map,
        Some(_) => {
            errors.push("'options' must be an object".to_owned());
            return None;
        }
    };
    let before = errors.len();
    let mut flag = |name: &str| match map.get(name) {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            errors.push(format!("'options.{name}' must be true or false"));
            false
        }
    };
    options.validate_only = flag("validate_only");
    options.continue_on_error = flag("continue_on_error");
    match map.get("notification_email") {
        None | Some(Value::Null) => {}
        Some(Value::String(email)) if email.len() <= 254 && email.validate_email() => {
            options.notification_email = Some(email.clone())
        }
        Some(_) => errors.push("'options.notification_email' must be an email address".to_owned()),
    }
    (errors.len() == before).then_some(options)
}

/// One item, ready to apply.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub sku: String,
    pub op: Op,
}

/// What an item's `data` asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    Adjust {
        location: String,
        absolute: bool,
        quantity: i64,
        note: Note,
    },
    Transfer {
        from: String,
        to: String,
        quantity: i64,
        note: Note,
    },
    CycleCount {
        location: String,
        counted: i64,
        note: Note,
    },
    Update {
        properties: Map<String, Value>,
    },
    Import {
        location: String,
        quantity: i64,
        properties: Map<String, Value>,
    },
}

/// Why a quantity changed, for the ledger.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Note {
    pub reason: Option<String>,
    pub reference: Option<String>,
}

impl Item {
    /// The (location, SKU) keys the item touches; item properties at [`ITEM_LOCATION`].
    pub fn keys(&self) -> Vec<(&str, &str)> {
        let sku = self.sku.as_str();
        match &self.op {
            Op::Adjust { location, .. } | Op::CycleCount { location, .. } => vec![(location, sku)],
            Op::Transfer { from, to, .. } => vec![(from, sku), (to, sku)],
            Op::Update { .. } => vec![(ITEM_LOCATION, sku)],
            Op::Import { location, .. } => vec![(ITEM_LOCATION, sku), (location, sku)],
        }
    }
}

/// Keys of `data` that say where, not what: never stored as item properties.
const LOCATION_KEYS: [&str; 2] = ["location", "location_id"];

/// Parses one item of a request that passed [`parse_batch_request`].
pub fn parse_item(
    operation: Operation,
    raw: &RawValue,
    default_location: &str,
) -> Result<Item, String> {
    let wire: ItemWire = json::parse_item(raw)?;
    let sku = wire
        .sku
        .as_ref()
        .and_then(Scalar::as_str)
        .ok_or("'sku' must be a string")?
        .to_owned();
    let data: Map<String, Value> = wire
        .data
        .map(|d| serde_json::from_str(d.get()))
        .transpose()
        .map_err(|_| "'data' must be an object".to_owned())?
        .ok_or("'data' is required")?;
    let scalar = |name: &str| data.get(name).filter(|v| !v.is_null()).map(scalar_of);
    let location = || -> Result<String, String> {
        let (a, b) = (scalar("location"), scalar("location_id"));
        match (a, b) {
            (Some(a), Some(b)) if a != b => {
                Err("'location' and 'location_id' name different locations".to_owned())
            }
            (Some(a), _) => required_key("location", Some(&a)),
            (None, Some(b)) => required_key("location_id", Some(&b)),
            (None, None) => Ok(default_location.to_owned()),
        }
    };
    let integer = |name: &str| -> Result<Option<i64>, String> {
        scalar(name)
            .map(|v| {
                v.as_integer()
                    .ok_or_else(|| format!("'{name}' must be an integer"))
            })
            .transpose()
    };
    let required_integer =
        |name: &str| integer(name)?.ok_or_else(|| format!("'{name}' is required"));
    let note = || -> Result<Note, String> {
        Ok(Note {
            reason: optional_text("reason", scalar("reason").as_ref(), MAX_TEXT_CHARS)?,
            reference: optional_text("reference", scalar("reference").as_ref(), MAX_TEXT_CHARS)?,
        })
    };
    let op = match operation {
        Operation::Adjust => {
            let absolute = match data.get("adjustment_type").and_then(Value::as_str) {
                Some("absolute") => true,
                Some("relative") => false,
                Some(_) => return Err("'adjustment_type' must be absolute or relative".to_owned()),
                None => {
                    return Err("'adjustment_type' is required: absolute or relative".to_owned())
                }
            };
            let quantity = required_integer("quantity")?;
            if absolute && quantity < 0 {
                return Err("'quantity' must not be negative for an absolute adjustment".to_owned());
            }
            Op::Adjust {
                location: location()?,
                absolute,
                quantity,
                note: note()?,
            }
        }
        Operation::Transfer => {
            let from = required_key("from_location", scalar("from_location").as_ref())?;
            let to = required_key("to_location", scalar("to_location").as_ref())?;
            if from == to {
                return Err("'from_location' and 'to_location' must differ".to_owned());
            }
            let quantity = required_integer("quantity")?;
            if quantity <= 0 {
                return Err("'quantity' must be more than 0".to_owned());
            }
            Op::Transfer {
                from,
                to,
                quantity,
                note: note()?,
            }
        }
        Operation::CycleCount => {
            let counted = match integer("counted_quantity")? {
                Some(n) => n,
                None => {
                    integer("quantity")?.ok_or("'counted_quantity' (or 'quantity') is required")?
                }
            };
            if counted < 0 {
                return Err("the counted quantity must not be negative".to_owned());
            }
            Op::CycleCount {
                location: location()?,
                counted,
                note: note()?,
            }
        }
        Operation::Update => {
            if data.contains_key("quantity") {
                return Err("update changes item properties, not quantities: use adjust".to_owned());
            }
            let properties = properties_of(&data);
            if properties.is_empty() {
                return Err("'data' must name at least one property to update".to_owned());
            }
            Op::Update { properties }
        }
        Operation::Import => {
            let quantity = required_integer("quantity")?;
            if quantity < 0 {
                return Err("'quantity' must not be negative".to_owned());
            }
            let mut properties = properties_of(&data);
            properties.remove("quantity");
            Op::Import {
                location: location()?,
                quantity,
                properties,
            }
        }
    };
    Ok(Item { sku, op })
}

/// The `sku` of an item, however wrong its `data` (for the item's result).
pub fn item_sku(raw: &RawValue) -> Option<String> {
    let wire: ItemWire = json::parse_item(raw).ok()?;
    wire.sku
        .as_ref()
        .and_then(Scalar::as_str)
        .map(str::to_owned)
}

fn properties_of(data: &Map<String, Value>) -> Map<String, Value> {
    data.iter()
        .filter(|(k, _)| !LOCATION_KEYS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn scalar_of(value: &Value) -> Scalar<'_> {
    match value {
        Value::String(s) => Scalar::Str(s.into()),
        Value::Number(n) => n.as_i64().map_or(Scalar::OtherNumber, Scalar::Int),
        Value::Bool(_) => Scalar::Bool,
        Value::Object(_) => Scalar::Object,
        Value::Array(_) => Scalar::Array,
        Value::Null => Scalar::OtherNumber,
    }
}

// Keys are checked like Fluent's: the limits are the service's.
const _: () = assert!(MAX_KEY_CHARS == 255 && MAX_KEY_BYTES == 765);

#[cfg(test)]
mod tests {
    use super::*;

    fn item(operation: Operation, json: &str) -> Result<Item, String> {
        let raw: Box<RawValue> = serde_json::from_str(json).unwrap();
        parse_item(operation, &raw, "DEFAULT")
    }

    #[test]
    fn the_seed_example_is_accepted() {
        let body = br#"{
          "operation": "adjust",
          "items": [
            {"sku": "WIDGET-001", "data": {"adjustment_type": "absolute", "quantity": 150, "reason": "Cycle count correction"}},
            {"sku": "GADGET-002", "data": {"adjustment_type": "relative", "quantity": -25, "reason": "Damaged goods"}}
          ],
          "options": {"continue_on_error": true}
        }"#;
        let draft = parse_batch_request(body, "DEFAULT").unwrap();
        assert_eq!(draft.operation, Operation::Adjust);
        assert_eq!(draft.item_count, 2);
        assert!(draft.options.continue_on_error && !draft.options.validate_only);
        let key_box = draft.key_box.unwrap();
        assert_eq!(
            (key_box.sku_min.as_str(), key_box.sku_max.as_str()),
            ("GADGET-002", "WIDGET-001")
        );
        assert_eq!(
            (key_box.loc_min.as_str(), key_box.loc_max.as_str()),
            ("DEFAULT", "DEFAULT")
        );
    }

    #[test]
    fn request_level_problems_are_all_listed() {
        let errors = |body: &str| parse_batch_request(body.as_bytes(), "D").unwrap_err();
        assert_eq!(
            errors(r#"{"items": [], "options": 3}"#),
            vec![
                "'operation' is required: one of update, adjust, transfer, cycle_count, import",
                "'items' must hold 1 to 1000 items, not 0",
                "'options' must be an object",
            ]
        );
        assert_eq!(
            errors(r#"{"operation": "delete", "items": [{"sku": "", "data": 1}, {"data": {}}]}"#),
            vec![
                "'operation' must be one of update, adjust, transfer, cycle_count, import",
                "items[0]: 'sku' must not be blank",
                "items[0]: 'data' must be an object",
                "items[1]: 'sku' is required",
            ]
        );
        assert_eq!(
            errors(
                r#"{"operation": "adjust", "items": [{"sku": "A", "data": {}}], "options": {"notification_email": "not-an-email", "validate_only": "yes"}}"#
            ),
            vec![
                "'options.validate_only' must be true or false",
                "'options.notification_email' must be an email address",
            ]
        );
        let many = format!(
            r#"{{"operation":"update","items":[{}]}}"#,
            vec![r#"{"sku":"A","data":{"x":1}}"#; 1001].join(",")
        );
        assert_eq!(
            errors(&many),
            vec!["'items' must hold 1 to 1000 items, not 1001"]
        );
        assert_eq!(errors("[]"), vec!["the request body is not a JSON object"]);
        assert_eq!(
            errors(r#"{"operation":"adjust","items":{}}"#),
            vec!["'items' must be an array"]
        );
    }

    #[test]
    fn items_name_what_is_wrong_with_their_data() {
        assert_eq!(
            item(Operation::Adjust, r#"{"sku":"A","data":{"quantity":1}}"#).unwrap_err(),
            "'adjustment_type' is required: absolute or relative"
        );
        assert_eq!(
            item(
                Operation::Adjust,
                r#"{"sku":"A","data":{"adjustment_type":"absolute","quantity":-1}}"#
            )
            .unwrap_err(),
            "'quantity' must not be negative for an absolute adjustment"
        );
        assert_eq!(
            item(
                Operation::Adjust,
                r#"{"sku":"A","data":{"adjustment_type":"relative","quantity":1.5}}"#
            )
            .unwrap_err(),
            "'quantity' must be an integer"
        );
        assert_eq!(
            item(
                Operation::Transfer,
                r#"{"sku":"A","data":{"from_location":"W1","to_location":"W1","quantity":5}}"#
            )
            .unwrap_err(),
            "'from_location' and 'to_location' must differ"
        );
        assert_eq!(
            item(
                Operation::Transfer,
                r#"{"sku":"A","data":{"from_location":"W1","to_location":"W2","quantity":0}}"#
            )
            .unwrap_err(),
            "'quantity' must be more than 0"
        );
        assert_eq!(
            item(Operation::Update, r#"{"sku":"A","data":{"quantity":3}}"#).unwrap_err(),
            "update changes item properties, not quantities: use adjust"
        );
        assert_eq!(
            item(Operation::Adjust, r#"{"sku":"A","data":{"adjustment_type":"relative","quantity":1,"location":"X","location_id":"Y"}}"#)
                .unwrap_err(),
            "'location' and 'location_id' name different locations"
        );
    }

    #[test]
    fn items_default_their_location_and_keep_their_notes_and_properties() {
        let adjust = item(
            Operation::Adjust,
            r#"{"sku":"A","data":{"adjustment_type":"relative","quantity":"-25","reason":"Damaged goods","reference":"RMA-1"}}"#,
        )
        .unwrap();
        assert_eq!(
            adjust.op,
            Op::Adjust {
                location: "DEFAULT".into(),
                absolute: false,
                quantity: -25,
                note: Note {
                    reason: Some("Damaged goods".into()),
                    reference: Some("RMA-1".into())
                },
            }
        );
        let count = item(
            Operation::CycleCount,
            r#"{"sku":"A","data":{"quantity":7,"location_id":"W2"}}"#,
        )
        .unwrap();
        assert_eq!(count.keys(), vec![("W2", "A")]);
        let import = item(
            Operation::Import,
            r#"{"sku":"A","data":{"name":"Widget","quantity":10,"price":29.99,"location_id":"W1"}}"#,
        )
        .unwrap();
        let Op::Import {
            location,
            quantity,
            properties,
        } = &import.op
        else {
            panic!()
        };
        assert_eq!((location.as_str(), *quantity), ("W1", 10));
        assert_eq!(
            Value::Object(properties.clone()),
            serde_json::json!({"name":"Widget","price":29.99})
        );
        assert_eq!(import.keys(), vec![(ITEM_LOCATION, "A"), ("W1", "A")]);
        let transfer = item(
            Operation::Transfer,
            r#"{"sku":"A","data":{"from_location":"warehouse_001","to_location":"warehouse_002","quantity":50}}"#,
        )
        .unwrap();
        assert_eq!(
            transfer.keys(),
            vec![("warehouse_001", "A"), ("warehouse_002", "A")]
        );
    }
}
