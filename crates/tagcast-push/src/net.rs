//! Which addresses a push may go to. Web Push endpoints come from browsers, so from anyone:
//! unless an app allows it, they must not reach this machine or a private network, neither by
//! an address in the URL (checked when a device registers) nor by a name that resolves to one
//! (checked when it is resolved, by `PublicOnly`).

use std::net::{IpAddr, SocketAddr};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Whether `host` names this machine or a private network.
pub fn is_private_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = host.parse::<IpAddr>() {
        return is_private_ip(ip);
    }
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    host == "localhost" || host.ends_with(".localhost") || !host.contains('.')
}

pub fn is_private_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.octets()[0] == 100 && (v4.octets()[1] & 0xc0) == 64
        }
        IpAddr::V6(v6) => {
            v6.is_loopback()
                || v6.is_unspecified()
                || (v6.segments()[0] & 0xfe00) == 0xfc00
                || (v6.segments()[0] & 0xffc0) == 0xfe80
                || v6
                    .to_ipv4_mapped()
                    .is_some_and(|v4| is_private_ip(IpAddr::V4(v4)))
        }
    }
}

/// A resolver that refuses names with a loopback or private address among theirs.
pub struct PublicOnly;

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_string();
        Box::pin(async move {
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if let Some(private) = found.iter().find(|a| is_private_ip(a.ip())) {
                return Err(
                    format!("{host} resolves to {}, a private address", private.ip()).into(),
                );
            }
            Ok(Box::new(found.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_hosts_are_recognised() {
        for host in [
            "127.0.0.1",
            "10.1.2.3",
            "192.168.0.1",
            "172.16.5.4",
            "169.254.1.1",
            "100.64.0.1",
            "0.0.0.0",
            "[::1]",
            "[fd00::1]",
            "[fe80::1]",
            "[::ffff:127.0.0.1]",
            "localhost",
            "push.localhost",
            "intranet",
        ] {
            assert!(is_private_host(host), "{host}");
        }
        for host in [
            "8.8.8.8",
            "fcm.googleapis.com",
            "[2001:4860::8888]",
            "100.128.0.1",
        ] {
            assert!(!is_private_host(host), "{host}");
        }
    }

    #[tokio::test]
    async fn names_of_private_addresses_are_refused_when_resolved() {
        let refused = PublicOnly.resolve("localhost".parse().unwrap()).await;
        let error = refused.err().expect("localhost is refused").to_string();
        assert!(error.contains("private address"), "{error}");
    }
}
