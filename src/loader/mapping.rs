//! Which input column or key becomes which InventoryPost field, and turning one CSV row or
//! JSON record into the record the loader posts.
//!
//! CSV columns are matched to fields by name, case-insensitively and ignoring spaces,
//! `_` and `-` (`SKU Ref`, `sku_ref` and `skuRef` are all `skuRef`), with a few common
//! aliases ([`ALIASES`]); `--map COLUMN=FIELD` overrides any of that, and `--map COLUMN=-`
//! leaves a column out. Other columns are kept: they travel as extra fields of the record,
//! which the service stores as sent (as it does Fluent's `uom`, `lot`, `expiry`, ...).
//! JSON records are InventoryPosts already: only `--map` renames their top-level keys.

use std::fmt::Write as _;

use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// The fields an InventoryPost documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    RetailerId,
    LocationRef,
    SkuRef,
    Qty,
    CorrectedQty,
    ReservedQty,
    InventoryId,
    Ref,
    Type,
    Status,
    Attributes,
}

/// What a field's cells hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    /// Sent as a JSON integer: a CSV cell must be a whole number.
    Integer,
    /// A JSON object, written as JSON in the cell.
    Object,
}

impl Field {
    pub const ALL: [Field; 11] = [
        Field::RetailerId,
        Field::LocationRef,
        Field::SkuRef,
        Field::Qty,
        Field::CorrectedQty,
        Field::ReservedQty,
        Field::InventoryId,
        Field::Ref,
        Field::Type,
        Field::Status,
        Field::Attributes,
    ];

    /// The field's name in an InventoryPost.
    pub fn name(self) -> &'static str {
        match self {
            Field::RetailerId => "retailerId",
            Field::LocationRef => "locationRef",
            Field::SkuRef => "skuRef",
            Field::Qty => "qty",
            Field::CorrectedQty => "correctedQty",
            Field::ReservedQty => "reservedQty",
            Field::InventoryId => "inventoryId",
            Field::Ref => "ref",
            Field::Type => "type",
            Field::Status => "status",
            Field::Attributes => "attributes",
        }
    }

    fn kind(self) -> Kind {
        match self {
            Field::Qty | Field::CorrectedQty | Field::ReservedQty => Kind::Integer,
            Field::Attributes => Kind::Object,
            _ => Kind::Text,
        }
    }
}

/// Column names (normalised: lower case, letters and digits only) that mean a field
/// beside the field's own name.
pub const ALIASES: [(&str, Field); 16] = [
    ("retailer", Field::RetailerId),
    ("location", Field::LocationRef),
    ("loc", Field::LocationRef),
    ("store", Field::LocationRef),
    ("sku", Field::SkuRef),
    ("product", Field::SkuRef),
    ("productref", Field::SkuRef),
    ("quantity", Field::Qty),
    ("onhand", Field::Qty),
    ("stock", Field::Qty),
    ("corrected", Field::CorrectedQty),
    ("correctedquantity", Field::CorrectedQty),
    ("reserved", Field::ReservedQty),
    ("reservedquantity", Field::ReservedQty),
    ("reference", Field::Ref),
    ("inventorytype", Field::Type),
];

/// The column the service's own results export (`.../results?format=csv`) puts every
/// other field in, as a JSON object: its fields are kept, so an export loads back.
const OTHER_FIELDS: &str = "otherfields";

/// What becomes of one column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Field(Field),
    /// Kept as a field of this name beside the documented ones.
    Extra(String),
    /// A JSON object whose fields are kept beside the documented ones.
    OtherFields,
    /// Left out.
    Ignore,
}

impl Target {
    fn describe(&self) -> String {
        match self {
            Target::Field(f) => f.name().to_owned(),
            Target::Extra(name) => format!("{name} (kept as an extra field)"),
            Target::OtherFields => "its JSON object's fields (kept as extra fields)".to_owned(),
            Target::Ignore => "(left out)".to_owned(),
        }
    }

    fn canonical(&self) -> String {
        match self {
            Target::Field(f) => f.name().to_owned(),
            Target::Extra(name) => format!("+{name}"),
            Target::OtherFields => "*".to_owned(),
            Target::Ignore => "-".to_owned(),
        }
    }
}

/// Lower case, letters and digits only: `SKU Ref`, `sku_ref` and `skuRef` are alike.
fn normalize(name: &str) -> String {
    name.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// The field a name means, by the default mapping.
fn default_field(name: &str) -> Option<Field> {
    let n = normalize(name);
    Field::ALL
        .into_iter()
        .find(|f| normalize(f.name()) == n)
        .or_else(|| ALIASES.iter().find(|(a, _)| *a == n).map(|(_, f)| *f))
}

/// A `--map` target: `-` (or nothing) leaves the column out; a field's name or alias is
/// that field; anything else is an extra field of that name.
fn parse_target(target: &str) -> Target {
    let target = target.trim();
    match target {
        "" | "-" => Target::Ignore,
        t if normalize(t) == OTHER_FIELDS => Target::OtherFields,
        t => default_field(t).map_or_else(|| Target::Extra(t.to_owned()), Target::Field),
    }
}

/// `--map COLUMN=FIELD` arguments, split; the column is everything before the last `=`.
pub fn parse_maps(maps: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    maps.iter()
        .map(|m| match m.rsplit_once('=') {
            Some((column, field)) if !column.trim().is_empty() => {
                Ok((column.trim().to_owned(), field.trim().to_owned()))
            }
            _ => anyhow::bail!("--map takes COLUMN=FIELD (or COLUMN=- to leave it out), not '{m}'"),
        })
        .collect()
}

/// How the columns of one CSV file map to fields.
#[derive(Debug, Clone)]
pub struct CsvMapping {
    headers: Vec<String>,
    targets: Vec<Target>,
    has_retailer: bool,
}

impl CsvMapping {
    /// Resolves `headers` with the default mapping and `maps`; refuses a mapping that
    /// lacks a key field or maps two columns to one field.
    pub fn resolve(headers: &[String], maps: &[(String, String)]) -> anyhow::Result<CsvMapping> {
        let headers: Vec<String> = headers.iter().map(|h| h.trim().to_owned()).collect();
        let mut targets: Vec<Option<Target>> = vec![None; headers.len()];
        for (column, field) in maps {
            let i = headers
                .iter()
                .position(|h| h.eq_ignore_ascii_case(column))
                .ok_or_else(|| {
                    anyhow::anyhow!(
                        "--map {column}={field}: the file has no column {column} (its columns: {})",
                        headers.join(", ")
                    )
                })?;
            targets[i] = Some(parse_target(field));
        }
        let targets: Vec<Target> = targets
            .into_iter()
            .zip(&headers)
            .map(|(target, header)| {
                target.unwrap_or_else(|| match default_field(header) {
                    Some(f) => Target::Field(f),
                    None if normalize(header) == OTHER_FIELDS => Target::OtherFields,
                    None if header.is_empty() => Target::Ignore,
                    None => Target::Extra(header.clone()),
                })
            })
            .collect();
        for (i, target) in targets.iter().enumerate() {
            if matches!(target, Target::Ignore | Target::OtherFields) {
                continue;
            }
            if let Some(j) = targets[..i].iter().position(|t| t == target) {
                anyhow::bail!(
                    "columns {} and {} both map to {}: --map one of them to another field, \
                     or to - to leave it out",
                    headers[j],
                    headers[i],
                    target.canonical().trim_start_matches('+')
                );
            }
            if let Target::Extra(name) = target {
                if let Some(f) = default_field(name) {
                    anyhow::bail!(
                        "column {} would be kept as {name}, which means {}",
                        headers[i],
                        f.name()
                    );
                }
            }
        }
        let has = |f: Field| targets.contains(&Target::Field(f));
        for required in [Field::SkuRef, Field::LocationRef, Field::Qty] {
            if !has(required) {
                anyhow::bail!(
                    "no column maps to {}: name one with --map COLUMN={} (the file's columns: {})",
                    required.name(),
                    required.name(),
                    headers.join(", ")
                );
            }
        }
        Ok(CsvMapping {
            has_retailer: has(Field::RetailerId),
            headers,
            targets,
        })
    }

    /// One line per column: `Quantity -> qty`.
    pub fn describe(&self) -> Vec<String> {
        self.headers
            .iter()
            .zip(&self.targets)
            .map(|(h, t)| format!("{h} -> {}", t.describe()))
            .collect()
    }

    /// The mapping in a stable form, part of the load's identity.
    pub fn canonical(&self) -> String {
        let mut out = String::new();
        for (h, t) in self.headers.iter().zip(&self.targets) {
            let _ = write!(out, "{h:?}={};", t.canonical());
        }
        out
    }

    /// Appends the record of one row to `out` as a JSON object; on a bad row appends
    /// nothing and says what is wrong. Empty cells are left out; `retailerId` is
    /// `retailer` unless the row names one.
    pub fn write_record(
        &self,
        row: &csv::ByteRecord,
        retailer: &str,
        out: &mut Vec<u8>,
    ) -> Result<(), String> {
        let start = out.len();
        let written = self.write_fields(row, retailer, out);
        if written.is_err() {
            out.truncate(start);
        }
        written
    }

    fn write_fields(
        &self,
        row: &csv::ByteRecord,
        retailer: &str,
        out: &mut Vec<u8>,
    ) -> Result<(), String> {
        if row.len() != self.headers.len() {
            return Err(format!(
                "the row has {} fields, the header {}",
                row.len(),
                self.headers.len()
            ));
        }
        let mut object = ObjectWriter::new(out);
        let retailer_cell = self
            .targets
            .iter()
            .position(|t| *t == Target::Field(Field::RetailerId))
            .map(|i| cell(row, i, &self.headers[i]))
            .transpose()?
            .filter(|c| !c.is_empty());
        if !self.has_retailer || retailer_cell.is_none() {
            object.string(Field::RetailerId.name(), retailer);
        }
        for (i, target) in self.targets.iter().enumerate() {
            let value = cell(row, i, &self.headers[i])?;
            if value.is_empty() {
                continue;
            }
            match target {
                Target::Ignore => {}
                Target::Field(f) => match f.kind() {
                    Kind::Text => object.string(f.name(), value),
                    Kind::Integer => object.raw(f.name(), &integer(f, value)?.to_string()),
                    Kind::Object => object.raw(f.name(), json_object(f.name(), value)?.get()),
                },
                Target::Extra(name) => object.string(name, value),
                Target::OtherFields => {
                    let fields: Map<String, Value> = serde_json::from_str(value)
                        .map_err(|_| format!("'{}' must be a JSON object", self.headers[i]))?;
                    for (name, value) in fields {
                        if self.is_mapped(&name) {
                            return Err(format!(
                                "'{}' names {name}, which a column gives too",
                                self.headers[i]
                            ));
                        }
                        object.value(&name, &value);
                    }
                }
            }
        }
        object.finish();
        Ok(())
    }

    fn is_mapped(&self, name: &str) -> bool {
        name == Field::RetailerId.name()
            || self.targets.iter().any(|t| match t {
                Target::Field(f) => f.name() == name,
                Target::Extra(e) => e == name,
                _ => false,
            })
    }

    /// The row as `{"column": "cell", ...}`, for the failure report.
    pub fn row_json(&self, row: &csv::ByteRecord) -> String {
        let mut out = Vec::new();
        let mut object = ObjectWriter::new(&mut out);
        for (i, field) in row.iter().enumerate() {
            let name = self.headers.get(i).map_or("", String::as_str);
            let name = if name.is_empty() {
                format!("column {}", i + 1)
            } else {
                name.to_owned()
            };
            object.string(&name, &String::from_utf8_lossy(field));
        }
        object.finish();
        String::from_utf8(out).expect("JSON is UTF-8")
    }
}

fn cell<'r>(row: &'r csv::ByteRecord, i: usize, header: &str) -> Result<&'r str, String> {
    let bytes = row.get(i).unwrap_or_default();
    std::str::from_utf8(bytes)
        .map(str::trim)
        .map_err(|_| format!("'{header}' is not UTF-8 text"))
}

/// A whole number: `12`, `-3`, `+4`, also `12.0` as spreadsheets write them.
fn integer(field: &Field, text: &str) -> Result<i64, String> {
    let whole = match text.split_once('.') {
        Some((whole, fraction)) if !fraction.is_empty() && fraction.bytes().all(|b| b == b'0') => {
            whole
        }
        _ => text,
    };
    whole
        .parse()
        .map_err(|_| format!("'{}' must be a whole number, not '{text}'", field.name()))
}

fn json_object(name: &str, text: &str) -> Result<Box<RawValue>, String> {
    let raw: Box<RawValue> =
        serde_json::from_str(text).map_err(|_| format!("'{name}' must be a JSON object"))?;
    if !raw.get().starts_with('{') {
        return Err(format!("'{name}' must be a JSON object"));
    }
    Ok(raw)
}

/// Writes a JSON object field by field, in the order given: the same input always makes
/// the same bytes, which the Idempotency-Key of its batch relies on.
struct ObjectWriter<'o> {
    out: &'o mut Vec<u8>,
    first: bool,
}

impl<'o> ObjectWriter<'o> {
    fn new(out: &'o mut Vec<u8>) -> ObjectWriter<'o> {
        out.push(b'{');
        ObjectWriter { out, first: true }
    }

    fn key(&mut self, name: &str) {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        serde_json::to_writer(&mut *self.out, name).expect("writing to memory");
        self.out.push(b':');
    }

    fn string(&mut self, name: &str, value: &str) {
        self.key(name);
        serde_json::to_writer(&mut *self.out, value).expect("writing to memory");
    }

    fn value(&mut self, name: &str, value: &Value) {
        self.key(name);
        serde_json::to_writer(&mut *self.out, value).expect("writing to memory");
    }

    fn raw(&mut self, name: &str, json: &str) {
        self.key(name);
        self.out.extend_from_slice(json.as_bytes());
    }

    fn finish(self) {
        self.out.push(b'}');
    }
}

/// `--map` for JSON records: top-level keys renamed (or left out with `-`).
#[derive(Debug, Clone, Default)]
pub struct JsonMapping {
    renames: Vec<(String, Option<String>)>,
}

impl JsonMapping {
    pub fn new(maps: &[(String, String)]) -> JsonMapping {
        JsonMapping {
            renames: maps
                .iter()
                .map(|(from, to)| {
                    let to = match parse_target(to) {
                        Target::Ignore => None,
                        Target::Field(f) => Some(f.name().to_owned()),
                        _ => Some(to.clone()),
                    };
                    (from.clone(), to)
                })
                .collect(),
        }
    }

    pub fn describe(&self) -> Vec<String> {
        self.renames
            .iter()
            .map(|(from, to)| format!("{from} -> {}", to.as_deref().unwrap_or("(left out)")))
            .collect()
    }

    /// The renames in a stable form, part of the load's identity.
    pub fn canonical(&self) -> String {
        let mut out = String::new();
        for (from, to) in &self.renames {
            let _ = write!(out, "{from:?}={:?};", to.as_deref().unwrap_or("-"));
        }
        out
    }

    /// Appends the record `text` holds, renamed, with `retailerId` filled in when it has
    /// none; a record that is not a JSON object is refused.
    pub fn write_record(
        &self,
        text: &[u8],
        retailer: &str,
        out: &mut Vec<u8>,
    ) -> Result<(), String> {
        let value: Value = serde_json::from_slice(text).map_err(|e| {
            format!(
                "the record is not valid JSON: {}",
                e.to_string().replace(" at line 1", "")
            )
        })?;
        let Value::Object(mut record) = value else {
            return Err("the record is not a JSON object".to_owned());
        };
        for (from, to) in &self.renames {
            if let Some(value) = record.remove(from) {
                if let Some(to) = to {
                    record.insert(to.clone(), value);
                }
            }
        }
        if record.get("retailerId").is_none_or(Value::is_null) {
            record.insert("retailerId".to_owned(), Value::String(retailer.to_owned()));
        }
        serde_json::to_writer(out, &record).expect("writing to memory");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    fn record(mapping: &CsvMapping, cells: &[&str]) -> Result<String, String> {
        let mut out = Vec::new();
        mapping.write_record(&csv::ByteRecord::from(cells.to_vec()), "R1", &mut out)?;
        Ok(String::from_utf8(out).unwrap())
    }

    #[test]
    fn default_mapping_takes_names_and_aliases() {
        let m =
            CsvMapping::resolve(&headers(&["SKU", "Location", "Quantity", "lot"]), &[]).unwrap();
        assert_eq!(
            record(&m, &["A-1", "L1", " 12 ", "L99"]).unwrap(),
            r#"{"retailerId":"R1","skuRef":"A-1","locationRef":"L1","qty":12,"lot":"L99"}"#
        );
        let m = CsvMapping::resolve(
            &headers(&["sku_ref", "location-ref", "QTY", "corrected_qty"]),
            &[],
        )
        .unwrap();
        assert_eq!(
            record(&m, &["A", "L", "1.00", ""]).unwrap(),
            r#"{"retailerId":"R1","skuRef":"A","locationRef":"L","qty":1}"#
        );
    }

    #[test]
    fn maps_override_and_leave_out() {
        let maps = parse_maps(&[
            "Article=skuRef".into(),
            "Where=locationRef".into(),
            "Note=-".into(),
            "Count=qty".into(),
        ])
        .unwrap();
        let m =
            CsvMapping::resolve(&headers(&["Article", "Where", "Count", "Note"]), &maps).unwrap();
        assert_eq!(
            record(&m, &["A", "L", "3", "x"]).unwrap(),
            r#"{"retailerId":"R1","skuRef":"A","locationRef":"L","qty":3}"#
        );
    }

    #[test]
    fn refuses_what_cannot_load() {
        let missing = CsvMapping::resolve(&headers(&["sku", "qty"]), &[]).unwrap_err();
        assert!(
            missing
                .to_string()
                .contains("no column maps to locationRef"),
            "{missing}"
        );
        let twice =
            CsvMapping::resolve(&headers(&["sku", "skuRef", "loc", "qty"]), &[]).unwrap_err();
        assert!(twice.to_string().contains("both map to skuRef"), "{twice}");
        let m = CsvMapping::resolve(&headers(&["sku", "loc", "qty", "attributes"]), &[]).unwrap();
        assert!(record(&m, &["A", "L", "ten", ""])
            .unwrap_err()
            .contains("whole number"));
        assert!(record(&m, &["A", "L", "1", "[1]"])
            .unwrap_err()
            .contains("JSON object"));
        assert!(record(&m, &["A", "L"]).unwrap_err().contains("2 fields"));
        assert_eq!(
            record(&m, &["A", "L", "1", r#"{"a": 1}"#]).unwrap(),
            r#"{"retailerId":"R1","skuRef":"A","locationRef":"L","qty":1,"attributes":{"a": 1}}"#
        );
    }

    #[test]
    fn a_row_naming_its_retailer_keeps_it() {
        let m = CsvMapping::resolve(&headers(&["retailerId", "sku", "loc", "qty"]), &[]).unwrap();
        assert_eq!(
            record(&m, &["R2", "A", "L", "1"]).unwrap(),
            r#"{"retailerId":"R2","skuRef":"A","locationRef":"L","qty":1}"#
        );
        assert_eq!(
            record(&m, &["", "A", "L", "1"]).unwrap(),
            r#"{"retailerId":"R1","skuRef":"A","locationRef":"L","qty":1}"#
        );
    }

    #[test]
    fn json_records_are_renamed() {
        let m = JsonMapping::new(&[("sku".into(), "skuRef".into()), ("junk".into(), "-".into())]);
        let mut out = Vec::new();
        m.write_record(
            br#"{"sku":"A","locationRef":"L","qty":1,"junk":true}"#,
            "R1",
            &mut out,
        )
        .unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"skuRef":"A","locationRef":"L","qty":1,"retailerId":"R1"})
        );
        assert!(m.write_record(b"[1]", "R1", &mut out).is_err());
    }
}
