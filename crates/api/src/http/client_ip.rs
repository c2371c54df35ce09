//! The client's IP address for rate limits and throttles: the TCP peer, unless the peer is one
//! of `TRUSTED_PROXIES`, in which case `X-Forwarded-For` is read from the right (nearest hop)
//! and the first address that is not itself a trusted proxy is the client. Anything unparsable
//! in a header we would have to trust falls back to the peer: a forged header can never pick
//! someone else's address unless a trusted proxy wrote it.

use axum::http::HeaderMap;
use ipnet::IpNet;
use std::net::{IpAddr, SocketAddr};

fn trusted(ip: IpAddr, proxies: &[IpNet]) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    };
    proxies.iter().any(|n| n.contains(&ip))
}

/// The client address of a request whose TCP peer is `peer` (None when the server runs without
/// connect info, e.g. a router driven in-process: then the unspecified address).
pub fn client_ip(peer: Option<SocketAddr>, headers: &HeaderMap, proxies: &[IpNet]) -> IpAddr {
    let Some(peer) = peer.map(|p| p.ip()) else {
        return IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED);
    };
    if !trusted(peer, proxies) {
        return peer;
    }
    let mut hops = Vec::new();
    for v in headers.get_all("x-forwarded-for") {
        let Ok(s) = v.to_str() else { return peer };
        for part in s.split(',') {
            match part.trim().parse::<IpAddr>() {
                Ok(ip) => hops.push(ip),
                Err(_) => return peer,
            }
        }
    }
    hops.into_iter()
        .rev()
        .find(|ip| !trusted(*ip, proxies))
        .unwrap_or(peer)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use flows::config::parse_trusted;

    fn h(xff: &[&str]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for v in xff {
            m.append("x-forwarded-for", v.parse().unwrap());
        }
        m
    }

    fn peer(s: &str) -> Option<SocketAddr> {
        Some(SocketAddr::new(s.parse().unwrap(), 40000))
    }

    #[test]
    fn untrusted_peer_ignores_the_header() {
        let p = parse_trusted("10.0.0.0/8").unwrap();
        let ip = client_ip(peer("198.51.100.1"), &h(&["1.2.3.4"]), &p);
        assert_eq!(ip, "198.51.100.1".parse::<IpAddr>().unwrap());
        // No proxies configured: never trusted.
        assert_eq!(
            client_ip(peer("10.0.0.1"), &h(&["1.2.3.4"]), &[]),
            "10.0.0.1".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn trusted_peer_yields_the_rightmost_untrusted_hop() {
        let p = parse_trusted("10.0.0.0/8, 192.0.2.9").unwrap();
        let ip = client_ip(
            peer("10.1.2.3"),
            &h(&["6.6.6.6, 203.0.113.5", "192.0.2.9"]),
            &p,
        );
        assert_eq!(ip, "203.0.113.5".parse::<IpAddr>().unwrap());
        assert_eq!(
            client_ip(peer("10.1.2.3"), &h(&["junk, 203.0.113.5"]), &p),
            "10.1.2.3".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            client_ip(peer("10.1.2.3"), &h(&[]), &p),
            "10.1.2.3".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn bad_proxy_list_is_refused() {
        assert!(parse_trusted("10.0.0.0/8,nope").is_err());
        assert_eq!(parse_trusted("").unwrap(), vec![]);
    }
}
