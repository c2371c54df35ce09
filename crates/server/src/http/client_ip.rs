//! The client's IP address: the TCP peer, or — when the peer is a trusted proxy — the rightmost
//! X-Forwarded-For hop that is not itself a trusted proxy. Hops left of that were written by the
//! client and prove nothing, so they are never believed.

use axum::http::HeaderMap;
use std::net::{IpAddr, SocketAddr};

pub fn client_ip(headers: &HeaderMap, peer: SocketAddr, trusted: &[IpAddr]) -> IpAddr {
    let peer_ip = canonical(peer.ip());
    if !trusted.contains(&peer_ip) {
        return peer_ip;
    }
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .collect();
    let mut client = peer_ip;
    for hop in hops.iter().rev() {
        match hop.parse::<IpAddr>() {
            Ok(ip) => {
                client = canonical(ip);
                if !trusted.contains(&client) {
                    return client;
                }
            }
            // Garbage where an address should be: stop at the last hop we could vouch for.
            Err(_) => return client,
        }
    }
    client
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(xff: &str) -> HeaderMap {
        let mut m = HeaderMap::new();
        m.insert("x-forwarded-for", xff.parse().unwrap());
        m
    }
    fn peer(s: &str) -> SocketAddr {
        SocketAddr::new(s.parse().unwrap(), 4000)
    }
    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn untrusted_peer_is_the_client_whatever_the_header_says() {
        assert_eq!(
            client_ip(&h("1.1.1.1"), peer("9.9.9.9"), &[]),
            ip("9.9.9.9")
        );
        assert_eq!(
            client_ip(&h("1.1.1.1"), peer("9.9.9.9"), &[ip("10.0.0.1")]),
            ip("9.9.9.9")
        );
    }

    #[test]
    fn trusted_proxy_chain_gives_the_rightmost_untrusted_hop() {
        let trusted = [ip("10.0.0.1"), ip("10.0.0.2")];
        // The client forged "6.6.6.6"; the first proxy appended the real peer 5.5.5.5.
        let got = client_ip(&h("6.6.6.6, 5.5.5.5, 10.0.0.2"), peer("10.0.0.1"), &trusted);
        assert_eq!(got, ip("5.5.5.5"));
        assert_eq!(
            client_ip(&HeaderMap::new(), peer("10.0.0.1"), &trusted),
            ip("10.0.0.1")
        );
        assert_eq!(
            client_ip(&h("junk, 10.0.0.2"), peer("10.0.0.1"), &trusted),
            ip("10.0.0.2")
        );
    }
}
