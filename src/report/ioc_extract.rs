//! IOC extraction from free text, such as the values of signature marks,
//! and the "IOCs found in signature marks" table built from it.
//!
//! The rules, applied to the whole text:
//!
//! * **URIs** start with an RFC 3986 scheme and `://` and end at the first
//!   whitespace, comma, backslash, `"`, `<` or `>`. Trailing `.`, `;`, `:`,
//!   `!`, `?` and `'` are dropped, and so is a trailing `)` without a
//!   matching `(`, because these usually end the sentence around the URI.
//!   The host is a bracketed IPv6 address, an IPv4 address or a domain (see
//!   below), and the port, when present, is a number up to 65535. A URI
//!   whose host or port does not fit is skipped. The text after a URI is
//!   scanned again for further URIs.
//! * A URI's **host** is also an IP or domain IOC, and its **path**, without
//!   the query and fragment, is a `uri_path` IOC unless it is empty or `/`.
//! * **IPv4** addresses are four dotted decimal octets without leading
//!   zeros (`std::net::Ipv4Addr`). A letter, digit or dot just before, or a
//!   letter, digit or `.<digit>` just after, means the numbers are part of
//!   something longer, such as a version `1.2.3.4.5`, and are skipped.
//! * **IPv6** addresses are runs of hex digits, colons and dots with at
//!   least two colons and one hex digit, that `std::net::Ipv6Addr` parses
//!   and that no letter, digit or `_` touches, so `Foo::Bar` is not one.
//!   They are written in the RFC 5952 form, and a zone id (`%eth0`) is left
//!   off.
//! * **Domains** are ASCII labels of letters, digits and inner hyphens,
//!   joined by dots and ending in a TLD of at least two letters that AL's
//!   tag model accepts. They are lower-cased. Internationalised names are
//!   found only in their `xn--` form. `example.com` is skipped, and so are
//!   domains whose TLD is more often a file extension or a JavaScript member
//!   ([`AMBIGUOUS_TLDS`]) unless the domain is the host of a URI in the same
//!   text.
//!
//! The output is deduplicated and ordered by kind (IP, domain, URI, URI
//! path), then by value. Every tag goes through [`add_tag`], so the tag
//! model and the safelist apply to the IOC table as they do to the tags a
//! signature adds directly.

use std::collections::{BTreeSet, HashSet};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::LazyLock;

use regex::Regex;
use serde_json::{json, Value};

use super::safelist::Safelist;
use super::tags::{add_tag, is_valid_tag};
use crate::assemblyline::{BodyFormat, Section};

/// Title of the table section that lists the IOCs of one signature.
pub const IOC_TABLE_TITLE: &str = "IOCs found in signature marks";

/// TLDs that, in malware reports, are more often a file extension (`.js`,
/// `.zip`) or a JavaScript or .NET member (`.call`, `.shell`, `.net`) than
/// a real domain. A domain ending in one is kept only as a URI's host.
pub const AMBIGUOUS_TLDS: &[&str] = &[
    "js",
    "one",
    "pub",
    "py",
    "sh",
    "zip",
    "call",
    "cl",
    "id",
    "in",
    "map",
    "name",
    "nc",
    "net",
    "run",
    "runincontext",
    "shell",
    "stream",
    "support",
    "target",
    "test",
    "top",
    "tt",
    "xmlhttp",
];

/// Domains that stand for "any domain" in documentation and are skipped.
const PLACEHOLDER_DOMAINS: &[&str] = &["example.com"];

/// Kind of an IOC, in the order the table lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum IocKind {
    Ip,
    Domain,
    Uri,
    UriPath,
}

impl IocKind {
    /// Returns the `ioc_type` value of a table row.
    pub fn as_str(self) -> &'static str {
        match self {
            IocKind::Ip => "ip",
            IocKind::Domain => "domain",
            IocKind::Uri => "uri",
            IocKind::UriPath => "uri_path",
        }
    }

    /// Returns the name of the AL tag that IOCs of this kind are added as.
    pub fn tag_name(self) -> &'static str {
        match self {
            IocKind::Ip => "network.dynamic.ip",
            IocKind::Domain => "network.dynamic.domain",
            IocKind::Uri => "network.dynamic.uri",
            IocKind::UriPath => "network.dynamic.uri_path",
        }
    }
}

/// A URI candidate: scheme, `://`, then anything up to a character that
/// cannot be part of a URI in running text.
static URI_CANDIDATE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"[A-Za-z][A-Za-z0-9+.-]*://[^\s,\\"<>]+"#).expect("URI pattern is valid")
});

static IPV4_CANDIDATE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"[0-9]{1,3}(?:\.[0-9]{1,3}){3}").expect("IPv4 pattern is valid"));

static IPV6_CANDIDATE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"[0-9A-Fa-f:.]{2,}").expect("IPv6 pattern is valid"));

/// Dotted labels ending in a TLD of letters. The character classes are
/// spelled out because `(?i)` in Unicode mode would also match the Kelvin
/// sign and the long s.
static DOMAIN_CANDIDATE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}")
        .expect("domain pattern is valid")
});

static DOMAIN_ONLY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$")
        .expect("domain pattern is valid")
});

/// Finds the IPs, domains, URIs and URI paths in `text`, by the rules in the
/// module documentation. Deduplicated, ordered by kind and then by value.
pub fn extract_iocs(text: &str) -> Vec<(IocKind, String)> {
    let mut found: BTreeSet<(IocKind, String)> = BTreeSet::new();

    // URIs first, because their hosts decide which ambiguous domains stay.
    let mut uri_hosts: HashSet<String> = HashSet::new();
    for candidate in URI_CANDIDATE.find_iter(text) {
        let Some(uri) = parse_uri(candidate.as_str()) else {
            continue;
        };
        match uri.host {
            Host::Ip(ip) => {
                found.insert((IocKind::Ip, ip));
            }
            Host::Domain(domain) => {
                if !PLACEHOLDER_DOMAINS.contains(&domain.as_str()) {
                    found.insert((IocKind::Domain, domain.clone()));
                }
                uri_hosts.insert(domain);
            }
        }
        if uri.path.len() > 1 {
            found.insert((IocKind::UriPath, uri.path.to_string()));
        }
        found.insert((IocKind::Uri, uri.text.to_string()));
    }

    for ip in find_ipv4(text).chain(find_ipv6(text)) {
        found.insert((IocKind::Ip, ip));
    }

    for candidate in DOMAIN_CANDIDATE.find_iter(text) {
        if !is_bounded(text, candidate.start(), candidate.end(), is_domain_char) {
            continue;
        }
        let domain = candidate.as_str().to_ascii_lowercase();
        if PLACEHOLDER_DOMAINS.contains(&domain.as_str()) {
            continue;
        }
        let tld = domain.rsplit('.').next().unwrap_or_default();
        if AMBIGUOUS_TLDS.contains(&tld) && !uri_hosts.contains(&domain) {
            continue;
        }
        if is_valid_tag(IocKind::Domain.tag_name(), &domain) {
            found.insert((IocKind::Domain, domain));
        }
    }

    found.into_iter().collect()
}

/// Builds the "IOCs found in signature marks" table: one row per IOC that
/// AL accepts as a tag and the safelist does not list, each added as a
/// `network.dynamic.*` tag. Returns `None` when no row is left.
pub fn ioc_table_section(iocs: &[(IocKind, String)], safelist: &Safelist) -> Option<Section> {
    let mut section = Section::new(IOC_TABLE_TITLE, BodyFormat::Table);
    let mut rows: Vec<Value> = Vec::new();
    let mut seen: HashSet<(IocKind, &str)> = HashSet::new();

    for (kind, value) in iocs {
        if !seen.insert((*kind, value.as_str())) {
            continue;
        }
        if add_tag(&mut section, kind.tag_name(), value, safelist) {
            rows.push(json!({ "ioc_type": kind.as_str(), "ioc": value }));
        }
    }

    if rows.is_empty() {
        return None;
    }
    section.body = Some(Value::Array(rows));
    section
        .body_config
        .insert("column_order".to_string(), json!(["ioc_type", "ioc"]));
    Some(section)
}

// === URIs ===

enum Host {
    /// An address in its canonical form.
    Ip(String),
    /// A lower-cased domain.
    Domain(String),
}

struct ParsedUri<'a> {
    /// The URI as it appears in the text, without trailing punctuation.
    text: &'a str,
    host: Host,
    /// The path without query and fragment; empty when there is none.
    path: &'a str,
}

/// Splits a URI candidate into host and path. Returns `None` when the host
/// is not an IP or a valid domain, or the port is not a port number.
fn parse_uri(candidate: &str) -> Option<ParsedUri<'_>> {
    let text = trim_trailing_punctuation(candidate);
    let (_, after_scheme) = text.split_once("://")?;

    let authority_end = after_scheme
        .find(['/', '?', '#'])
        .unwrap_or(after_scheme.len());
    let authority = &after_scheme[..authority_end];
    let rest = &after_scheme[authority_end..];
    let path_end = rest.find(['?', '#']).unwrap_or(rest.len());
    let path = &rest[..path_end];

    // Credentials before the host are not an IOC of their own.
    let host_and_port = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host_and_port)| host_and_port);
    let (host, port) = split_host_and_port(host_and_port)?;
    if let Some(port) = port {
        let digits_only = port.bytes().all(|byte| byte.is_ascii_digit());
        if !digits_only || port.is_empty() || port.len() > 5 || port.parse::<u16>().is_err() {
            return None;
        }
    }

    let host = if let Some(inner) = host.strip_prefix('[') {
        let ip = inner.strip_suffix(']')?.parse::<Ipv6Addr>().ok()?;
        Host::Ip(ip.to_string())
    } else if let Ok(ip) = host.parse::<Ipv4Addr>() {
        Host::Ip(ip.to_string())
    } else if DOMAIN_ONLY.is_match(host) {
        let domain = host.to_ascii_lowercase();
        if !is_valid_tag(IocKind::Domain.tag_name(), &domain) {
            return None;
        }
        Host::Domain(domain)
    } else {
        return None;
    };

    Some(ParsedUri { text, host, path })
}

/// Splits `host[:port]`, where the host may be a bracketed IPv6 address.
fn split_host_and_port(host_and_port: &str) -> Option<(&str, Option<&str>)> {
    if host_and_port.starts_with('[') {
        let close = host_and_port.find(']')?;
        let (host, rest) = host_and_port.split_at(close + 1);
        return match rest.strip_prefix(':') {
            Some(port) => Some((host, Some(port))),
            None if rest.is_empty() => Some((host, None)),
            None => None,
        };
    }
    match host_and_port.split_once(':') {
        Some((host, port)) => Some((host, Some(port))),
        None => Some((host_and_port, None)),
    }
}

/// Drops the punctuation that usually ends a sentence after a URI. A `)`
/// goes only when the URI has fewer `(` than `)`.
fn trim_trailing_punctuation(uri: &str) -> &str {
    let mut trimmed = uri;
    loop {
        let Some(last) = trimmed.chars().last() else {
            return trimmed;
        };
        let unbalanced_paren =
            last == ')' && trimmed.matches('(').count() < trimmed.matches(')').count();
        if matches!(last, '.' | ';' | ':' | '!' | '?' | '\'') || unbalanced_paren {
            trimmed = &trimmed[..trimmed.len() - last.len_utf8()];
        } else {
            return trimmed;
        }
    }
}

// === IPs ===

fn find_ipv4(text: &str) -> impl Iterator<Item = String> + '_ {
    IPV4_CANDIDATE.find_iter(text).filter_map(move |candidate| {
        let before = text[..candidate.start()].chars().next_back();
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '.') {
            return None;
        }
        let mut after = text[candidate.end()..].chars();
        match after.next() {
            Some(c) if c.is_ascii_alphanumeric() => return None,
            Some('.') if after.next().is_some_and(|c| c.is_ascii_digit()) => return None,
            _ => {}
        }
        let ip: Ipv4Addr = candidate.as_str().parse().ok()?;
        Some(ip.to_string())
    })
}

fn find_ipv6(text: &str) -> impl Iterator<Item = String> + '_ {
    IPV6_CANDIDATE.find_iter(text).filter_map(move |candidate| {
        if !is_bounded(text, candidate.start(), candidate.end(), is_word_char) {
            return None;
        }
        // A dot or single colon after the address ends the sentence or
        // starts a port, so it is not part of the address.
        let mut value = candidate.as_str().trim_matches('.');
        if value.ends_with(':') && !value.ends_with("::") {
            value = &value[..value.len() - 1];
        }
        let enough_colons = value.matches(':').count() >= 2;
        let has_hex_digit = value.chars().any(|c| c.is_ascii_hexdigit());
        if !enough_colons || !has_hex_digit {
            return None;
        }
        let ip: Ipv6Addr = value.parse().ok()?;
        Some(ip.to_string())
    })
}

// === helpers ===

/// Checks that neither the character just before `start` nor the one at
/// `end` is a `continues` character, so the match is a whole token.
fn is_bounded(text: &str, start: usize, end: usize, continues: fn(char) -> bool) -> bool {
    let before = text[..start].chars().next_back();
    let after = text[end..].chars().next();
    !before.is_some_and(continues) && !after.is_some_and(continues)
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Characters that would make a domain match part of a longer name.
fn is_domain_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '-'
}

#[cfg(test)]
mod tests;
