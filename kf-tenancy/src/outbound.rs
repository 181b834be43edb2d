//! The outbound-URL guard: may a server fetch this user-supplied URL?
//!
//! Servers that fetch what users name (model URIs, webhook targets, remote
//! models) are an SSRF path into the cluster and the cloud metadata service
//! (CVE-2023-6570). The guard denies loopback, link-local (including
//! 169.254.169.254), private, shared, multicast and unspecified addresses by
//! default, by literal IP *and* by every address the host resolved to; an
//! allow-list opens specific hosts or networks. It parses URLs with the WHATWG
//! parser that HTTP clients use, so the guard and the fetcher agree on the host.
//!
//! This module does no IO: resolve the host yourself, pass the addresses in,
//! and connect only to those addresses (so DNS cannot change between check and
//! use).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use url::{Host, Url};

use crate::{Error, Result};

/// What may be fetched.
#[derive(Debug, Clone)]
pub struct OutboundPolicy {
    schemes: Vec<String>,
    allow_hosts: Vec<String>,
    allow_nets: Vec<IpNet>,
}

impl Default for OutboundPolicy {
    /// `http`, `https`, `s3` and `gs` to public addresses only.
    fn default() -> Self {
        OutboundPolicy {
            schemes: ["http", "https", "s3", "gs"].map(String::from).to_vec(),
            allow_hosts: Vec::new(),
            allow_nets: Vec::new(),
        }
    }
}

/// A URL that passed the guard: its host and the port to connect to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedUrl {
    /// The parsed URL.
    pub url: Url,
    /// The host as the fetcher will see it (domain, or IP literal without brackets).
    pub host: String,
    /// Whether the host was an IP literal (no DNS resolution needed).
    pub is_ip_literal: bool,
}

impl OutboundPolicy {
    /// Allows only these schemes (lower-case, e.g. `https`).
    pub fn with_schemes(mut self, schemes: &[&str]) -> Self {
        self.schemes = schemes.iter().map(|s| s.to_ascii_lowercase()).collect();
        self
    }

    /// Allows a host name exactly (case-insensitive), whatever it resolves to.
    pub fn allow_host(mut self, host: &str) -> Self {
        self.allow_hosts.push(host.trim_end_matches('.').to_ascii_lowercase());
        self
    }

    /// Allows addresses in this network even when they are internal.
    pub fn allow_net(mut self, net: IpNet) -> Self {
        self.allow_nets.push(net);
        self
    }

    /// Parses `raw` and checks its scheme and host name. Call
    /// [`OutboundPolicy::check_addresses`] with what the host resolves to
    /// (nothing to resolve for an IP literal: it is checked here).
    pub fn check_url(&self, raw: &str) -> Result<CheckedUrl> {
        let url = Url::parse(raw).map_err(|e| denied(raw, format!("not a valid absolute URL: {e}")))?;
        if !self.schemes.iter().any(|s| s == url.scheme()) {
            return Err(denied(raw, format!("scheme {:?} is not allowed (allowed: {:?})", url.scheme(), self.schemes)));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(denied(raw, "credentials in URLs are not allowed".into()));
        }
        let (host, ip) = match url.host() {
            None => return Err(denied(raw, "the URL has no host".into())),
            Some(Host::Domain(domain)) => (domain.trim_end_matches('.').to_ascii_lowercase(), None),
            Some(Host::Ipv4(v4)) => (v4.to_string(), Some(IpAddr::V4(v4))),
            Some(Host::Ipv6(v6)) => (v6.to_string(), Some(IpAddr::V6(v6))),
        };
        let allowed_by_name = self.allow_hosts.contains(&host);
        if ip.is_none() && !allowed_by_name && is_internal_name(&host) {
            return Err(denied(raw, format!("host {host:?} is internal")));
        }
        let checked = CheckedUrl { url, host, is_ip_literal: ip.is_some() };
        if let Some(ip) = ip {
            self.check_addresses(&checked, &[ip])?;
        }
        Ok(checked)
    }

    /// Checks every address the host resolved to; one internal address denies
    /// the whole URL. An empty list is denied (nothing to connect to).
    pub fn check_addresses(&self, checked: &CheckedUrl, addresses: &[IpAddr]) -> Result<()> {
        if self.allow_hosts.contains(&checked.host) {
            return Ok(());
        }
        if addresses.is_empty() {
            return Err(denied(checked.url.as_str(), format!("host {:?} resolved to no address", checked.host)));
        }
        for address in addresses {
            let address = canonical(*address);
            if is_internal(address) && !self.allow_nets.iter().any(|n| n.contains(&address)) {
                return Err(denied(checked.url.as_str(), format!("address {address} is internal")));
            }
        }
        Ok(())
    }
}

fn denied(url: &str, message: String) -> Error {
    // Never echo a URL that may carry credentials.
    let shown = if url.contains('@') { "<redacted>" } else { url };
    Error::Invalid { path: "url".into(), message: format!("{shown}: {message}") }
}

/// Names that always mean "this machine" or "the cloud's metadata service".
fn is_internal_name(host: &str) -> bool {
    host == "localhost"
        || host.ends_with(".localhost")
        || host == "metadata"
        || host == "metadata.google.internal"
        || host.ends_with(".internal")
}

/// IPv4-mapped and IPv4-compatible IPv6 addresses are their IPv4 address.
fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
        v4 => v4,
    }
}

fn is_internal(address: IpAddr) -> bool {
    match address {
        IpAddr::V4(v4) => is_internal_v4(v4),
        IpAddr::V6(v6) => is_internal_v6(v6),
    }
}

fn is_internal_v4(a: Ipv4Addr) -> bool {
    let [o1, o2, ..] = a.octets();
    a.is_loopback()
        || a.is_private()
        || a.is_link_local()
        || a.is_unspecified()
        || a.is_broadcast()
        || a.is_multicast()
        || a.is_documentation()
        || o1 == 0 // "this network"
        || (o1 == 100 && (64..128).contains(&o2)) // shared address space (CGNAT)
        || (o1 == 192 && o2 == 0 && a.octets()[2] == 0) // IETF protocol assignments
        || (o1 == 198 && (18..20).contains(&o2)) // benchmarking
        || o1 >= 240 // reserved
}

fn is_internal_v6(a: Ipv6Addr) -> bool {
    let first = a.segments()[0];
    a.is_loopback()
        || a.is_unspecified()
        || a.is_multicast()
        || (first & 0xfe00) == 0xfc00 // unique local fc00::/7 (includes AWS fd00:ec2::254)
        || (first & 0xffc0) == 0xfe80 // link-local fe80::/10
        || (first & 0xffc0) == 0xfec0 // deprecated site-local
        || first == 0x2002 && is_internal_v4(Ipv4Addr::new(
            (a.segments()[1] >> 8) as u8, a.segments()[1] as u8, (a.segments()[2] >> 8) as u8, a.segments()[2] as u8,
        )) // 6to4 wrapping an internal IPv4
        || first == 0x0064 && a.segments()[1] == 0xff9b // NAT64 well-known prefix
        || a.to_ipv4().is_some_and(|v4| v4 != Ipv4Addr::new(0, 0, 0, 1) && is_internal_v4(v4))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn literal_internal_addresses_are_denied_however_written() {
        let p = OutboundPolicy::default();
        for url in [
            "http://127.0.0.1/",
            "http://127.1/",
            "http://2130706433/",
            "http://0x7f000001/",
            "http://0177.0.0.1/",
            "http://[::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://[::ffff:169.254.169.254]/latest/meta-data",
            "http://169.254.169.254/latest/meta-data/",
            "http://[fd00:ec2::254]/",
            "http://[fe80::1]/",
            "http://10.0.0.1:8080/",
            "http://192.168.1.1/",
            "http://172.16.0.1/",
            "http://100.64.0.1/",
            "http://0.0.0.0/",
            "http://[::]/",
            "http://[2002:7f00:1::]/",
            "http://[64:ff9b::7f00:1]/",
            "http://localhost:8080/",
            "http://LOCALHOST./",
            "http://api.localhost/",
            "http://metadata.google.internal/computeMetadata/v1/",
        ] {
            assert!(p.check_url(url).is_err(), "{url} must be denied");
        }
    }

    #[test]
    fn public_urls_pass_and_resolved_internal_addresses_do_not() {
        let p = OutboundPolicy::default();
        let ok = p.check_url("https://models.example.com/iris/model.onnx").unwrap();
        assert!(!ok.is_ip_literal);
        p.check_addresses(&ok, &[ip("93.184.216.34")]).unwrap();
        // DNS that points a public name at the metadata service (or mixes in one internal address)
        assert!(p.check_addresses(&ok, &[ip("169.254.169.254")]).is_err());
        assert!(p.check_addresses(&ok, &[ip("93.184.216.34"), ip("10.0.0.5")]).is_err());
        assert!(p.check_addresses(&ok, &[]).is_err());
        p.check_url("https://8.8.8.8/").unwrap();
        p.check_url("s3://my-bucket/models/iris").unwrap();
    }

    #[test]
    fn schemes_and_credentials_are_restricted() {
        let p = OutboundPolicy::default();
        for url in [
            "file:///etc/passwd",
            "gopher://example.com/",
            "ftp://example.com/",
            "not a url",
            "http://user:pw@example.com/",
        ] {
            let err = p.check_url(url).unwrap_err().to_string();
            assert!(!err.contains("pw@"), "credentials are never echoed: {err}");
        }
    }

    #[test]
    fn the_allow_list_opens_what_the_operator_names() {
        let p = OutboundPolicy::default().allow_host("minio.kubeflow.svc").allow_net("10.96.0.0/12".parse().unwrap());
        let minio = p.check_url("http://minio.kubeflow.svc:9000/bucket").unwrap();
        p.check_addresses(&minio, &[ip("10.0.0.9")]).unwrap();
        p.check_url("http://10.100.1.1/").unwrap();
        assert!(p.check_url("http://10.0.0.1/").is_err(), "outside the allowed network");
        assert!(p.check_url("http://127.0.0.1/").is_err());
    }

    proptest! {
        /// Whatever an internal IPv4 address looks like as a literal or inside
        /// IPv6, it is denied.
        #[test]
        fn internal_ipv4_is_denied_in_every_spelling(
            net in prop::sample::select(vec![(127u8, 0u8, 255u8), (10, 0, 255), (169, 254, 0), (192, 168, 0), (172, 16, 15)]),
            b: u8, c: u8, d: u8,
        ) {
            let (first, base, spread) = net;
            let second = if spread == 0 { base } else { base.wrapping_add(b % spread.saturating_add(1)) };
            let v4 = Ipv4Addr::new(first, second, c, d);
            let p = OutboundPolicy::default();
            let dotted = format!("http://{v4}/");
            let mapped = format!("http://[{}]/", v4.to_ipv6_mapped());
            let decimal = format!("http://{}/", u32::from(v4));
            for url in [dotted, mapped, decimal] {
                prop_assert!(p.check_url(&url).is_err(), "{} was allowed", url);
            }
        }

        #[test]
        fn never_panics_on_arbitrary_input(s in "\\PC{0,40}") {
            let _ = OutboundPolicy::default().check_url(&s);
        }
    }
}
