//! SSRF guard: deliveries go to merchant-supplied URLs, so the gateway must never be
//! turned against the networks it runs in.
//!
//! Map of this module:
//! - [`classify`] says why an address is not public (a pure function over `IpAddr`);
//! - [`NetworkPolicy`] says which classes or networks are nevertheless allowed;
//! - [`check_url`] checks an endpoint URL the way a delivery will (used when an endpoint
//!   is created or updated), [`check_literal`] does the synchronous part of it;
//!   and at every delivery attempt; the delivery client (`client.rs`) then connects only
//!   to the addresses it returned.
//!
//! **Invariant:** no connection is made to an address the policy refuses. The delivery
//! client resolves nothing itself, uses no proxy and follows no redirect, so the
//! addresses checked here are the only ones it can reach.
//!
//! Checking at endpoint creation alone is not enough: DNS answers change (DNS rebinding),
//! so the check runs again at every delivery, and a kept-alive connection is reused only
//! while its address is still among those the latest check allowed.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Mutex;

use url::{Host, Url};

/// Why an address is not public.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressClass {
    /// 127.0.0.0/8, ::1.
    Loopback,
    /// RFC 1918: 10/8, 172.16/12, 192.168/16.
    Private,
    /// 169.254/16, fe80::/10.
    LinkLocal,
    /// 224/4, ff00::/8.
    Multicast,
    /// 0.0.0.0, ::.
    Unspecified,
    /// 255.255.255.255.
    Broadcast,
    /// 100.64/10 (RFC 6598, carrier-grade NAT).
    SharedCgnat,
    /// Cloud instance metadata and platform services (169.254.169.254, fd00:ec2::254, ...).
    Metadata,
    /// 192.0.2/24, 198.51.100/24, 203.0.113/24, 2001:db8::/32, 3fff::/20.
    Documentation,
    /// Every other special-purpose or unallocated range (240/4, 198.18/15, 100::/64, ...).
    Reserved,
    /// fc00::/7.
    UniqueLocal,
    /// fec0::/10 (deprecated, still routed by some stacks).
    SiteLocal,
    /// An IPv4 address embedded in NAT64 (64:ff9b::/96), 6to4 (2002::/16) or Teredo
    /// (2001::/32) that is itself refused.
    Translated,
}

impl AddressClass {
    /// A short description, used in messages as "a {describe} address".
    pub fn describe(self) -> &'static str {
        match self {
            Self::Loopback => "loopback",
            Self::Private => "private (RFC 1918)",
            Self::LinkLocal => "link-local",
            Self::Multicast => "multicast",
            Self::Unspecified => "unspecified",
            Self::Broadcast => "broadcast",
            Self::SharedCgnat => "shared (CGNAT, RFC 6598)",
            Self::Metadata => "cloud metadata service",
            Self::Documentation => "documentation-only",
            Self::Reserved => "reserved or special-purpose",
            Self::UniqueLocal => "unique local (fc00::/7)",
            Self::SiteLocal => "site-local (fec0::/10)",
            Self::Translated => "translated (NAT64/6to4/Teredo) non-public IPv4",
        }
    }

    fn article(self) -> &'static str {
        match self {
            Self::Unspecified => "an",
            _ => "a",
        }
    }

    /// What deliveries are refused to, in the plural.
    fn destinations(self) -> &'static str {
        match self {
            Self::Loopback => "loopback addresses",
            Self::Private => "private networks",
            Self::LinkLocal => "link-local addresses",
            Self::Multicast => "multicast addresses",
            Self::Unspecified => "unspecified addresses",
            Self::Broadcast => "broadcast addresses",
            Self::SharedCgnat => "shared (CGNAT) networks",
            Self::Metadata => "cloud metadata services",
            Self::Documentation => "documentation addresses",
            Self::Reserved => "reserved addresses",
            Self::UniqueLocal => "unique local networks",
            Self::SiteLocal => "site-local networks",
            Self::Translated => "translated forms of non-public IPv4 addresses",
        }
    }
}

impl fmt::Display for AddressClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.describe())
    }
}

/// Cloud metadata and platform endpoints. Most sit inside ranges that are refused anyway;
/// naming them gives a clearer message. 168.63.129.16 (Azure's host endpoint) is in
/// public space but answers only from inside Azure, so it must be refused by name.
const V4_METADATA: &[Ipv4Addr] = &[
    Ipv4Addr::new(169, 254, 169, 254), // AWS, GCP, Azure, OCI, DigitalOcean, OpenStack
    Ipv4Addr::new(169, 254, 170, 2),   // AWS ECS task credentials
    Ipv4Addr::new(169, 254, 170, 23),  // AWS EKS pod identity
    Ipv4Addr::new(100, 100, 100, 200), // Alibaba Cloud
    Ipv4Addr::new(192, 0, 0, 192),     // Oracle Cloud (classic)
    Ipv4Addr::new(168, 63, 129, 16),   // Azure host endpoint (WireServer)
];

const V6_METADATA: &[Ipv6Addr] = &[
    Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254), // AWS IMDS
    Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x23),  // AWS EKS pod identity
];

/// Non-public IPv4 ranges, disjoint; 0.0.0.0, the broadcast address and metadata
/// addresses are matched before this table.
const V4_RANGES: &[(Ipv4Addr, u32, AddressClass)] = &[
    (Ipv4Addr::new(0, 0, 0, 0), 8, AddressClass::Reserved), // "this network"
    (Ipv4Addr::new(10, 0, 0, 0), 8, AddressClass::Private),
    (Ipv4Addr::new(100, 64, 0, 0), 10, AddressClass::SharedCgnat),
    (Ipv4Addr::new(127, 0, 0, 0), 8, AddressClass::Loopback),
    (Ipv4Addr::new(169, 254, 0, 0), 16, AddressClass::LinkLocal),
    (Ipv4Addr::new(172, 16, 0, 0), 12, AddressClass::Private),
    (Ipv4Addr::new(192, 0, 0, 0), 24, AddressClass::Reserved), // IETF protocol assignments
    (Ipv4Addr::new(192, 0, 2, 0), 24, AddressClass::Documentation),
    (Ipv4Addr::new(192, 88, 99, 0), 24, AddressClass::Reserved), // 6to4 relay anycast
    (Ipv4Addr::new(192, 168, 0, 0), 16, AddressClass::Private),
    (Ipv4Addr::new(198, 18, 0, 0), 15, AddressClass::Reserved), // benchmarking
    (
        Ipv4Addr::new(198, 51, 100, 0),
        24,
        AddressClass::Documentation,
    ),
    (
        Ipv4Addr::new(203, 0, 113, 0),
        24,
        AddressClass::Documentation,
    ),
    (Ipv4Addr::new(224, 0, 0, 0), 4, AddressClass::Multicast),
    (Ipv4Addr::new(240, 0, 0, 0), 4, AddressClass::Reserved), // 255.255.255.255 matched first
];

/// Non-public IPv6 ranges without an embedded IPv4 address (those are handled in code
/// first). Anything outside global unicast 2000::/3 that is not listed is reserved too.
const V6_RANGES: &[(Ipv6Addr, u32, AddressClass)] = &[
    (
        Ipv6Addr::new(0, 0, 0, 0, 0, 0, 0, 0),
        8,
        AddressClass::Reserved,
    ),
    (
        Ipv6Addr::new(0x64, 0xff9b, 1, 0, 0, 0, 0, 0),
        48,
        AddressClass::Reserved,
    ), // local-use NAT64
    (
        Ipv6Addr::new(0x100, 0, 0, 0, 0, 0, 0, 0),
        64,
        AddressClass::Reserved,
    ), // discard-only
    (
        Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0),
        32,
        AddressClass::Documentation,
    ),
    (
        Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0),
        23,
        AddressClass::Reserved,
    ), // IETF protocol assignments
    (
        Ipv6Addr::new(0x3fff, 0, 0, 0, 0, 0, 0, 0),
        20,
        AddressClass::Documentation,
    ),
    (
        Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0),
        7,
        AddressClass::UniqueLocal,
    ),
    (
        Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0),
        10,
        AddressClass::LinkLocal,
    ),
    (
        Ipv6Addr::new(0xfec0, 0, 0, 0, 0, 0, 0, 0),
        10,
        AddressClass::SiteLocal,
    ),
    (
        Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0),
        8,
        AddressClass::Multicast,
    ),
];

const NAT64_WELL_KNOWN: Ipv6Addr = Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0, 0);
const TEREDO: Ipv6Addr = Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0);
const SIX_TO_FOUR: Ipv6Addr = Ipv6Addr::new(0x2002, 0, 0, 0, 0, 0, 0, 0);
const GLOBAL_UNICAST: Ipv6Addr = Ipv6Addr::new(0x2000, 0, 0, 0, 0, 0, 0, 0);

fn mask_v4(prefix: u32) -> u32 {
    u32::MAX.checked_shl(32 - prefix).unwrap_or(0)
}

fn mask_v6(prefix: u32) -> u128 {
    u128::MAX.checked_shl(128 - prefix).unwrap_or(0)
}

fn in_v4(ip: Ipv4Addr, net: Ipv4Addr, prefix: u32) -> bool {
    ip.to_bits() & mask_v4(prefix) == net.to_bits()
}

fn in_v6(ip: Ipv6Addr, net: Ipv6Addr, prefix: u32) -> bool {
    ip.to_bits() & mask_v6(prefix) == net.to_bits()
}

/// `None` for a public address; why it is not public otherwise.
pub fn classify(ip: IpAddr) -> Option<AddressClass> {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn classify_v4(ip: Ipv4Addr) -> Option<AddressClass> {
    if V4_METADATA.contains(&ip) {
        return Some(AddressClass::Metadata);
    }
    if ip == Ipv4Addr::BROADCAST {
        return Some(AddressClass::Broadcast);
    }
    if ip.is_unspecified() {
        return Some(AddressClass::Unspecified);
    }
    V4_RANGES
        .iter()
        .find(|(net, prefix, _)| in_v4(ip, *net, *prefix))
        .map(|(_, _, class)| *class)
}

fn classify_v6(ip: Ipv6Addr) -> Option<AddressClass> {
    if V6_METADATA.contains(&ip) {
        return Some(AddressClass::Metadata);
    }
    if ip.is_unspecified() {
        return Some(AddressClass::Unspecified);
    }
    if ip.is_loopback() {
        return Some(AddressClass::Loopback);
    }
    let bits = ip.to_bits();
    let low32 = Ipv4Addr::from_bits(bits as u32);

    // ::ffff:a.b.c.d is the IPv4 address itself on a dual-stack socket.
    if let Some(v4) = ip.to_ipv4_mapped() {
        return classify_v4(v4);
    }
    // ::a.b.c.d (IPv4-compatible) is deprecated: refused even when a.b.c.d is public.
    if bits >> 32 == 0 {
        return Some(classify_v4(low32).unwrap_or(AddressClass::Reserved));
    }
    // NAT64 reaches whatever IPv4 address is embedded: judge that one.
    if in_v6(ip, NAT64_WELL_KNOWN, 96) {
        return classify_v4(low32).map(|_| AddressClass::Translated);
    }
    // Teredo (deprecated) tunnels to the client address, stored inverted in the low 32
    // bits. No webhook receiver lives there, so it is refused either way.
    if in_v6(ip, TEREDO, 32) {
        let client = Ipv4Addr::from_bits(!(bits as u32));
        return Some(match classify_v4(client) {
            Some(_) => AddressClass::Translated,
            None => AddressClass::Reserved,
        });
    }
    // 6to4 embeds the IPv4 address in bits 16..48.
    if in_v6(ip, SIX_TO_FOUR, 16) {
        let v4 = Ipv4Addr::from_bits((bits >> 80) as u32);
        return classify_v4(v4).map(|_| AddressClass::Translated);
    }
    if let Some((_, _, class)) = V6_RANGES
        .iter()
        .find(|(net, prefix, _)| in_v6(ip, *net, *prefix))
    {
        return Some(*class);
    }
    if !in_v6(ip, GLOBAL_UNICAST, 3) {
        return Some(AddressClass::Reserved);
    }
    None
}

/// A network in an allow-list, e.g. `10.1.0.0/16`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Network {
    addr: IpAddr,
    prefix: u32,
}

impl Network {
    /// Parses `addr/prefix`, or a bare address as a single host. Host bits must be zero,
    /// so that a typo such as `10.1.2.0/8` is caught rather than silently widened.
    fn parse(text: &str) -> Result<Self, String> {
        let (addr_text, prefix_text) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let addr: IpAddr = addr_text
            .parse()
            .map_err(|_| format!("{addr_text:?} is not an IP address"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix_text {
            None => max,
            Some(p) => p
                .parse::<u32>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("the prefix length must be a number from 0 to {max}"))?,
        };
        let network = Self { addr, prefix };
        let masked = network.network_address();
        if masked != addr {
            return Err(format!(
                "host bits are set (did you mean {masked}/{prefix}?)"
            ));
        }
        Ok(network)
    }

    fn network_address(self) -> IpAddr {
        match self.addr {
            IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from_bits(a.to_bits() & mask_v4(self.prefix))),
            IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from_bits(a.to_bits() & mask_v6(self.prefix))),
        }
    }

    fn contains(self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => in_v4(ip, net, self.prefix),
            (IpAddr::V6(net), IpAddr::V6(ip)) => in_v6(ip, net, self.prefix),
            _ => false,
        }
    }
}

/// A bad network allow-list.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// An entry is not a valid CIDR.
    #[error("invalid network {cidr:?} in the allow-list: {reason}")]
    BadCidr { cidr: String, reason: String },
}

/// Which destinations deliveries may reach.
#[derive(Debug, Clone)]
pub struct NetworkPolicy {
    allow_all: bool,
    allowed: Vec<Network>,
}

impl Default for NetworkPolicy {
    fn default() -> Self {
        Self::public_only()
    }
}

impl NetworkPolicy {
    /// Only public addresses (the production default).
    pub fn public_only() -> Self {
        Self {
            allow_all: false,
            allowed: Vec::new(),
        }
    }

    /// Everything, including loopback, private ranges and metadata addresses
    /// (`--allow-private-networks`, `ipn up`): an explicit opt-in for development.
    pub fn allow_private() -> Self {
        Self {
            allow_all: true,
            allowed: Vec::new(),
        }
    }

    /// Public addresses plus these networks (`"10.1.0.0/16"`, `"127.0.0.1/32"`,
    /// `"::1/128"`; a bare address means that one host). A listed network is allowed
    /// whatever its class.
    pub fn with_allow_list(cidrs: &[&str]) -> Result<Self, PolicyError> {
        let allowed = cidrs
            .iter()
            .map(|cidr| {
                Network::parse(cidr.trim()).map_err(|reason| PolicyError::BadCidr {
                    cidr: (*cidr).to_owned(),
                    reason,
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            allow_all: false,
            allowed,
        })
    }

    /// `Ok` if deliveries may reach `ip`. The error names the address itself as the
    /// host; [`check_url`] puts the real host name there.
    pub fn allows(&self, ip: IpAddr) -> Result<(), Refused> {
        let Some(class) = classify(ip) else {
            return Ok(());
        };
        // An IPv4-mapped address is the IPv4 address: `127.0.0.1/32` covers ::ffff:127.0.0.1.
        let canonical = ip.to_canonical();
        let listed = self
            .allowed
            .iter()
            .any(|net| net.contains(ip) || net.contains(canonical));
        if self.allow_all || listed {
            return Ok(());
        }
        Err(Refused::Address {
            host: ip.to_string(),
            ip,
            class,
        })
    }

    fn check(&self, host: &str, ip: IpAddr) -> Result<(), Refused> {
        self.allows(ip).map_err(|refused| match refused {
            Refused::Address { ip, class, .. } => Refused::Address {
                host: host.to_owned(),
                ip,
                class,
            },
            other => other,
        })
    }
}

/// A destination refused by the policy. `Display` is one line, fit for API errors and
/// attempt logs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// The host is, or resolves to, an address the policy refuses.
    Address {
        host: String,
        ip: IpAddr,
        class: AddressClass,
    },
    /// The host resolved to nothing, or the lookup failed.
    Unresolvable { host: String, reason: String },
    /// Not an http(s) URL, or no host, or userinfo in the URL (credentials in URLs are
    /// refused).
    BadUrl { reason: String },
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Address { host, ip, class } => {
                if *host == ip.to_string() {
                    write!(f, "{host} is")?;
                } else {
                    write!(f, "{host} resolves to {ip},")?;
                }
                write!(
                    f,
                    " {} {} address; deliveries to {} are refused \
                     (start the gateway with --allow-private-networks to allow them)",
                    class.article(),
                    class.describe(),
                    class.destinations(),
                )
            }
            Self::Unresolvable { host, reason } => {
                write!(f, "{host} could not be resolved: {reason}")
            }
            Self::BadUrl { reason } => write!(f, "invalid endpoint URL: {reason}"),
        }
    }
}

/// What [`HostResolver::resolve`] returns.
pub type ResolveFuture<'a> = Pin<Box<dyn Future<Output = io::Result<Vec<SocketAddr>>> + Send + 'a>>;

/// How host names become addresses; swappable so tests can make DNS "change".
pub trait HostResolver: Send + Sync + fmt::Debug + 'static {
    /// Resolves `host` (a domain name, never an IP literal) to socket addresses on `port`.
    fn resolve(&self, host: &str, port: u16) -> ResolveFuture<'_>;
}

/// The operating system's resolver, through `tokio::net::lookup_host`.
#[derive(Debug, Default)]
pub struct SystemResolver;

impl HostResolver for SystemResolver {
    fn resolve(&self, host: &str, port: u16) -> ResolveFuture<'_> {
        let host = host.to_owned();
        Box::pin(async move {
            Ok(tokio::net::lookup_host((host.as_str(), port))
                .await?
                .collect())
        })
    }
}

/// A fixed table of names, changeable at any time; for tests. Names are matched
/// case-insensitively; an unknown name fails with `NotFound`.
#[derive(Debug, Default)]
pub struct StaticResolver {
    // std Mutex: held only to copy a short Vec, never across an await.
    hosts: Mutex<HashMap<String, Vec<IpAddr>>>,
}

impl StaticResolver {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes `host` resolve to `ips` from now on (an empty list: to nothing).
    pub fn set(&self, host: impl Into<String>, ips: impl Into<Vec<IpAddr>>) {
        let mut hosts = self.hosts.lock().unwrap_or_else(|e| e.into_inner());
        hosts.insert(host.into().to_ascii_lowercase(), ips.into());
    }
}

impl HostResolver for StaticResolver {
    fn resolve(&self, host: &str, port: u16) -> ResolveFuture<'_> {
        let found = self
            .hosts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&host.to_ascii_lowercase())
            .cloned();
        let result = match found {
            Some(ips) => Ok(ips
                .into_iter()
                .map(|ip| SocketAddr::new(ip, port))
                .collect()),
            None => Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("no such host {host:?} in the static resolver"),
            )),
        };
        Box::pin(std::future::ready(result))
    }
}

/// What a URL's host turned out to be once its syntax was checked.
enum Target<'a> {
    Literal(SocketAddr),
    Domain(&'a str, u16),
}

fn parse_target(url: &Url) -> Result<Target<'_>, Refused> {
    let bad = |reason: String| Refused::BadUrl { reason };
    let scheme = url.scheme();
    if scheme != "http" && scheme != "https" {
        return Err(bad(format!(
            "the scheme must be http or https, not {scheme:?}"
        )));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("credentials in URLs are refused".to_owned()));
    }
    // Never `None` for http(s), which always have a default port.
    let port = url
        .port_or_known_default()
        .ok_or_else(|| bad("the URL has no port".to_owned()))?;
    match url.host() {
        None => Err(bad("the URL has no host".to_owned())),
        Some(Host::Ipv4(ip)) => Ok(Target::Literal(SocketAddr::new(ip.into(), port))),
        Some(Host::Ipv6(ip)) => Ok(Target::Literal(SocketAddr::new(ip.into(), port))),
        Some(Host::Domain(domain)) => Ok(Target::Domain(domain, port)),
    }
}

/// Checks the parts of a URL that need no DNS: the scheme, userinfo and, when the host is
/// an IP literal, the address itself. `None` means the URL is well formed and names a
/// host, which [`check_url`] must still check (with DNS).
///
/// `url::Url` has already normalised odd IPv4 spellings (`http://2130706433/`,
/// `http://0x7f.1/`, `http://127.1/`) into dotted form, so they are literals too.
pub fn check_literal(policy: &NetworkPolicy, url: &Url) -> Option<Result<SocketAddr, Refused>> {
    match parse_target(url) {
        Err(refused) => Some(Err(refused)),
        Ok(Target::Domain(..)) => None,
        Ok(Target::Literal(addr)) => Some(
            policy
                .check(&addr.ip().to_string(), addr.ip())
                .map(|()| addr),
        ),
    }
}

/// Checks a URL the way a delivery will: an IP literal directly, a host name by resolving
/// it with `resolver` and requiring that EVERY address is allowed (an attacker controls
/// which of them a connection would use). Returns the allowed addresses.
pub async fn check_url(
    policy: &NetworkPolicy,
    resolver: &dyn HostResolver,
    url: &Url,
) -> Result<Vec<SocketAddr>, Refused> {
    match parse_target(url)? {
        Target::Literal(addr) => {
            policy.check(&addr.ip().to_string(), addr.ip())?;
            Ok(vec![addr])
        }
        Target::Domain(host, port) => resolve_checked(policy, resolver, host, port).await,
    }
}

async fn resolve_checked(
    policy: &NetworkPolicy,
    resolver: &dyn HostResolver,
    host: &str,
    port: u16,
) -> Result<Vec<SocketAddr>, Refused> {
    // A resolver is never asked about an IP literal; keep that true whoever calls us.
    if let Ok(ip) = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
    {
        policy.check(host, ip)?;
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let unresolvable = |reason: String| Refused::Unresolvable {
        host: host.to_owned(),
        reason,
    };
    let addrs = resolver
        .resolve(host, port)
        .await
        .map_err(|e| unresolvable(e.to_string()))?;
    if addrs.is_empty() {
        return Err(unresolvable("the lookup returned no addresses".to_owned()));
    }
    for addr in &addrs {
        policy.check(host, addr.ip())?;
    }
    Ok(addrs)
}

#[cfg(test)]
mod tests {
    use super::*;

    use AddressClass::*;

    const CLASSIFY: &[(&str, Option<AddressClass>)] = &[
        // Public.
        ("8.8.8.8", None),
        ("1.1.1.1", None),
        ("93.184.216.34", None),
        ("11.0.0.1", None),
        ("2606:4700:4700::1111", None),
        ("2001:4860:4860::8888", None),
        ("2a00:1450:4001::1", None),
        ("::ffff:8.8.8.8", None),
        ("64:ff9b::808:808", None),
        ("2002:808:808::1", None),
        // Just outside refused ranges.
        ("9.255.255.255", None),
        ("100.63.255.255", None),
        ("100.128.0.0", None),
        ("126.255.255.255", None),
        ("128.0.0.0", None),
        ("169.253.255.255", None),
        ("169.255.0.0", None),
        ("172.15.255.255", None),
        ("172.32.0.0", None),
        ("192.167.255.255", None),
        ("192.169.0.0", None),
        ("198.17.255.255", None),
        ("198.20.0.0", None),
        ("223.255.255.255", None),
        ("1.0.0.0", None),
        ("2001:200::1", None),
        ("2001:db7:ffff::1", None),
        ("3ffe:ffff::1", None),
        ("3fff:1000::1", None),
        // Loopback.
        ("127.0.0.1", Some(Loopback)),
        ("127.1.2.3", Some(Loopback)),
        ("127.255.255.254", Some(Loopback)),
        ("::1", Some(Loopback)),
        ("::ffff:127.0.0.1", Some(Loopback)),
        ("::127.0.0.1", Some(Loopback)),
        // Private (RFC 1918).
        ("10.0.0.0", Some(Private)),
        ("10.1.2.3", Some(Private)),
        ("10.255.255.255", Some(Private)),
        ("172.16.0.1", Some(Private)),
        ("172.31.255.255", Some(Private)),
        ("192.168.0.1", Some(Private)),
        ("192.168.255.255", Some(Private)),
        ("::ffff:10.1.2.3", Some(Private)),
        ("::ffff:192.168.1.1", Some(Private)),
        ("::10.0.0.1", Some(Private)),
        // Link-local.
        ("169.254.0.1", Some(LinkLocal)),
        ("169.254.255.255", Some(LinkLocal)),
        ("fe80::1", Some(LinkLocal)),
        ("febf:ffff::1", Some(LinkLocal)),
        ("::ffff:169.254.1.1", Some(LinkLocal)),
        // Multicast.
        ("224.0.0.1", Some(Multicast)),
        ("239.255.255.250", Some(Multicast)),
        ("ff02::1", Some(Multicast)),
        ("ff0e::fb", Some(Multicast)),
        ("::ffff:224.0.0.251", Some(Multicast)),
        // Unspecified.
        ("0.0.0.0", Some(Unspecified)),
        ("::", Some(Unspecified)),
        ("::ffff:0.0.0.0", Some(Unspecified)),
        // Broadcast.
        ("255.255.255.255", Some(Broadcast)),
        ("::ffff:255.255.255.255", Some(Broadcast)),
        // Shared address space (CGNAT).
        ("100.64.0.0", Some(SharedCgnat)),
        ("100.64.0.1", Some(SharedCgnat)),
        ("100.127.255.255", Some(SharedCgnat)),
        // Cloud metadata.
        ("169.254.169.254", Some(Metadata)),
        ("169.254.170.2", Some(Metadata)),
        ("100.100.100.200", Some(Metadata)),
        ("168.63.129.16", Some(Metadata)),
        ("fd00:ec2::254", Some(Metadata)),
        ("::ffff:169.254.169.254", Some(Metadata)),
        // Documentation.
        ("192.0.2.1", Some(Documentation)),
        ("198.51.100.7", Some(Documentation)),
        ("203.0.113.255", Some(Documentation)),
        ("2001:db8::1", Some(Documentation)),
        ("2001:db8:ffff::1", Some(Documentation)),
        ("3fff::1", Some(Documentation)),
        // Reserved and special-purpose.
        ("0.1.2.3", Some(Reserved)),
        ("192.0.0.8", Some(Reserved)),
        ("192.88.99.1", Some(Reserved)),
        ("198.18.0.1", Some(Reserved)),
        ("198.19.255.255", Some(Reserved)),
        ("240.0.0.1", Some(Reserved)),
        ("254.255.255.255", Some(Reserved)),
        ("::8.8.8.8", Some(Reserved)),
        ("::2", Some(Reserved)),
        ("::ffff:0:a00:1", Some(Reserved)),
        ("::1:0:0:1", Some(Reserved)),
        ("64:ff9b:1::a00:1", Some(Reserved)),
        ("100::1", Some(Reserved)),
        ("100::ffff:ffff:ffff:ffff", Some(Reserved)),
        ("2001:2::1", Some(Reserved)),
        ("2001:10::1", Some(Reserved)),
        ("2001:1ff::1", Some(Reserved)),
        ("2001:0:4136:e378:8000:63bf:f7f7:f7f7", Some(Reserved)), // Teredo, client 8.8.8.8
        ("5f00::1", Some(Reserved)),
        ("4000::1", Some(Reserved)),
        ("1::1", Some(Reserved)),
        ("e000::1", Some(Reserved)),
        // Unique local.
        ("fc00::1", Some(UniqueLocal)),
        ("fd00::1", Some(UniqueLocal)),
        ("fd12:3456:789a::1", Some(UniqueLocal)),
        ("fdff:ffff::1", Some(UniqueLocal)),
        // Site-local.
        ("fec0::1", Some(SiteLocal)),
        ("feff::1", Some(SiteLocal)),
        // Refused IPv4 inside NAT64, 6to4 and Teredo.
        ("64:ff9b::a00:1", Some(Translated)),
        ("64:ff9b::127.0.0.1", Some(Translated)),
        ("64:ff9b::169.254.169.254", Some(Translated)),
        ("2002:a00:1::", Some(Translated)),
        ("2002:7f00:1::1", Some(Translated)),
        ("2002:a9fe:a9fe::", Some(Translated)),
        ("2002:c0a8:101::", Some(Translated)),
        ("2001:0:4136:e378:8000:63bf:80ff:fffe", Some(Translated)), // Teredo, client 127.0.0.1
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", Some(Translated)), // Teredo, client 192.0.2.45
    ];

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    fn url(text: &str) -> Url {
        Url::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    fn refused_samples() -> impl Iterator<Item = (IpAddr, AddressClass)> {
        CLASSIFY
            .iter()
            .filter_map(|(text, class)| class.map(|class| (ip(text), class)))
    }

    #[test]
    fn classify_table() {
        let wrong: Vec<String> = CLASSIFY
            .iter()
            .filter(|(text, want)| classify(ip(text)) != *want)
            .map(|(text, want)| format!("{text}: got {:?}, want {want:?}", classify(ip(text))))
            .collect();
        assert!(wrong.is_empty(), "misclassified:\n{}", wrong.join("\n"));
    }

    #[test]
    fn the_table_covers_every_class() {
        let all = [
            Loopback,
            Private,
            LinkLocal,
            Multicast,
            Unspecified,
            Broadcast,
            SharedCgnat,
            Metadata,
            Documentation,
            Reserved,
            UniqueLocal,
            SiteLocal,
            Translated,
        ];
        for class in all {
            assert!(
                CLASSIFY.iter().any(|(_, c)| *c == Some(class)),
                "no sample of {class:?}"
            );
        }
        let mut descriptions: Vec<_> = all.iter().map(|c| c.describe()).collect();
        descriptions.sort_unstable();
        descriptions.dedup();
        assert_eq!(descriptions.len(), all.len(), "descriptions must differ");
        assert_eq!(Private.describe(), "private (RFC 1918)");
        assert_eq!(Metadata.describe(), "cloud metadata service");
    }

    #[test]
    fn public_only_refuses_every_non_public_class() {
        let policy = NetworkPolicy::public_only();
        for (ip, class) in refused_samples() {
            assert_eq!(
                policy.allows(ip),
                Err(Refused::Address {
                    host: ip.to_string(),
                    ip,
                    class
                }),
                "{ip}"
            );
        }
        for public in ["8.8.8.8", "2606:4700:4700::1111"] {
            assert_eq!(policy.allows(ip(public)), Ok(()));
        }
    }

    #[test]
    fn allow_private_allows_everything() {
        let policy = NetworkPolicy::allow_private();
        for (ip, _) in refused_samples() {
            assert_eq!(policy.allows(ip), Ok(()), "{ip}");
        }
        assert_eq!(policy.allows(ip("8.8.8.8")), Ok(()));
    }

    #[test]
    fn allow_list_allows_only_the_listed_networks() {
        let policy = NetworkPolicy::with_allow_list(&["10.1.0.0/16", "127.0.0.1/32", "::1/128"])
            .expect("valid list");
        for allowed in [
            "10.1.0.0",
            "10.1.2.3",
            "10.1.255.255",
            "::ffff:10.1.2.3",
            "127.0.0.1",
            "::ffff:127.0.0.1",
            "::1",
            "8.8.8.8",
            "2606:4700:4700::1111",
        ] {
            assert_eq!(policy.allows(ip(allowed)), Ok(()), "{allowed}");
        }
        for refused in [
            "10.0.255.255",
            "10.2.0.1",
            "127.0.0.2",
            "192.168.1.1",
            "169.254.169.254",
            "fd00::1",
        ] {
            assert!(policy.allows(ip(refused)).is_err(), "{refused}");
        }
    }

    #[test]
    fn allow_list_entries_may_be_bare_addresses_or_wide_networks() {
        let policy = NetworkPolicy::with_allow_list(&["192.168.1.10", " fd00::/8 "]).unwrap();
        assert_eq!(policy.allows(ip("192.168.1.10")), Ok(()));
        assert!(policy.allows(ip("192.168.1.11")).is_err());
        assert_eq!(policy.allows(ip("fd12::1")), Ok(()));
        assert!(policy.allows(ip("fc00::1")).is_err());
    }

    #[test]
    fn a_bad_cidr_is_an_error_naming_it() {
        for (cidr, reason) in [
            ("10.0.0.0/33", "prefix length"),
            ("::1/129", "prefix length"),
            ("10.0.0.0/", "prefix length"),
            ("10.0.0.0/x", "prefix length"),
            ("nope/8", "not an IP address"),
            ("", "not an IP address"),
            ("10.1.2.3/16", "did you mean 10.1.0.0/16?"),
        ] {
            let err = NetworkPolicy::with_allow_list(&["127.0.0.1/32", cidr]).unwrap_err();
            let message = err.to_string();
            assert!(message.contains(&format!("{cidr:?}")), "{message}");
            assert!(message.contains(reason), "{message}");
        }
    }

    #[test]
    fn refused_messages_read_well() {
        let literal = Refused::Address {
            host: "10.0.0.5".into(),
            ip: ip("10.0.0.5"),
            class: Private,
        };
        assert_eq!(
            literal.to_string(),
            "10.0.0.5 is a private (RFC 1918) address; deliveries to private networks are \
             refused (start the gateway with --allow-private-networks to allow them)"
        );
        let resolved = Refused::Address {
            host: "hooks.example.com".into(),
            ip: ip("169.254.169.254"),
            class: Metadata,
        };
        assert_eq!(
            resolved.to_string(),
            "hooks.example.com resolves to 169.254.169.254, a cloud metadata service address; \
             deliveries to cloud metadata services are refused (start the gateway with \
             --allow-private-networks to allow them)"
        );
        let unspecified = NetworkPolicy::public_only()
            .allows(ip("0.0.0.0"))
            .unwrap_err();
        assert!(
            unspecified
                .to_string()
                .starts_with("0.0.0.0 is an unspecified address;")
        );
        for refused in [literal, resolved, unspecified] {
            let text = refused.to_string();
            assert!(!text.contains('\n') && !text.ends_with('.'), "{text}");
        }
    }

    #[tokio::test]
    async fn ip_literals_are_checked_without_the_resolver() {
        // An empty table: any lookup would fail as Unresolvable.
        let resolver = StaticResolver::new();
        let policy = NetworkPolicy::public_only();
        let cases = [
            ("http://10.0.0.5/hook", "10.0.0.5", Private),
            ("https://[::1]:8443/hook", "::1", Loopback),
            ("http://[::ffff:127.0.0.1]/", "::ffff:127.0.0.1", Loopback),
            ("http://[fd00:ec2::254]/", "fd00:ec2::254", Metadata),
            ("http://[64:ff9b::a00:1]/", "64:ff9b::a00:1", Translated),
            (
                "http://169.254.169.254/latest/meta-data/",
                "169.254.169.254",
                Metadata,
            ),
            ("http://0.0.0.0:8080/", "0.0.0.0", Unspecified),
            // Odd IPv4 spellings, normalised by url::Url into dotted form.
            ("http://2130706433/", "127.0.0.1", Loopback),
            ("http://0x7f.1/", "127.0.0.1", Loopback),
            ("http://127.1/", "127.0.0.1", Loopback),
            ("http://0177.0.0.1/", "127.0.0.1", Loopback),
            ("http://0x7f000001/", "127.0.0.1", Loopback),
            ("http://127.0.0.1./", "127.0.0.1", Loopback),
            ("http://0xA9.0xFE.0xA9.0xFE/", "169.254.169.254", Metadata),
        ];
        for (text, want_ip, class) in cases {
            let u = url(text);
            let want = Refused::Address {
                host: want_ip.to_owned(),
                ip: ip(want_ip),
                class,
            };
            assert_eq!(
                check_url(&policy, &resolver, &u).await,
                Err(want.clone()),
                "{text}"
            );
            assert_eq!(check_literal(&policy, &u), Some(Err(want)), "{text}");
        }

        let public = [
            ("http://8.8.8.8/hook", "8.8.8.8:80"),
            ("https://8.8.8.8/hook", "8.8.8.8:443"),
            (
                "https://[2606:4700:4700::1111]/hook",
                "[2606:4700:4700::1111]:443",
            ),
            (
                "http://[2606:4700:4700::1111]:8080/",
                "[2606:4700:4700::1111]:8080",
            ),
        ];
        for (text, addr) in public {
            let addr: SocketAddr = addr.parse().unwrap();
            let u = url(text);
            assert_eq!(
                check_url(&policy, &resolver, &u).await,
                Ok(vec![addr]),
                "{text}"
            );
            assert_eq!(check_literal(&policy, &u), Some(Ok(addr)), "{text}");
        }
    }

    #[tokio::test]
    async fn literals_in_the_allow_list_pass() {
        let policy = NetworkPolicy::with_allow_list(&["127.0.0.1/32"]).unwrap();
        let u = url("http://127.0.0.1:1234/hook");
        let want = vec!["127.0.0.1:1234".parse().unwrap()];
        assert_eq!(
            check_url(&policy, &StaticResolver::new(), &u).await,
            Ok(want)
        );
        assert!(
            check_literal(&policy, &url("http://[::1]/"))
                .unwrap()
                .is_err()
        );
    }

    #[tokio::test]
    async fn every_resolved_address_must_be_allowed() {
        let resolver = StaticResolver::new();
        resolver.set("mixed.test", [ip("93.184.216.34"), ip("10.0.0.1")]);
        resolver.set(
            "Public.Test",
            [ip("93.184.216.34"), ip("2606:4700:4700::1111")],
        );
        resolver.set("empty.test", []);
        let policy = NetworkPolicy::public_only();

        assert_eq!(
            check_url(&policy, &resolver, &url("https://mixed.test/hook")).await,
            Err(Refused::Address {
                host: "mixed.test".into(),
                ip: ip("10.0.0.1"),
                class: Private
            })
        );
        assert_eq!(
            check_url(&policy, &resolver, &url("https://public.test:8443/hook")).await,
            Ok(vec![
                "93.184.216.34:8443".parse().unwrap(),
                "[2606:4700:4700::1111]:8443".parse().unwrap(),
            ])
        );
        assert!(matches!(
            check_url(&policy, &resolver, &url("http://empty.test/")).await,
            Err(Refused::Unresolvable { host, .. }) if host == "empty.test"
        ));
        assert!(matches!(
            check_url(&policy, &resolver, &url("http://unknown.test/")).await,
            Err(Refused::Unresolvable { host, .. }) if host == "unknown.test"
        ));
        // Domains need DNS: nothing to say synchronously.
        assert_eq!(check_literal(&policy, &url("https://mixed.test/")), None);
    }

    #[tokio::test]
    async fn a_dns_change_is_caught_at_the_next_check() {
        let resolver = StaticResolver::new();
        let policy = NetworkPolicy::public_only();
        let u = url("https://rebind.test/hook");
        resolver.set("rebind.test", [ip("93.184.216.34")]);
        assert!(check_url(&policy, &resolver, &u).await.is_ok());
        resolver.set("rebind.test", [ip("127.0.0.1")]);
        assert!(matches!(
            check_url(&policy, &resolver, &u).await,
            Err(Refused::Address {
                class: Loopback,
                ..
            })
        ));
    }

    #[tokio::test]
    async fn bad_urls_are_refused() {
        let resolver = StaticResolver::new();
        resolver.set("example.com", [ip("93.184.216.34")]);
        let policy = NetworkPolicy::allow_private();
        for (text, reason) in [
            ("ftp://example.com/", "scheme"),
            ("file:///etc/passwd", "scheme"),
            ("mailto:ops@example.com", "scheme"),
            ("ws://example.com/", "scheme"),
            ("http://user:secret@example.com/", "credentials"),
            ("http://user@example.com/", "credentials"),
            ("https://:secret@example.com/", "credentials"),
        ] {
            let u = url(text);
            let got = check_url(&policy, &resolver, &u).await;
            assert!(
                matches!(&got, Err(Refused::BadUrl { reason: r }) if r.contains(reason)),
                "{text}: {got:?}"
            );
            assert!(matches!(
                check_literal(&policy, &u),
                Some(Err(Refused::BadUrl { .. }))
            ));
        }
        // The message must not echo the secret.
        let err = check_url(&policy, &resolver, &url("http://u:hunter2@example.com/"))
            .await
            .unwrap_err();
        assert!(!err.to_string().contains("hunter2"));
    }

    #[tokio::test]
    async fn system_resolver_refuses_localhost() {
        let u = url("http://localhost:9/");
        let got = check_url(&NetworkPolicy::public_only(), &SystemResolver, &u).await;
        assert!(
            matches!(&got, Err(Refused::Address { host, class: Loopback, .. }) if host == "localhost"),
            "{got:?}"
        );
        let allowed = check_url(&NetworkPolicy::allow_private(), &SystemResolver, &u)
            .await
            .unwrap();
        assert!(!allowed.is_empty());
        assert!(
            allowed
                .iter()
                .all(|a| a.ip().is_loopback() && a.port() == 9)
        );
    }
}
