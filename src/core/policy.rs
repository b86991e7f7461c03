//! Where the gateway may send requests (SSRF guard). Upstream URLs and OAuth endpoints must be
//! `https` on a public address unless the deployment sets `ALLOW_PRIVATE_UPSTREAMS=true`; cloud
//! metadata addresses are refused always. IP literals are checked after WHATWG URL parsing, so
//! decimal, octal and hex spellings of IPv4 (`http://2130706433/`) are caught as what they are.
//! Hostnames are not resolved here: on Cloudflare a Worker's fetch cannot reach private
//! addresses through DNS, and the runtime does the resolving.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use url::{Host, Url};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyError {
    NotAUrl,
    /// A host name in Unicode: the gateway reads host names in their ASCII form only (the
    /// `xn--` labels of IDNA), so that it carries no Unicode tables (Cargo.lock pins
    /// `idna_adapter` 1.0, which has none: about 110 KiB less wasm, bench/PROFILE.md).
    UnicodeHost,
    Scheme(String),
    Credentials,
    Private(String),
    Metadata(String),
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PolicyError::NotAUrl => f.write_str("is not an absolute URL"),
            PolicyError::UnicodeHost => f.write_str(
                "has a host name in Unicode: give its ASCII form (the xn-- labels of IDNA, as a browser shows it)",
            ),
            PolicyError::Scheme(s) => write!(
                f,
                "must use https (got {s}); http needs ALLOW_PRIVATE_UPSTREAMS=true (local development only)"
            ),
            PolicyError::Credentials => f.write_str("must not carry a user name or password"),
            PolicyError::Private(h) => write!(
                f,
                "points to a loopback, private or link-local address ({h}); allowed only with ALLOW_PRIVATE_UPSTREAMS=true"
            ),
            PolicyError::Metadata(h) => write!(f, "points to a cloud metadata address ({h}), which is never allowed"),
        }
    }
}

fn is_metadata_v4(ip: Ipv4Addr) -> bool {
    // AWS/GCP/Azure/OpenStack metadata, Alibaba's, and AWS's IPv4 time sync / DNS.
    ip == Ipv4Addr::new(169, 254, 169, 254)
        || ip == Ipv4Addr::new(169, 254, 170, 2)
        || ip == Ipv4Addr::new(100, 100, 100, 200)
}

fn is_private_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || a >= 240
        || (a == 100 && (64..128).contains(&b)) // CGNAT, RFC 6598
        || (a == 198 && (b == 18 || b == 19)) // benchmarking, RFC 2544
        || (a == 192 && b == 0 && ip.octets()[2] == 0) // IETF protocol assignments
}

/// The IPv4 address an IPv6 address carries, in every form a packet could reach it by.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let v4 = |hi: u16, lo: u16| Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8);
    match ip.segments() {
        // ::ffff:a.b.c.d (mapped), ::ffff:0:a.b.c.d (SIIT), ::a.b.c.d (compatible)
        [0, 0, 0, 0, 0, 0xffff, hi, lo] | [0, 0, 0, 0, 0xffff, 0, hi, lo] | [0, 0, 0, 0, 0, 0, hi, lo] => {
            Some(v4(hi, lo))
        }
        // NAT64, well-known and local-use prefixes (RFC 6052, RFC 8215)
        [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] | [0x64, 0xff9b, 1, _, _, _, hi, lo] => Some(v4(hi, lo)),
        // 6to4 (RFC 3056): 2002:AABB:CCDD::/48
        [0x2002, hi, lo, ..] => Some(v4(hi, lo)),
        // Teredo (RFC 4380): the client's address, inverted, in the last 32 bits
        [0x2001, 0, _, _, _, _, hi, lo] => Some(v4(!hi, !lo)),
        _ => None,
    }
}

fn classify(ip: IpAddr) -> Option<PolicyError> {
    let text = ip.to_string();
    match ip {
        IpAddr::V4(v4) if is_metadata_v4(v4) => Some(PolicyError::Metadata(text)),
        IpAddr::V4(v4) if is_private_v4(v4) => Some(PolicyError::Private(text)),
        IpAddr::V4(_) => None,
        IpAddr::V6(v6) => {
            if let Some(v4) = embedded_v4(v6) {
                return classify(IpAddr::V4(v4)).map(|e| match e {
                    PolicyError::Metadata(_) => PolicyError::Metadata(text.clone()),
                    _ => PolicyError::Private(text.clone()),
                });
            }
            let s0 = v6.segments()[0];
            let private = v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s0 & 0xfe00) == 0xfc00 // unique local fc00::/7
                || (s0 & 0xffc0) == 0xfe80 // link-local fe80::/10
                || (s0 & 0xffc0) == 0xfec0 // site-local fec0::/10
                || s0 == 0x2001 && v6.segments()[1] == 0xdb8; // documentation
            if v6 == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254) {
                Some(PolicyError::Metadata(text)) // AWS IMDS over IPv6
            } else {
                private.then_some(PolicyError::Private(text))
            }
        }
    }
}

fn is_private_name(host: &str) -> bool {
    let h = host.trim_end_matches('.').to_ascii_lowercase();
    h == "localhost"
        || h.ends_with(".localhost")
        || h.ends_with(".local")
        || h.ends_with(".internal")
        || h.ends_with(".home.arpa")
        || !h.contains('.')
}

/// A URL the policy allowed. Only [`check_url`] makes one, and the one outbound client takes
/// nothing else, so every request the gateway sends has passed the policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedUrl(Url);

impl CheckedUrl {
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl std::ops::Deref for CheckedUrl {
    type Target = Url;
    fn deref(&self) -> &Url {
        &self.0
    }
}

/// Whether the authority of `raw` (between `://` and the path, query or fragment), its percent
/// escapes decoded, holds anything but ASCII: a host name given in Unicode.
fn unicode_host(raw: &str) -> bool {
    let Some((_, rest)) = raw.split_once("://") else { return false };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    !percent_encoding::percent_decode_str(authority).collect::<Vec<u8>>().is_ascii()
}

/// Checks an outbound URL against the policy and returns it parsed.
pub fn check_url(raw: &str, allow_private: bool) -> Result<CheckedUrl, PolicyError> {
    let url = Url::parse(raw).map_err(|_| match unicode_host(raw) {
        true => PolicyError::UnicodeHost,
        false => PolicyError::NotAUrl,
    })?;
    match url.scheme() {
        "https" => {}
        "http" if allow_private => {}
        other => return Err(PolicyError::Scheme(other.to_string())),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(PolicyError::Credentials);
    }
    let verdict = match url.host() {
        None => return Err(PolicyError::NotAUrl),
        Some(Host::Ipv4(ip)) => classify(IpAddr::V4(ip)),
        Some(Host::Ipv6(ip)) => classify(IpAddr::V6(ip)),
        Some(Host::Domain(name))
            if name.trim_end_matches('.').eq_ignore_ascii_case("metadata.google.internal") =>
        {
            Some(PolicyError::Metadata(name.to_string()))
        }
        Some(Host::Domain(name)) => is_private_name(name).then(|| PolicyError::Private(name.to_string())),
    };
    match verdict {
        Some(e @ PolicyError::Metadata(_)) => Err(e),
        Some(e) if !allow_private => Err(e),
        _ => Ok(CheckedUrl(url)),
    }
}

/// True when two URLs share scheme, host and port (RFC 6454 origin).
pub fn same_origin(a: &Url, b: &Url) -> bool {
    a.origin() == b.origin()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_https_passes() {
        for ok in ["https://mcp.example.com/mcp", "https://93.184.216.34/x", "https://[2606:4700::1]/"] {
            assert!(check_url(ok, false).is_ok(), "{ok}");
        }
    }

    #[test]
    fn private_addresses_in_every_spelling_are_refused() {
        for bad in [
            "https://127.0.0.1/",
            "https://2130706433/", // decimal 127.0.0.1
            "https://0177.0.0.1/", // octal
            "https://0x7f.1/",     // hex, short form
            "https://10.1.2.3/",
            "https://172.16.0.1/",
            "https://192.168.1.1/",
            "https://100.64.0.1/",
            "https://0.0.0.0/",
            "https://[::1]/",
            "https://[::ffff:127.0.0.1]/",
            "https://[::ffff:7f00:1]/",
            "https://[fd00::1]/",
            "https://[fe80::1]/",
            "https://[64:ff9b::a00:1]/",
            "https://[2002:7f00:1::]/",
            "https://[2001:0:4136:e378:8000:63bf:80ff:fffe]/", // Teredo client 127.0.0.1
            "https://localhost/",
            "https://api.localhost/",
            "https://printer.local/",
            "https://intranet/",
        ] {
            assert!(matches!(check_url(bad, false), Err(PolicyError::Private(_))), "{bad}");
            assert!(check_url(bad, true).is_ok(), "{bad} with ALLOW_PRIVATE_UPSTREAMS");
        }
    }

    #[test]
    fn metadata_is_refused_even_for_local_development() {
        for bad in [
            "http://169.254.169.254/latest/meta-data/",
            "http://2852039166/",
            "http://[::ffff:169.254.169.254]/",
            "http://[fd00:ec2::254]/",
            "http://metadata.google.internal/",
            "http://METADATA.google.internal./",
            "http://[::ffff:0:a9fe:a9fe]/",
            "http://[64:ff9b:1::a9fe:a9fe]/",
            "http://[2002:a9fe:a9fe::1]/",
            "http://100.100.100.200/",
        ] {
            assert!(matches!(check_url(bad, true), Err(PolicyError::Metadata(_))), "{bad}");
        }
    }

    #[test]
    fn scheme_and_shape() {
        assert_eq!(check_url("http://mcp.example.com/", false), Err(PolicyError::Scheme("http".into())));
        assert!(check_url("http://127.0.0.1:8080/", true).is_ok());
        assert_eq!(check_url("ftp://example.com/", true), Err(PolicyError::Scheme("ftp".into())));
        assert_eq!(check_url("file:///etc/passwd", true), Err(PolicyError::Scheme("file".into())));
        assert_eq!(check_url("/relative", true), Err(PolicyError::NotAUrl));
        assert_eq!(check_url("https://bücher.example/mcp", false), Err(PolicyError::UnicodeHost));
        assert!(check_url("https://xn--bcher-kva.example/mcp", false).is_ok());
        assert!(check_url("https://mcp.example.com/ä/mcp?q=ü", false).is_ok(), "only the host must be ASCII");
        assert_eq!(check_url("https://b%C3%BCcher.example/mcp", false), Err(PolicyError::UnicodeHost));
        assert_eq!(check_url("https://exa mple.com/ü", false), Err(PolicyError::NotAUrl));
        assert_eq!(check_url("ä", false), Err(PolicyError::NotAUrl));
        assert_eq!(check_url("https://u:p@example.com/", false), Err(PolicyError::Credentials));
    }

    #[test]
    fn origins() {
        let a = Url::parse("https://a.example/mcp").unwrap();
        assert!(same_origin(&a, &Url::parse("https://a.example/messages?x=1").unwrap()));
        assert!(!same_origin(&a, &Url::parse("https://b.example/messages").unwrap()));
        assert!(!same_origin(&a, &Url::parse("http://a.example/messages").unwrap()));
    }
}
