//! Webhook subscriptions: what a valid create request is.

use serde::Deserialize;

use super::json::parse_object;
use super::scalar::{optional_text, Scalar, MAX_KEY_CHARS};

pub const BATCH_CREATE: &str = "BATCH_CREATE";
pub const BATCH_COMPLETE: &str = "BATCH_COMPLETE";
pub const INVENTORY_CHANGED: &str = "INVENTORY_CHANGED";
pub const JOB_CLOSED: &str = "JOB_CLOSED";
pub const EVENT_NAMES: [&str; 4] = [BATCH_CREATE, BATCH_COMPLETE, INVENTORY_CHANGED, JOB_CLOSED];
/// Subscribes to every event name.
pub const ALL_EVENTS: &str = "*";

/// Whether a subscription to `events` (names, comma-separated) wants `event`.
pub fn wants(events: &str, event: &str) -> bool {
    events
        .split(',')
        .any(|name| name == event || name == ALL_EVENTS)
}

/// Shortest and longest secret a client may choose.
const SECRET_CHARS: std::ops::RangeInclusive<usize> = 16..=256;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SubscriptionWire<'a> {
    #[serde(default, borrow)]
    url: Option<Scalar<'a>>,
    #[serde(default)]
    events: Option<serde_json::Value>,
    #[serde(default, borrow)]
    retailer_id: Option<Scalar<'a>>,
    #[serde(default, borrow)]
    secret: Option<Scalar<'a>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionDraft {
    pub url: String,
    /// Event names, or `*` alone for all of them.
    pub events: Vec<String>,
    /// The retailer whose events it gets; `None` means the caller's (an administrator's:
    /// every retailer's).
    pub retailer_id: Option<String>,
    /// The secret the client chose, if it did; otherwise one is generated.
    pub secret: Option<String>,
}

/// Parses `POST /api/v4.1/webhooks` and lists every problem with it. The URL's
/// destination is checked by the caller (it resolves names).
pub fn parse_subscription(body: &[u8]) -> Result<SubscriptionDraft, Vec<String>> {
    let wire: SubscriptionWire =
        parse_object(body).map_err(|e| vec![format!("the request body is {e}")])?;
    let mut errors = Vec::new();
    let url = match wire.url.as_ref().and_then(Scalar::as_str) {
        // A blank URL is a string, as the schema asks: the destination check refuses it
        // (422) like any other URL it cannot use.
        Some(url) if !url.is_empty() => url.trim().to_owned(),
        Some(_) | None => {
            errors.push("'url' is required: the http(s) URL events are POSTed to".to_owned());
            String::new()
        }
    };
    let events = parse_events(wire.events.as_ref()).unwrap_or_else(|e| {
        errors.push(e);
        Vec::new()
    });
    let retailer_id = optional_text("retailerId", wire.retailer_id.as_ref(), MAX_KEY_CHARS)
        .unwrap_or_else(|e| {
            errors.push(e);
            None
        });
    let secret = match &wire.secret {
        None => None,
        Some(Scalar::Str(s))
            if SECRET_CHARS.contains(&s.chars().count())
                && s.chars().all(|c| c.is_ascii_graphic()) =>
        {
            Some(s.to_string())
        }
        Some(_) => {
            errors.push(format!(
                "'secret' must be {} to {} printable ASCII characters (or left out to have one generated)",
                SECRET_CHARS.start(),
                SECRET_CHARS.end()
            ));
            None
        }
    };
    if errors.is_empty() {
        Ok(SubscriptionDraft {
            url,
            events,
            retailer_id,
            secret,
        })
    } else {
        Err(errors)
    }
}

fn parse_events(value: Option<&serde_json::Value>) -> Result<Vec<String>, String> {
    let known = || format!("{} or \"{ALL_EVENTS}\"", EVENT_NAMES.join(", "));
    let Some(serde_json::Value::Array(items)) = value else {
        return Err(format!(
            "'events' is required: a list of event names ({})",
            known()
        ));
    };
    let mut events = Vec::new();
    for item in items {
        match item.as_str() {
            Some(name) if name == ALL_EVENTS || EVENT_NAMES.contains(&name) => {
                if !events.iter().any(|e| e == name) {
                    events.push(name.to_owned());
                }
            }
            _ => return Err(format!("'events' holds {item}: known are {}", known())),
        }
    }
    if events.is_empty() {
        return Err(format!("'events' must name at least one of {}", known()));
    }
    if events.iter().any(|e| e == ALL_EVENTS) {
        events = vec![ALL_EVENTS.to_owned()];
    }
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_request_is_read() {
        let draft = parse_subscription(
            br#"{"url":"https://hooks.example.com/x","events":["BATCH_COMPLETE","BATCH_COMPLETE","INVENTORY_CHANGED"],"retailerId":7,"secret":"0123456789abcdef"}"#,
        )
        .unwrap();
        assert_eq!(draft.url, "https://hooks.example.com/x");
        assert_eq!(draft.events, vec!["BATCH_COMPLETE", "INVENTORY_CHANGED"]);
        assert_eq!(draft.retailer_id.as_deref(), Some("7"));
        assert_eq!(draft.secret.as_deref(), Some("0123456789abcdef"));
        let all =
            parse_subscription(br#"{"url":"https://h/","events":["*","JOB_CLOSED"]}"#).unwrap();
        assert_eq!(all.events, vec!["*"]);
    }

    #[test]
    fn every_problem_is_listed() {
        let errors =
            parse_subscription(br#"{"events":["BATCH_DONE"],"secret":"short"}"#).unwrap_err();
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert!(errors[0].contains("'url' is required"));
        assert!(errors[1].contains("\"BATCH_DONE\""));
        assert!(errors[2].contains("'secret' must be 16 to 256"));
        assert!(
            parse_subscription(br#"{"url":"https://h/","events":[]}"#).unwrap_err()[0]
                .contains("at least one")
        );
        assert!(parse_subscription(b"[]").unwrap_err()[0].contains("not a JSON object"));
    }
}
