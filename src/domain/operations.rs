//! The operations of both APIs — Fluent's absolute UPSERT and StateSet's adjust, transfer,
//! cycle count, update and import — as pure functions over an in-memory view of the stock
//! they touch. Each item either changes the view and yields its result and ledger movements,
//! or changes nothing and yields an error: a transfer moves both sides or neither. The same
//! code serves a real run and a dry run; the executor writes what changed.

use std::borrow::Cow;

use foldhash::{HashMap, HashSet};
use hashbrown::HashTable;

use serde_json::{json, Map, Value};

use super::inventory::{InventoryRecord, CREATED, DEFAULT_TYPE, UPDATED};
use super::stateset::{Item, Note, Op};

/// A position is (location, SKU) within the batch's retailer.
pub type PositionKey = (String, String);

/// A position of a [`View`]: the index of its key there.
pub type KeyId = usize;

/// What a view changed: positions, and items' properties.
pub type Changes = (Vec<(KeyId, Stock)>, Vec<(String, Map<String, Value>)>);

/// A position's stored fields. `id` is `None` until the position is first written.
#[derive(Debug, Clone, PartialEq)]
pub struct Stock {
    pub id: Option<i64>,
    pub qty: i64,
    pub corrected_qty: Option<i64>,
    pub reserved_qty: Option<i64>,
    pub inventory_id: Option<String>,
    pub reference: Option<String>,
    pub inventory_type: String,
    pub status: Option<String>,
    pub attributes: Option<String>,
    /// Other fields Fluent records carried, as a JSON object.
    pub extra: Option<String>,
}

impl Stock {
    fn new(qty: i64) -> Stock {
        Stock {
            id: None,
            qty,
            corrected_qty: None,
            reserved_qty: None,
            inventory_id: None,
            reference: None,
            inventory_type: DEFAULT_TYPE.to_owned(),
            status: None,
            attributes: None,
            extra: None,
        }
    }
}

/// One change to a position's quantity, for the ledger.
#[derive(Debug, Clone, PartialEq)]
pub struct Movement {
    pub key: KeyId,
    pub operation: &'static str,
    pub previous: i64,
    pub new: i64,
    pub reason: Option<String>,
    pub reference: Option<String>,
}

/// What an item did: its result and the movements it made.
#[derive(Debug, Clone, PartialEq)]
pub struct Applied {
    pub message: Cow<'static, str>,
    /// StateSet's result data.
    pub data: Option<Value>,
    /// The position the result names (Fluent's `entityId`).
    pub position: Option<KeyId>,
    pub movements: Vec<Movement>,
}

/// Why an item changed nothing: a result code and a message for people.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    pub code: i32,
    pub message: String,
}

/// Result codes of items that changed nothing (beside validation's 400).
pub const CODE_NOT_FOUND: i32 = 404;
/// A change the stock cannot take (below zero, past the integer range).
pub const CODE_UNPROCESSABLE: i32 = 422;
/// An item never attempted: an earlier one failed and the batch stops at errors.
pub const CODE_SKIPPED: i32 = 0;

/// The keys of a view's positions, each stored once: looking one up takes its text as
/// borrowed strings.
#[derive(Default)]
struct Keys {
    keys: Vec<PositionKey>,
    table: HashTable<KeyId>,
    hasher: foldhash::fast::RandomState,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.debug_list().entries(&self.keys).finish()
    }
}

impl Keys {
    fn hash(hasher: &foldhash::fast::RandomState, location: &str, sku: &str) -> u64 {
        use std::hash::BuildHasher;
        hasher.hash_one((location, sku))
    }

    fn find(&self, location: &str, sku: &str) -> Option<KeyId> {
        let hash = Keys::hash(&self.hasher, location, sku);
        self.table
            .find(hash, |&id| {
                let key = &self.keys[id];
                key.0 == location && key.1 == sku
            })
            .copied()
    }

    /// Adds a key not yet among them.
    fn push(&mut self, key: PositionKey) -> KeyId {
        let id = self.keys.len();
        let (keys, hasher) = (&self.keys, &self.hasher);
        self.table
            .insert_unique(Keys::hash(hasher, &key.0, &key.1), id, |&id| {
                Keys::hash(hasher, &keys[id].0, &keys[id].1)
            });
        self.keys.push(key);
        id
    }
}

/// The stock a batch touches, as read when it starts and changed by its items in order.
/// Changes since a [`View::mark`] can be undone; changed entries are remembered until
/// [`View::take_changes`].
#[derive(Debug, Default)]
pub struct View {
    keys: Keys,
    /// By key: the position's stock, `None` where none exists.
    positions: Vec<Option<Stock>>,
    items: HashMap<String, Option<Map<String, Value>>>,
    /// Of the SKUs whose items were looked up, those with at least one position (an
    /// `update` needs its item to exist).
    skus_with_positions: HashSet<String>,
    /// The positions changed since the last [`View::take_changes`], and each one's flag.
    changed_positions: Vec<KeyId>,
    changed: Vec<bool>,
    changed_items: HashSet<String>,
    undo: Vec<Undo>,
}

#[derive(Debug)]
enum Undo {
    /// The key, what it held, whether it was already changed, whether its SKU was new.
    Position(KeyId, Option<Stock>, bool, bool),
    Item(String, Option<Map<String, Value>>, bool),
}

impl View {
    /// A view of the keys `looked_up` (each once), with each one's position where `found`
    /// (by the same index) has one, and of `items` (found) among the SKUs looked up; keys
    /// looked up but not found are known not to exist. A position's [`KeyId`] is its key's
    /// index in `looked_up`.
    pub fn new(
        looked_up: Vec<PositionKey>,
        found: Vec<Option<Stock>>,
        items_looked_up: impl IntoIterator<Item = String>,
        items: impl IntoIterator<Item = (String, Map<String, Value>)>,
        skus_with_positions: impl IntoIterator<Item = String>,
    ) -> View {
        let mut view = View {
            items: items_looked_up.into_iter().map(|k| (k, None)).collect(),
            skus_with_positions: skus_with_positions.into_iter().collect(),
            ..View::default()
        };
        view.keys.table.reserve(looked_up.len(), |_| 0);
        view.keys.keys.reserve(looked_up.len());
        for key in looked_up {
            debug_assert!(
                view.keys.find(&key.0, &key.1).is_none(),
                "keys are distinct"
            );
            view.keys.push(key);
        }
        assert_eq!(found.len(), view.keys.keys.len(), "a slot per key");
        view.changed = vec![false; found.len()];
        if !view.items.is_empty() {
            for (id, _) in found.iter().enumerate().filter(|(_, s)| s.is_some()) {
                note_position_of(
                    &view.items,
                    &mut view.skus_with_positions,
                    &view.keys.keys[id].1,
                );
            }
        }
        view.positions = found;
        for (sku, properties) in items {
            view.items.insert(sku, Some(properties));
        }
        view
    }

    /// The id of the position at (`location`, `sku`), added to the view (as not existing)
    /// if it was not looked up.
    pub fn key_id(&mut self, location: &str, sku: &str) -> KeyId {
        match self.keys.find(location, sku) {
            Some(id) => id,
            None => {
                self.positions.push(None);
                self.changed.push(false);
                self.keys.push((location.to_owned(), sku.to_owned()))
            }
        }
    }

    /// The key of position `id`.
    pub fn key(&self, id: KeyId) -> &PositionKey {
        &self.keys.keys[id]
    }

    pub fn position(&self, id: KeyId) -> Option<&Stock> {
        self.positions[id].as_ref()
    }

    /// The position at (`location`, `sku`), if the view has one.
    pub fn position_at(&self, location: &str, sku: &str) -> Option<&Stock> {
        self.keys
            .find(location, sku)
            .and_then(|id| self.position(id))
    }

    pub fn item(&self, sku: &str) -> Option<&Map<String, Value>> {
        self.items.get(sku).and_then(Option::as_ref)
    }

    fn qty(&self, id: KeyId) -> i64 {
        self.position(id).map_or(0, |s| s.qty)
    }

    fn set_position(&mut self, id: KeyId, stock: Stock) {
        let new_sku = note_position_of(
            &self.items,
            &mut self.skus_with_positions,
            &self.keys.keys[id].1,
        );
        let was_changed = std::mem::replace(&mut self.changed[id], true);
        if !was_changed {
            self.changed_positions.push(id);
        }
        let before = self.positions[id].replace(stock);
        self.undo
            .push(Undo::Position(id, before, was_changed, new_sku));
    }

    fn set_item(&mut self, sku: &str, properties: Map<String, Value>) {
        let was_changed = !self.changed_items.insert(sku.to_owned());
        let before = self
            .items
            .insert(sku.to_owned(), Some(properties))
            .flatten();
        self.undo
            .push(Undo::Item(sku.to_owned(), before, was_changed));
    }

    /// Records the id a new position was stored under.
    pub fn set_id(&mut self, id: KeyId, position_id: i64) {
        if let Some(stock) = &mut self.positions[id] {
            stock.id = Some(position_id);
        }
    }

    /// A point to undo back to.
    pub fn mark(&self) -> usize {
        self.undo.len()
    }

    /// Undoes every change since `mark`.
    pub fn undo_to(&mut self, mark: usize) {
        while self.undo.len() > mark {
            match self.undo.pop().expect("longer than mark") {
                Undo::Position(id, before, was_changed, new_sku) => {
                    if !was_changed {
                        self.changed[id] = false;
                        self.changed_positions.retain(|&c| c != id);
                    }
                    if new_sku {
                        self.skus_with_positions.remove(&self.keys.keys[id].1);
                    }
                    self.positions[id] = before;
                }
                Undo::Item(sku, before, was_changed) => {
                    if !was_changed {
                        self.changed_items.remove(&sku);
                    }
                    self.items.insert(sku, before);
                }
            }
        }
    }

    /// The positions and items changed since the last call, sorted by key (writers lock
    /// in one order). What they replaced can still be undone.
    pub fn take_changes(&mut self) -> Changes {
        let mut ids = std::mem::take(&mut self.changed_positions);
        ids.sort_by(|a, b| self.keys.keys[*a].cmp(&self.keys.keys[*b]));
        let positions = ids
            .into_iter()
            .filter_map(|id| {
                self.changed[id] = false;
                self.position(id).cloned().map(|s| (id, s))
            })
            .collect();
        let mut items: Vec<_> = std::mem::take(&mut self.changed_items)
            .into_iter()
            .filter_map(|k| self.item(&k).cloned().map(|p| (k, p)))
            .collect();
        items.sort_by(|a, b| a.0.cmp(&b.0));
        (positions, items)
    }
}

/// Notes in `skus_with_positions` that `sku` has a position, where it matters (its item
/// is among `items`, those looked up); whether it is news.
fn note_position_of(
    items: &HashMap<String, Option<Map<String, Value>>>,
    skus_with_positions: &mut HashSet<String>,
    sku: &str,
) -> bool {
    items.contains_key(sku)
        && !skus_with_positions.contains(sku)
        && skus_with_positions.insert(sku.to_owned())
}

/// What Batch Pre-Processing says of a record that would change nothing.
pub const UNCHANGED: &str = "Inventory unchanged";

/// Fluent's UPSERT: the record's quantity replaces the position's; optional fields it
/// leaves out keep their stored value. With `preprocess` (Batch Pre-Processing), a record
/// that would change nothing on an existing position writes nothing and moves nothing.
pub fn upsert(view: &mut View, record: &InventoryRecord, preprocess: bool) -> Applied {
    let id = view.key_id(&record.location_ref, &record.sku_ref);
    let before = view.position(id);
    if preprocess && before.is_some_and(|stock| changes_nothing(record, stock)) {
        return Applied {
            message: Cow::Borrowed(UNCHANGED),
            data: None,
            movements: Vec::new(),
            position: Some(id),
        };
    }
    let message = if before.is_some() { UPDATED } else { CREATED };
    let previous = before.map_or(0, |s| s.qty);
    let stock = upserted(before, record);
    view.set_position(id, stock);
    Applied {
        message: Cow::Borrowed(message),
        data: None,
        movements: vec![Movement {
            key: id,
            operation: "UPSERT",
            previous,
            new: record.qty,
            reason: None,
            reference: record.reference.clone(),
        }],
        position: Some(id),
    }
}

/// The position `record` leaves: its quantity and type, and each optional field it gives,
/// over what `before` held.
fn upserted(before: Option<&Stock>, record: &InventoryRecord) -> Stock {
    let mut stock = before.cloned().unwrap_or_else(|| Stock::new(record.qty));
    stock.qty = record.qty;
    let keep = |given: &Option<String>, stored: &mut Option<String>| {
        if given.is_some() {
            stored.clone_from(given);
        }
    };
    if record.corrected_qty.is_some() {
        stock.corrected_qty = record.corrected_qty;
    }
    if record.reserved_qty.is_some() {
        stock.reserved_qty = record.reserved_qty;
    }
    keep(&record.inventory_id, &mut stock.inventory_id);
    keep(&record.reference, &mut stock.reference);
    keep(&record.status, &mut stock.status);
    keep(&record.attributes, &mut stock.attributes);
    if let Some(extra) = &record.extra {
        stock.extra = Some(merged_fields(stock.extra.as_deref(), extra));
    }
    stock.inventory_type.clone_from(&record.inventory_type);
    stock
}

/// Whether [`upserted`] of `record` over `stock` would equal `stock`, without building it.
fn changes_nothing(record: &InventoryRecord, stock: &Stock) -> bool {
    fn same<T: PartialEq>(given: &Option<T>, stored: &Option<T>) -> bool {
        given.is_none() || given == stored
    }
    stock.qty == record.qty
        && stock.inventory_type == record.inventory_type
        && same(&record.corrected_qty, &stock.corrected_qty)
        && same(&record.reserved_qty, &stock.reserved_qty)
        && same(&record.inventory_id, &stock.inventory_id)
        && same(&record.reference, &stock.reference)
        && same(&record.status, &stock.status)
        && same(&record.attributes, &stock.attributes)
        && record.extra.as_ref().is_none_or(|extra| {
            stock.extra.as_deref() == Some(&merged_fields(stock.extra.as_deref(), extra))
        })
}

/// A record's other fields over the stored ones: those it names replace theirs.
fn merged_fields(stored: Option<&str>, given: &str) -> String {
    let parse = |text: &str| serde_json::from_str::<Map<String, Value>>(text).unwrap_or_default();
    let mut fields = stored.map(parse).unwrap_or_default();
    fields.extend(parse(given));
    Value::Object(fields).to_string()
}

/// A StateSet item: adjust, transfer, cycle count, update or import.
pub fn apply_item(view: &mut View, item: &Item) -> Result<Applied, Refusal> {
    let sku = item.sku.as_str();
    match &item.op {
        Op::Adjust {
            location,
            absolute,
            quantity,
            note,
        } => {
            let key = view.key_id(location, sku);
            let previous = view.qty(key);
            let new = if *absolute {
                *quantity
            } else {
                after_change(previous, *quantity)?
            };
            set_qty(view, key, new);
            Ok(Applied {
                message: Cow::Borrowed("Inventory adjusted successfully"),
                data: Some(json!({
                    "location": location,
                    "previous_quantity": previous,
                    "new_quantity": new,
                    "adjustment": new - previous,
                })),
                movements: vec![movement(key, "adjust", previous, new, note)],
                position: Some(key),
            })
        }
        Op::Transfer {
            from,
            to,
            quantity,
            note,
        } => {
            let (from_key, to_key) = (view.key_id(from, sku), view.key_id(to, sku));
            let (from_before, to_before) = (view.qty(from_key), view.qty(to_key));
            let from_after = after_change(from_before, -quantity)?;
            let to_after = after_change(to_before, *quantity)?;
            set_qty(view, from_key, from_after);
            set_qty(view, to_key, to_after);
            Ok(Applied {
                message: Cow::Borrowed("Inventory transferred successfully"),
                data: Some(json!({
                    "quantity": quantity,
                    "from": {"location": from, "previous_quantity": from_before, "new_quantity": from_after},
                    "to": {"location": to, "previous_quantity": to_before, "new_quantity": to_after},
                })),
                movements: vec![
                    movement(from_key, "transfer", from_before, from_after, note),
                    movement(to_key, "transfer", to_before, to_after, note),
                ],
                position: Some(from_key),
            })
        }
        Op::CycleCount {
            location,
            counted,
            note,
        } => {
            let key = view.key_id(location, sku);
            let previous = view.qty(key);
            set_qty(view, key, *counted);
            Ok(Applied {
                message: Cow::Borrowed("Cycle count recorded"),
                data: Some(json!({
                    "location": location,
                    "previous_quantity": previous,
                    "counted_quantity": counted,
                    "new_quantity": counted,
                    "variance": counted - previous,
                })),
                movements: vec![movement(key, "cycle_count", previous, *counted, note)],
                position: Some(key),
            })
        }
        Op::Update { properties } => {
            let exists =
                view.item(&item.sku).is_some() || view.skus_with_positions.contains(&item.sku);
            if !exists {
                return Err(Refusal {
                    code: CODE_NOT_FOUND,
                    message: format!("no inventory item {}: import it first", item.sku),
                });
            }
            let mut merged = view.item(&item.sku).cloned().unwrap_or_default();
            merged.extend(properties.clone());
            view.set_item(&item.sku, merged.clone());
            Ok(Applied {
                message: Cow::Borrowed("Item updated successfully"),
                data: Some(json!({ "properties": merged })),
                movements: Vec::new(),
                position: None,
            })
        }
        Op::Import {
            location,
            quantity,
            properties,
        } => {
            let key = view.key_id(location, sku);
            let created = view.item(&item.sku).is_none() && view.position(key).is_none();
            let previous = view.qty(key);
            view.set_item(&item.sku, properties.clone());
            set_qty(view, key, *quantity);
            Ok(Applied {
                message: Cow::Borrowed("Item imported successfully"),
                data: Some(json!({
                    "location": location,
                    "previous_quantity": previous,
                    "new_quantity": quantity,
                    "created": created,
                })),
                movements: vec![movement(
                    key,
                    "import",
                    previous,
                    *quantity,
                    &Note::default(),
                )],
                position: Some(key),
            })
        }
    }
}

/// `qty + change`, refused below zero or past the integer range.
fn after_change(qty: i64, change: i64) -> Result<i64, Refusal> {
    let conflict = |message: String| Refusal {
        code: CODE_UNPROCESSABLE,
        message,
    };
    match qty.checked_add(change) {
        Some(n) if n >= 0 => Ok(n),
        Some(_) => Err(conflict(format!(
            "insufficient stock: {qty} on hand, {} requested",
            -change
        ))),
        None => Err(conflict(format!(
            "the quantity would overflow: {qty} on hand, {change} added"
        ))),
    }
}

fn set_qty(view: &mut View, key: KeyId, qty: i64) {
    let mut stock = view
        .position(key)
        .cloned()
        .unwrap_or_else(|| Stock::new(qty));
    stock.qty = qty;
    view.set_position(key, stock);
}

fn movement(key: KeyId, operation: &'static str, previous: i64, new: i64, note: &Note) -> Movement {
    Movement {
        key,
        operation,
        previous,
        new,
        reason: note.reason.clone(),
        reference: note.reference.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::stateset::Operation;

    fn key(l: &str, s: &str) -> PositionKey {
        (l.to_owned(), s.to_owned())
    }

    fn view_with(stock: &[(&str, &str, i64)]) -> View {
        View::new(
            stock.iter().map(|(l, s, _)| key(l, s)).collect(),
            stock.iter().map(|(_, _, q)| Some(Stock::new(*q))).collect(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
        )
    }

    /// A view that looked up these SKUs' items (none found) and no positions.
    fn view_of_items(skus: &[&str]) -> View {
        View::new(
            Vec::new(),
            Vec::new(),
            skus.iter().map(|s| s.to_string()),
            Vec::new(),
            Vec::new(),
        )
    }

    fn parse(operation: Operation, json: &str) -> Item {
        let raw: Box<serde_json::value::RawValue> = serde_json::from_str(json).unwrap();
        crate::domain::stateset::parse_item(operation, &raw, "DEFAULT").unwrap()
    }

    #[test]
    fn undoing_a_skus_first_position_forgets_the_sku() {
        let mut view = view_of_items(&["N"]);
        let update = parse(Operation::Update, r#"{"sku":"N","data":{"name":"n"}}"#);
        let mark = view.mark();
        let plus_5 = parse(
            Operation::Adjust,
            r#"{"sku":"N","data":{"adjustment_type":"relative","quantity":5,"location":"W1"}}"#,
        );
        apply_item(&mut view, &plus_5).unwrap();
        assert!(apply_item(&mut view, &update).is_ok(), "N has a position");
        view.undo_to(mark);
        let refused = apply_item(&mut view, &update).unwrap_err();
        assert_eq!(refused.code, CODE_NOT_FOUND, "{refused:?}");
    }

    #[test]
    fn relative_adjustments_and_transfers_never_go_below_zero() {
        let mut view = view_with(&[("W1", "A", 12)]);
        let minus_25 = parse(
            Operation::Adjust,
            r#"{"sku":"A","data":{"adjustment_type":"relative","quantity":-25,"location":"W1"}}"#,
        );
        let refused = apply_item(&mut view, &minus_25).unwrap_err();
        assert_eq!(
            refused.message,
            "insufficient stock: 12 on hand, 25 requested"
        );
        assert_eq!(refused.code, CODE_UNPROCESSABLE);
        let transfer = parse(
            Operation::Transfer,
            r#"{"sku":"A","data":{"from_location":"W1","to_location":"W2","quantity":13}}"#,
        );
        assert!(apply_item(&mut view, &transfer).is_err());
        assert_eq!(
            view.position_at("W1", "A").unwrap().qty,
            12,
            "nothing moved"
        );
        assert!(view.position_at("W2", "A").is_none(), "neither side");
        let (changed, _) = view.take_changes();
        assert!(changed.is_empty());
    }

    #[test]
    fn a_transfer_moves_both_sides_and_records_two_movements() {
        let mut view = view_with(&[("W1", "A", 100)]);
        let transfer = parse(
            Operation::Transfer,
            r#"{"sku":"A","data":{"from_location":"W1","to_location":"W2","quantity":40,"reason":"rebalance"}}"#,
        );
        let applied = apply_item(&mut view, &transfer).unwrap();
        assert_eq!(
            applied.data.unwrap(),
            json!({"quantity": 40,
                   "from": {"location": "W1", "previous_quantity": 100, "new_quantity": 60},
                   "to": {"location": "W2", "previous_quantity": 0, "new_quantity": 40}})
        );
        let moves: Vec<_> = applied
            .movements
            .iter()
            .map(|m| (view.key(m.key).0.as_str(), m.previous, m.new))
            .collect();
        assert_eq!(moves, vec![("W1", 100, 60), ("W2", 0, 40)]);
        assert_eq!(applied.movements[0].reason.as_deref(), Some("rebalance"));
        let (changed, _) = view.take_changes();
        assert_eq!(changed.len(), 2);
        view.take_changes();
        assert!(view.take_changes().0.is_empty());
    }

    #[test]
    fn items_apply_in_order_on_the_view() {
        let mut view = view_with(&[("DEFAULT", "A", 125)]);
        let absolute = parse(
            Operation::Adjust,
            r#"{"sku":"A","data":{"adjustment_type":"absolute","quantity":150}}"#,
        );
        let relative = parse(
            Operation::Adjust,
            r#"{"sku":"A","data":{"adjustment_type":"relative","quantity":-25}}"#,
        );
        let first = apply_item(&mut view, &absolute).unwrap();
        let second = apply_item(&mut view, &relative).unwrap();
        assert_eq!(first.data.unwrap()["adjustment"], 25);
        assert_eq!(
            (
                second.data.as_ref().unwrap()["previous_quantity"].clone(),
                second.data.unwrap()["new_quantity"].clone()
            ),
            (json!(150), json!(125))
        );
        let count = parse(
            Operation::CycleCount,
            r#"{"sku":"A","data":{"counted_quantity":120}}"#,
        );
        assert_eq!(
            apply_item(&mut view, &count).unwrap().data.unwrap()["variance"],
            -5
        );
    }

    #[test]
    fn undo_restores_the_view_and_what_counts_as_changed() {
        let mut view = view_with(&[("W1", "A", 5)]);
        let plus = parse(
            Operation::Adjust,
            r#"{"sku":"A","data":{"adjustment_type":"relative","quantity":1,"location":"W1"}}"#,
        );
        apply_item(&mut view, &plus).unwrap();
        let mark = view.mark();
        apply_item(&mut view, &plus).unwrap();
        let other = parse(
            Operation::Adjust,
            r#"{"sku":"B","data":{"adjustment_type":"relative","quantity":3,"location":"W1"}}"#,
        );
        apply_item(&mut view, &other).unwrap();
        view.undo_to(mark);
        assert_eq!(view.position_at("W1", "A").unwrap().qty, 6);
        assert!(view.position_at("W1", "B").is_none());
        let (changed, _) = view.take_changes();
        assert_eq!(
            changed
                .iter()
                .map(|(k, s)| (view.key(*k).1.as_str(), s.qty))
                .collect::<Vec<_>>(),
            vec![("A", 6)]
        );
    }

    #[test]
    fn updates_need_an_item_and_imports_replace_it() {
        let mut view = view_of_items(&["A"]);
        let update = parse(Operation::Update, r#"{"sku":"A","data":{"price":29.99}}"#);
        let refused = apply_item(&mut view, &update).unwrap_err();
        assert_eq!(
            (refused.code, refused.message.as_str()),
            (404, "no inventory item A: import it first")
        );
        let import = parse(
            Operation::Import,
            r#"{"sku":"A","data":{"name":"Widget","price":10,"quantity":7,"location_id":"W1"}}"#,
        );
        let imported = apply_item(&mut view, &import).unwrap();
        assert_eq!(imported.data.unwrap()["created"], true);
        let applied = apply_item(&mut view, &update).unwrap();
        assert_eq!(
            applied.data.unwrap()["properties"],
            json!({"name": "Widget", "price": 29.99})
        );
        let reimport = parse(
            Operation::Import,
            r#"{"sku":"A","data":{"category":"Tools","quantity":3,"location_id":"W1"}}"#,
        );
        let again = apply_item(&mut view, &reimport).unwrap();
        assert_eq!(again.data.unwrap()["previous_quantity"], 7);
        assert_eq!(
            Value::Object(view.item("A").unwrap().clone()),
            json!({"category": "Tools"})
        );
    }

    /// Batch Pre-Processing decides without building the new position: its answer must
    /// be what comparing the built position says, whatever is stored and whatever given.
    #[test]
    fn pre_processing_sees_a_change_exactly_where_the_upsert_makes_one() {
        let texts = [None, Some("a"), Some("b")];
        let numbers = [None, Some(1), Some(2)];
        let extras = [
            None,
            Some(r#"{"u":1}"#),
            Some(r#"{"u":2}"#),
            Some(r#"{"v":1}"#),
        ];
        let text = |choice: u64, from: &[Option<&str>]| {
            from[choice as usize % from.len()].map(str::to_owned)
        };
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let (mut unchanged, mut changed) = (0, 0);
        for _ in 0..20_000 {
            let stock = Stock {
                id: Some(1),
                qty: (next() % 2) as i64,
                corrected_qty: numbers[next() as usize % 3],
                reserved_qty: numbers[next() as usize % 3],
                inventory_id: text(next(), &texts),
                reference: text(next(), &texts),
                inventory_type: ["LAST_ON_HAND", "DELTA"][next() as usize % 2].to_owned(),
                status: text(next(), &texts),
                attributes: text(next(), &texts),
                extra: text(next(), &extras[..3]),
            };
            // Each field of the record: the stored value (or left out) half the time.
            let mut like = |stored: &Option<String>, from: &[Option<&str>]| match next() % 4 {
                0 => None,
                1 => stored.clone(),
                _ => text(next(), from),
            };
            let record = InventoryRecord {
                location_ref: "L".into(),
                sku_ref: "S".into(),
                inventory_id: like(&stock.inventory_id, &texts),
                reference: like(&stock.reference, &texts),
                status: like(&stock.status, &texts),
                attributes: like(&stock.attributes, &texts),
                extra: like(&stock.extra, &extras),
                qty: if next() % 2 == 0 {
                    stock.qty
                } else {
                    (next() % 2) as i64
                },
                corrected_qty: [None, stock.corrected_qty, numbers[next() as usize % 3]]
                    [next() as usize % 3],
                reserved_qty: [None, stock.reserved_qty, numbers[next() as usize % 3]]
                    [next() as usize % 3],
                inventory_type: if next() % 2 == 0 {
                    stock.inventory_type.clone()
                } else {
                    ["LAST_ON_HAND", "DELTA"][next() as usize % 2].to_owned()
                },
            };
            let same = upserted(Some(&stock), &record) == stock;
            assert_eq!(
                changes_nothing(&record, &stock),
                same,
                "{stock:?} {record:?}"
            );
            if same {
                unchanged += 1;
            } else {
                changed += 1;
            }
        }
        assert!(unchanged > 100 && changed > 100, "{unchanged} / {changed}");
    }

    #[test]
    fn a_fluent_upsert_keeps_what_the_record_leaves_out() {
        let mut view = view_with(&[]);
        let mut record = InventoryRecord {
            location_ref: "L".into(),
            sku_ref: "S".into(),
            qty: 10,
            corrected_qty: Some(2),
            reserved_qty: None,
            inventory_id: None,
            reference: Some("R1".into()),
            inventory_type: DEFAULT_TYPE.into(),
            status: Some("ACTIVE".into()),
            attributes: None,
            extra: Some(r#"{"uom":"EA"}"#.into()),
        };
        let created = upsert(&mut view, &record, true);
        assert_eq!(created.message, CREATED);
        assert_eq!(created.movements[0].previous, 0);
        record.qty = 4;
        record.corrected_qty = None;
        record.status = None;
        record.extra = Some(r#"{"lot":"L1"}"#.into());
        let updated = upsert(&mut view, &record, true);
        assert_eq!(updated.message, UPDATED);
        assert_eq!(
            (updated.movements[0].previous, updated.movements[0].new),
            (10, 4)
        );
        let stock = view.position_at("L", "S").unwrap().clone();
        assert_eq!(
            (stock.qty, stock.corrected_qty, stock.status.as_deref()),
            (4, Some(2), Some("ACTIVE"))
        );
        assert_eq!(stock.extra.as_deref(), Some(r#"{"lot":"L1","uom":"EA"}"#));

        // Batch Pre-Processing: the same record again changes nothing, unless it is off.
        view.take_changes();
        let again = upsert(&mut view, &record, true);
        assert_eq!(
            (again.message.as_ref(), again.movements.len()),
            (UNCHANGED, 0)
        );
        assert!(view.take_changes().0.is_empty());
        let forced = upsert(&mut view, &record, false);
        assert_eq!(
            (forced.message.as_ref(), forced.movements.len()),
            (UPDATED, 1)
        );
    }
}
