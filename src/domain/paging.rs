//! Paging of results and listings: `start` is 1-based, as in Fluent's responses.

/// Page size when the client names none.
pub const DEFAULT_COUNT: i64 = 100;
/// Largest page a client may ask for: a whole batch.
pub const MAX_COUNT: i64 = 5000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    /// 1-based index of the first item.
    pub start: i64,
    /// Items asked for.
    pub count: i64,
}

impl Page {
    /// Checks `start`/`count` from a query string, applying the defaults.
    pub fn from_query(start: Option<i64>, count: Option<i64>) -> Result<Page, Vec<String>> {
        let start = start.unwrap_or(1);
        let count = count.unwrap_or(DEFAULT_COUNT);
        let mut errors = Vec::new();
        if start < 1 {
            errors.push("'start' must be 1 or more".to_owned());
        }
        if !(1..=MAX_COUNT).contains(&count) {
            errors.push(format!("'count' must be between 1 and {MAX_COUNT}"));
        }
        if errors.is_empty() {
            Ok(Page { start, count })
        } else {
            Err(errors)
        }
    }

    /// 0-based offset of the first item.
    pub fn offset(self) -> i64 {
        self.start - 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_bounds() {
        assert_eq!(
            Page::from_query(None, None),
            Ok(Page {
                start: 1,
                count: DEFAULT_COUNT
            })
        );
        assert_eq!(
            Page::from_query(Some(5001), Some(5000)).unwrap().offset(),
            5000
        );
        assert_eq!(Page::from_query(Some(0), Some(0)).unwrap_err().len(), 2);
        assert!(Page::from_query(Some(1), Some(1_000_000_000_000)).is_err());
        assert!(Page::from_query(Some(-4), None).is_err());
    }
}
