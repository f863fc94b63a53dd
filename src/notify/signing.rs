//! Signed deliveries: `Stockbatch-Signature: v1=<hex HMAC-SHA256 of "<timestamp>.<body>">`
//! under the subscription's secret, with the timestamp in `Stockbatch-Timestamp` (Unix
//! seconds) so a receiver can refuse old replays.

use hmac::{Hmac, Mac};
use sha2::Sha256;

pub const SIGNATURE_HEADER: &str = "Stockbatch-Signature";
pub const TIMESTAMP_HEADER: &str = "Stockbatch-Timestamp";
pub const EVENT_ID_HEADER: &str = "Stockbatch-Event-Id";
pub const EVENT_NAME_HEADER: &str = "Stockbatch-Event";
pub const DELIVERY_HEADER: &str = "Stockbatch-Delivery";

fn mac(secret: &str, timestamp: i64, body: &[u8]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The `Stockbatch-Signature` value for `body` sent at `timestamp`.
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let tag = mac(secret, timestamp, body).finalize().into_bytes();
    format!("v1={}", crate::auth::secrets::hex(&tag))
}

/// Whether `signature` is `body`'s at `timestamp` under `secret` (in constant time).
pub fn verify(secret: &str, timestamp: i64, body: &[u8], signature: &str) -> bool {
    let Some(hex) = signature.strip_prefix("v1=") else {
        return false;
    };
    let Some(tag) = (0..hex.len())
        .step_by(2)
        .map(|i| {
            hex.get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        })
        .collect::<Option<Vec<u8>>>()
    else {
        return false;
    };
    mac(secret, timestamp, body).verify_slice(&tag).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_and_any_change_breaks_them() {
        let body = br#"{"name":"BATCH_COMPLETE"}"#;
        let signature = sign("whsec_x", 1_700_000_000, body);
        assert!(signature.starts_with("v1=") && signature.len() == 3 + 64);
        assert!(verify("whsec_x", 1_700_000_000, body, &signature));
        assert!(!verify("whsec_y", 1_700_000_000, body, &signature));
        assert!(!verify("whsec_x", 1_700_000_001, body, &signature));
        assert!(!verify("whsec_x", 1_700_000_000, b"{}", &signature));
        assert!(!verify("whsec_x", 1_700_000_000, body, "v1=zz"));
    }

    #[test]
    fn the_signature_matches_what_the_readme_verifies_in_python() {
        // hmac.new(b"whsec_test", b'1700000000.{"id":"e1"}', hashlib.sha256).hexdigest()
        assert_eq!(
            sign("whsec_test", 1_700_000_000, br#"{"id":"e1"}"#),
            "v1=6a85cb117c993612a34c72b4cfb5a16baed25a80d26e298ce0e6671320fd07c8"
        );
    }
}
