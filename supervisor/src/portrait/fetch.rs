//! Fetching a portrait URL without becoming an SSRF proxy: http(s) only, DNS resolved once and the
//! connection pinned to the checked address, non-public addresses refused unless allow-listed,
//! every redirect re-checked (at most 3), a time limit and a size limit.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;

const MAX_REDIRECTS: usize = 3;

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("image URL is not a valid http(s) URL")]
    BadUrl,
    #[error("image URL must use http or https")]
    Scheme,
    #[error("image URL host {host} did not resolve")]
    Resolve { host: String },
    #[error("image URL host {host} resolves to {addr}, a non-public address; refused")]
    Forbidden { host: String, addr: IpAddr },
    #[error("image URL answered HTTP {0}")]
    Status(u16),
    #[error("image URL redirected more than {MAX_REDIRECTS} times")]
    TooManyRedirects,
    #[error("image URL content type {0:?} is not an image")]
    ContentType(String),
    #[error("image at URL is larger than {0} bytes")]
    TooLarge(usize),
    #[error("fetching image URL timed out")]
    Timeout,
    #[error("fetching image URL failed: {0}")]
    Http(String),
}

/// An address range that may be fetched although it is not public (setting IMAGE_FETCH_ALLOW).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AllowRange {
    net: IpAddr,
    prefix: u8,
}

impl std::str::FromStr for AllowRange {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let net: IpAddr = addr
            .parse()
            .map_err(|_| format!("{s:?} is not an IP address or CIDR"))?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max),
            None => Some(max),
        }
        .ok_or_else(|| format!("{s:?} has a bad prefix length"))?;
        Ok(Self { net, prefix })
    }
}

impl AllowRange {
    fn contains(&self, ip: IpAddr) -> bool {
        match (self.net, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// IPv6 forms that carry an IPv4 address are judged as that IPv4 address: IPv4-mapped (`::ffff:a.b.c.d`),
/// NAT64 (`64:ff9b::a.b.c.d` and the local-use `64:ff9b:1::/48`) and 6to4 (`2002:aabb:ccdd::/48`). The
/// deprecated IPv4-compatible form (`::a.b.c.d`) is refused outright by [`is_public`].
fn canonical(ip: IpAddr) -> IpAddr {
    let IpAddr::V6(v6) = ip else { return ip };
    if let Some(v4) = v6.to_ipv4_mapped() {
        return IpAddr::V4(v4);
    }
    let s = v6.segments();
    let tail = |hi: u16, lo: u16| {
        let [a, b] = hi.to_be_bytes();
        let [c, d] = lo.to_be_bytes();
        IpAddr::V4(Ipv4Addr::new(a, b, c, d))
    };
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] || (s[0] == 0x64 && s[1] == 0xff9b && s[2] == 1) {
        return tail(s[6], s[7]);
    }
    if s[0] == 0x2002 {
        return tail(s[1], s[2]);
    }
    ip
}

/// True for addresses on the public internet; false for loopback, private, link-local (which holds
/// the cloud metadata service), CGNAT, multicast, unspecified, reserved and documentation ranges, and
/// for IPv6 forms that embed such an IPv4 address.
pub fn is_public(ip: IpAddr) -> bool {
    match canonical(ip) {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            !(a == 0
                || a == 10
                || a == 127
                || (a == 100 && (64..128).contains(&b))
                || (a == 169 && b == 254)
                || (a == 172 && (16..32).contains(&b))
                || (a == 192 && b == 168)
                || (a == 192 && b == 0 && (c == 0 || c == 2))
                || (a == 192 && b == 88 && c == 99) // 6to4 relay anycast
                || (a == 198 && (b == 18 || b == 19))
                || (a == 198 && b == 51 && c == 100)
                || (a == 203 && b == 0 && c == 113)
                || a >= 224)
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            !(v6.is_unspecified()
                || v6.is_loopback()
                || (s[0] & 0xfe00) == 0xfc00 // unique local (incl. fd00:ec2::254 metadata)
                || (s[0] & 0xffc0) == 0xfe80 // link-local
                || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated)
                || (s[0] & 0xff00) == 0xff00 // multicast
                || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
                || (s[0] == 0x2001 && s[1] == 0) // Teredo: the IPv4 behind it cannot be checked
                || s[..4] == [0x100, 0, 0, 0] // discard-only
                || s[..6] == [0; 6]) // the rest of ::/96 (IPv4-compatible, deprecated)
        }
    }
}

#[derive(Debug, Clone)]
pub struct Fetcher {
    pub allow: Vec<AllowRange>,
    pub timeout: Duration,
    pub max_bytes: usize,
}

impl Fetcher {
    fn permitted(&self, ip: IpAddr) -> bool {
        is_public(ip) || self.allow.iter().any(|r| r.contains(ip))
    }

    /// Fetch `url`, following at most 3 redirects, each hop re-checked and pinned.
    pub async fn fetch(&self, url: &str) -> Result<Bytes, FetchError> {
        tokio::time::timeout(self.timeout, self.fetch_inner(url))
            .await
            .map_err(|_| FetchError::Timeout)?
    }

    async fn fetch_inner(&self, url: &str) -> Result<Bytes, FetchError> {
        let mut url = url::Url::parse(url).map_err(|_| FetchError::BadUrl)?;
        for _ in 0..=MAX_REDIRECTS {
            let response = self.request_pinned(&url).await?;
            let status = response.status();
            if status.is_redirection() {
                let location = response
                    .headers()
                    .get(reqwest::header::LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .ok_or(FetchError::Status(status.as_u16()))?;
                url = url.join(location).map_err(|_| FetchError::BadUrl)?;
                continue;
            }
            if !status.is_success() {
                return Err(FetchError::Status(status.as_u16()));
            }
            return self.read_body(response).await;
        }
        Err(FetchError::TooManyRedirects)
    }

    async fn request_pinned(&self, url: &url::Url) -> Result<reqwest::Response, FetchError> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(FetchError::Scheme);
        }
        let host = url.host_str().ok_or(FetchError::BadUrl)?.to_owned();
        let port = url.port_or_known_default().ok_or(FetchError::BadUrl)?;
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((bare, port))
            .await
            .map_err(|_| FetchError::Resolve { host: host.clone() })?
            .collect();
        let first = *addrs
            .first()
            .ok_or(FetchError::Resolve { host: host.clone() })?;
        // Every address must pass: a name that mixes public and private answers is refused.
        if let Some(bad) = addrs.iter().find(|a| !self.permitted(a.ip())) {
            return Err(FetchError::Forbidden {
                host,
                addr: bad.ip(),
            });
        }
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .resolve(bare, first)
            .no_proxy()
            .user_agent("lipcast")
            .build()
            .map_err(|e| FetchError::Http(e.to_string()))?;
        client
            .get(url.clone())
            .send()
            .await
            .map_err(|e| FetchError::Http(without_url(e)))
    }

    async fn read_body(&self, response: reqwest::Response) -> Result<Bytes, FetchError> {
        if let Some(ct) = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
        {
            let ct = ct.to_ascii_lowercase();
            if !(ct.starts_with("image/") || ct.starts_with("application/octet-stream")) {
                return Err(FetchError::ContentType(ct));
            }
        }
        if response
            .content_length()
            .is_some_and(|n| n > self.max_bytes as u64)
        {
            return Err(FetchError::TooLarge(self.max_bytes));
        }
        let mut body = BytesMut::new();
        let mut stream = response.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| FetchError::Http(without_url(e)))?;
            if body.len() + chunk.len() > self.max_bytes {
                return Err(FetchError::TooLarge(self.max_bytes));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body.freeze())
    }
}

fn without_url(e: reqwest::Error) -> String {
    e.without_url().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn classifies_addresses() {
        for bad in [
            // IPv4: this network, private, loopback, CGNAT, link-local (cloud metadata), reserved, multicast.
            "0.0.0.0",
            "0.1.2.3",
            "10.1.2.3",
            "127.0.0.1",
            "127.255.255.254",
            "100.64.0.1",
            "100.127.255.255",
            "169.254.169.254",
            "172.16.0.1",
            "172.31.255.255",
            "192.0.0.1",
            "192.0.2.1",
            "192.88.99.1",
            "192.168.1.1",
            "198.18.0.1",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
            // IPv6: unspecified, loopback, unique local, link-local, site-local, multicast, documentation.
            "::",
            "::1",
            "fc00::1",
            "fd00:ec2::254",
            "fdff:ffff::1",
            "fe80::1",
            "febf::1",
            "fec0::1",
            "ff02::1",
            "ff05::1:3",
            "2001:db8::1",
            "100::1",
            // Teredo hides an IPv4 address.
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            // IPv4 inside IPv6: mapped, compatible, NAT64 (well-known and local-use), 6to4.
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "::ffff:0.0.0.0",
            "::127.0.0.1",
            "::10.0.0.1",
            "::8.8.8.8",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b::7f00:1",
            "64:ff9b:1::a00:1",
            "2002:7f00:1::1",
            "2002:a9fe:a9fe::1",
            "2002:c0a8:101::1",
        ] {
            assert!(!is_public(ip(bad)), "{bad} should be refused");
        }
        for good in [
            "8.8.8.8",
            "1.1.1.1",
            "100.63.255.255",
            "100.128.0.1",
            "169.253.0.1",
            "172.15.255.255",
            "172.32.0.1",
            "192.167.1.1",
            "223.255.255.254",
            "2606:4700::1111",
            "2a00:1450:4001::200e",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
        ] {
            assert!(is_public(ip(good)), "{good} should be allowed");
        }
    }

    #[test]
    fn url_hosts_in_odd_spellings_are_classified_by_their_address() {
        // The URL parser normalises decimal, octal, hex and short IPv4 spellings to the address they name;
        // the fetcher judges that address.
        for (url, addr) in [
            ("http://2130706433/", "127.0.0.1"),
            ("http://0x7f000001/", "127.0.0.1"),
            ("http://0177.0.0.1/", "127.0.0.1"),
            ("http://127.1/", "127.0.0.1"),
            ("http://0xa9.0xfe.0xa9.0xfe/", "169.254.169.254"),
            ("http://[::ffff:7f00:1]/", "::ffff:127.0.0.1"),
            ("http://user:pw@10.0.0.1/", "10.0.0.1"),
            ("http://evil.example@192.168.0.1/", "192.168.0.1"),
        ] {
            let parsed = url::Url::parse(url).expect("url");
            let host = parsed.host_str().expect("host");
            let bare = host.trim_start_matches('[').trim_end_matches(']');
            assert_eq!(bare.parse::<IpAddr>().ok(), Some(ip(addr)), "{url}");
            assert!(!is_public(ip(addr)), "{url}");
        }
    }

    #[test]
    fn allow_ranges() {
        let r: AllowRange = "127.0.0.0/8".parse().expect("cidr");
        assert!(r.contains(ip("127.9.9.9")) && r.contains(ip("::ffff:127.0.0.1")));
        assert!(!r.contains(ip("10.0.0.1")));
        let one: AllowRange = "::1".parse().expect("ip");
        assert!(one.contains(ip("::1")) && !one.contains(ip("::2")));
        assert!("10.0.0.0/33".parse::<AllowRange>().is_err());
        assert!("nope".parse::<AllowRange>().is_err());
        let all: AllowRange = "0.0.0.0/0".parse().expect("all");
        assert!(all.contains(ip("10.0.0.1")));
    }
}
