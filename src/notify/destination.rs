//! Where webhooks may go: `http(s)` URLs of public addresses. Loopback, private,
//! link-local and other non-public addresses are refused unless the operator allows them —
//! when a subscription is made, and again on every connection (a resolver that drops such
//! addresses), so a name that later resolves elsewhere cannot reach inside.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::Url;

/// Longest URL accepted.
const MAX_URL_BYTES: usize = 2048;

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct DestinationError(pub String);

/// Checks a subscription's URL: its form, and where its host resolves now.
pub fn check_destination(raw: &str, allow_private: bool) -> Result<Url, DestinationError> {
    let url = check_url(raw, allow_private)?;
    if let Some(host) = url.host_str().filter(|_| literal_ip(&url).is_none()) {
        let port = url.port_or_known_default().unwrap_or(443);
        let addrs: Vec<SocketAddr> = (host, port)
            .to_socket_addrs()
            .map_err(|e| DestinationError(format!("the URL's host {host} does not resolve: {e}")))?
            .collect();
        if let Some(refused) = addrs.iter().find(|a| !allowed_ip(a.ip(), allow_private)) {
            return Err(refused_address(host, refused.ip()));
        }
    }
    Ok(url)
}

/// The URL's form, and its address when it is one.
pub fn check_url(raw: &str, allow_private: bool) -> Result<Url, DestinationError> {
    let bad = |why: &str| DestinationError(format!("'url' {why}"));
    if raw.len() > MAX_URL_BYTES {
        return Err(bad(&format!("is longer than {MAX_URL_BYTES} bytes")));
    }
    let url = Url::parse(raw).map_err(|e| bad(&format!("is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("must be http:// or https://"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad(
            "must not hold credentials: verify the signature instead",
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("has no host"));
    }
    if let Some(ip) = literal_ip(&url) {
        if !allowed_ip(ip, allow_private) {
            return Err(refused_address(url.host_str().unwrap_or(""), ip));
        }
    }
    Ok(url)
}

fn refused_address(host: &str, ip: IpAddr) -> DestinationError {
    DestinationError(format!(
        "webhooks to {host} ({ip}) are refused: loopback, private and link-local addresses \
         need STOCKBATCH_WEBHOOK_ALLOW_PRIVATE=true"
    ))
}

/// The host when it is an address (the URL parser has put it in canonical form).
fn literal_ip(url: &Url) -> Option<IpAddr> {
    let host = url.host_str()?;
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()
}

/// Whether a webhook may connect to `ip`.
pub fn allowed_ip(ip: IpAddr, allow_private: bool) -> bool {
    allow_private || is_public(ip)
}

fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                // Shared address space (carrier-grade NAT), and 192.0.0.0/24.
                || (a == 100 && (64..128).contains(&b))
                || (a == 192 && b == 0 && v4.octets()[2] == 0)
                || a >= 240)
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_public(IpAddr::V4(v4)),
            None => {
                !(v6.is_loopback()
                    || v6.is_unspecified()
                    || v6.is_multicast()
                    || v6.is_unique_local()
                    || v6.is_unicast_link_local())
            }
        },
    }
}

/// Resolves names for the webhook client, keeping only the addresses it may connect to.
pub struct GuardedResolver {
    pub allow_private: bool,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        let allow_private = self.allow_private;
        Box::pin(async move {
            let lookup = host.clone();
            let addrs: Vec<SocketAddr> =
                tokio::task::spawn_blocking(move || (lookup.as_str(), 0).to_socket_addrs())
                    .await??
                    .collect();
            let allowed: Vec<SocketAddr> = addrs
                .iter()
                .copied()
                .filter(|a| allowed_ip(a.ip(), allow_private))
                .collect();
            match (allowed.is_empty(), addrs.first()) {
                (false, _) => Ok(Box::new(allowed.into_iter()) as Addrs),
                (true, Some(refused)) => Err(refused_address(&host, refused.ip()).into()),
                (true, None) => Err(format!("{host} does not resolve").into()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(url: &str) -> String {
        check_url(url, false).unwrap_err().0
    }

    #[test]
    fn non_public_addresses_are_refused_unless_allowed() {
        for url in [
            "http://127.0.0.1:9000/hook",
            "http://10.1.2.3/",
            "http://172.16.0.1/",
            "http://192.168.1.1/",
            "http://169.254.169.254/latest/meta-data",
            "http://0.0.0.0/",
            "http://100.64.0.1/",
            "http://[::1]/",
            "http://[fe80::1]/",
            "http://[fd00::1]/",
            "http://[::ffff:127.0.0.1]/",
        ] {
            assert!(refused(url).contains("are refused"), "{url}");
            assert!(check_url(url, true).is_ok(), "{url} allowed");
        }
        assert!(check_url("https://93.184.216.34/hook", false).is_ok());
        assert!(check_url("https://[2606:4700::1111]/", false).is_ok());
    }

    #[test]
    fn names_that_resolve_to_loopback_are_refused() {
        let err = check_destination("http://localhost:9000/hook", false).unwrap_err();
        assert!(err.0.contains("are refused"), "{err}");
        assert!(check_destination("http://localhost:9000/hook", true).is_ok());
    }

    #[test]
    fn only_plain_http_urls_without_credentials() {
        assert!(refused("ftp://example.com/").contains("http:// or https://"));
        assert!(refused("https://user:pw@example.com/").contains("credentials"));
        assert!(refused("not a url").contains("is not a URL"));
        assert!(refused(&format!("https://example.com/{}", "a".repeat(3000))).contains("longer"));
    }
}
