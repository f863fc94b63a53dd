//! What a batch touches, as a box over (SKU, location): the queue runs a batch only after
//! every earlier unfinished batch of its retailer whose box meets its own, so two batches
//! that share a position never run at once and always apply in acceptance order.
//!
//! A position is (location, SKU). An item's properties (StateSet `update`, `import`) live at
//! location `""`, below every real location, so they order with every batch touching them.

/// The location under which a SKU's item properties are kept in key boxes.
pub const ITEM_LOCATION: &str = "";

/// The smallest box holding every key of a batch; compared byte-wise, as Rust orders `str`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KeyBox {
    pub sku_min: String,
    pub sku_max: String,
    pub loc_min: String,
    pub loc_max: String,
}

impl KeyBox {
    /// The box of `keys` (location, SKU); `None` when there are none.
    pub fn of<'a>(keys: impl IntoIterator<Item = (&'a str, &'a str)>) -> Option<KeyBox> {
        let mut keys = keys.into_iter();
        let (loc, sku) = keys.next()?;
        let mut bounds = KeyBox::new(loc, sku);
        for (loc, sku) in keys {
            bounds.widen(loc, sku);
        }
        Some(bounds)
    }

    /// The box of one key (location, SKU).
    pub fn new(location: &str, sku: &str) -> KeyBox {
        KeyBox {
            sku_min: sku.to_owned(),
            sku_max: sku.to_owned(),
            loc_min: location.to_owned(),
            loc_max: location.to_owned(),
        }
    }

    /// Grows the box to hold the key (location, SKU).
    pub fn widen(&mut self, location: &str, sku: &str) {
        widen(&mut self.sku_min, &mut self.sku_max, sku);
        widen(&mut self.loc_min, &mut self.loc_max, location);
    }

    /// Whether two boxes share a point: only then may their batches touch a common key.
    pub fn meets(&self, other: &KeyBox) -> bool {
        self.sku_min <= other.sku_max
            && other.sku_min <= self.sku_max
            && self.loc_min <= other.loc_max
            && other.loc_min <= self.loc_max
    }
}

fn widen(min: &mut String, max: &mut String, value: &str) {
    if value < min.as_str() {
        *min = value.to_owned();
    }
    if value > max.as_str() {
        *max = value.to_owned();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boxes_bound_their_keys_and_meet_only_when_they_may_share_one() {
        let a = KeyBox::of([("L01", "SKU-0001"), ("L20", "SKU-0250")]).unwrap();
        assert_eq!(
            (a.sku_min.as_str(), a.sku_max.as_str()),
            ("SKU-0001", "SKU-0250")
        );
        assert_eq!((a.loc_min.as_str(), a.loc_max.as_str()), ("L01", "L20"));
        // The next chunk of a SKU-sorted feed: disjoint SKUs.
        let b = KeyBox::of([("L01", "SKU-0251"), ("L20", "SKU-0500")]).unwrap();
        assert!(!a.meets(&b) && !b.meets(&a));
        // The next chunk of a store-by-store feed: the same SKUs at another store.
        let c = KeyBox::of([("L21", "SKU-0001"), ("L21", "SKU-0250")]).unwrap();
        assert!(!a.meets(&c));
        // A transfer between two stores the first batch covers.
        let d = KeyBox::of([("L05", "SKU-0100"), ("L30", "SKU-0100")]).unwrap();
        assert!(a.meets(&d));
        // Item properties sort below every location.
        let item = KeyBox::of([(ITEM_LOCATION, "SKU-0100")]).unwrap();
        assert!(!a.meets(&item));
        assert!(
            KeyBox::of([(ITEM_LOCATION, "SKU-0100"), ("L05", "SKU-0100")])
                .unwrap()
                .meets(&a)
        );
        assert_eq!(KeyBox::of([]), None);
    }
}
