//! Client addresses as the per-client rate limit sees them.
//!
//! One IPv6 subscriber usually holds a whole /64 (often more), so limiting
//! each exact IPv6 address lets one client rotate through billions of them.
//! [`client_rate_key`] groups IPv6 clients by prefix (/64 by default,
//! configurable with
//! [`ResetServiceBuilder::client_ipv6_prefix`](crate::ResetServiceBuilder::client_ipv6_prefix));
//! IPv4 clients, including IPv4-mapped IPv6 addresses (`::ffff:192.0.2.1`),
//! are keyed by their exact IPv4 address.
//!
//! ```
//! use resetkit::client::{client_rate_key, DEFAULT_IPV6_PREFIX};
//!
//! assert_eq!(client_rate_key("2001:db8:1:2::17", DEFAULT_IPV6_PREFIX), "2001:db8:1:2::/64");
//! assert_eq!(client_rate_key("2001:db8:1:2:ffff::1", 64), client_rate_key("2001:db8:1:2::17", 64));
//! assert_eq!(client_rate_key("::ffff:192.0.2.7", 64), "192.0.2.7");
//! assert_eq!(client_rate_key("192.0.2.7", 64), "192.0.2.7");
//! ```

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

/// The IPv6 prefix length clients are grouped by unless configured.
pub const DEFAULT_IPV6_PREFIX: u8 = 64;

/// The key the per-client rate limit counts under for the address `client`
/// (as the host passed it: an IP address, optionally with a port or in
/// brackets). IPv6 addresses are cut to their first `ipv6_prefix` bits
/// (clamped to 1..=128) and written `prefix/len`; IPv4 and IPv4-mapped
/// addresses are written as plain IPv4. Text that is not an IP address is
/// used as given.
pub fn client_rate_key(client: &str, ipv6_prefix: u8) -> String {
    let Some(ip) = parse_ip(client) else {
        return client.trim().to_owned();
    };
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let len = ipv6_prefix.clamp(1, 128);
                let mask = u128::MAX << (128 - u32::from(len));
                let network = Ipv6Addr::from(u128::from(v6) & mask);
                format!("{network}/{len}")
            }
        },
    }
}

fn parse_ip(text: &str) -> Option<IpAddr> {
    let text = text.trim();
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(socket) = text.parse::<SocketAddr>() {
        return Some(socket.ip());
    }
    // `[2001:db8::1]`, or a scoped address `fe80::1%eth0`.
    let unbracketed = text
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .unwrap_or(text);
    let unscoped = unbracketed.split('%').next().unwrap_or(unbracketed);
    unscoped.parse::<IpAddr>().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn addresses_within_one_prefix_share_a_key(addr in any::<u128>(), other in any::<u128>(), len in 1u8..=128) {
            let mask = u128::MAX << (128 - u32::from(len));
            let same_network = (addr & mask) | (other & !mask);
            let a = Ipv6Addr::from(addr);
            let b = Ipv6Addr::from(same_network);
            prop_assume!(a.to_ipv4_mapped().is_none() && b.to_ipv4_mapped().is_none());
            prop_assert_eq!(client_rate_key(&a.to_string(), len), client_rate_key(&b.to_string(), len));
            if (addr & mask) != (other & mask) {
                let c = Ipv6Addr::from(other);
                prop_assume!(c.to_ipv4_mapped().is_none());
                prop_assert_ne!(client_rate_key(&a.to_string(), len), client_rate_key(&c.to_string(), len));
            }
        }

        #[test]
        fn never_panics(text in any::<String>(), len in any::<u8>()) {
            let _ = client_rate_key(&text, len);
        }
    }

    #[test]
    fn ipv6_clients_are_grouped_by_prefix() {
        let a = client_rate_key("2001:db8:aa:bb:1:2:3:4", 64);
        let b = client_rate_key("2001:db8:aa:bb:ffff:ffff:ffff:ffff", 64);
        let other = client_rate_key("2001:db8:aa:bc::1", 64);
        assert_eq!(a, "2001:db8:aa:bb::/64");
        assert_eq!(a, b);
        assert_ne!(a, other);
        assert_eq!(client_rate_key("2001:db8:aa:bb::1", 48), "2001:db8:aa::/48");
        assert_eq!(client_rate_key("2001:db8::1", 128), "2001:db8::1/128");
        assert_eq!(client_rate_key("[2001:db8:aa:bb::1]:443", 64), a);
        assert_eq!(client_rate_key("2001:db8:aa:bb::1%eth0", 64), a);
    }

    #[test]
    fn ipv4_and_mapped_addresses_count_as_ipv4() {
        assert_eq!(client_rate_key("::ffff:198.51.100.9", 64), "198.51.100.9");
        assert_eq!(client_rate_key("198.51.100.9:5000", 64), "198.51.100.9");
        assert_ne!(
            client_rate_key("198.51.100.9", 64),
            client_rate_key("198.51.100.10", 64)
        );
        assert_eq!(client_rate_key(" not an address ", 64), "not an address");
        assert_eq!(client_rate_key("::1", 0), "::/1");
    }
}
