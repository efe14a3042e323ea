//! Settings of the shared quota backend, and the helpers that keep its
//! password and the API key out of logs and Redis.

use std::fmt;
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::config::Secret;

/// Maximum wait for a TCP connection, TLS handshake and AUTH to Redis.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Maximum wait for the reply to one Redis command. A task never waits
/// longer than this on Redis before the guard falls back to its local share.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_millis(250);
/// Interval between reads of the shared pause, upload breaker and counters,
/// so that a container learns of another's 429 or quota-exhausted response
/// within this time even while it sends nothing.
pub const DEFAULT_SYNC_INTERVAL: Duration = Duration::from_millis(500);
/// Interval between connection attempts while Redis is unreachable.
pub const DEFAULT_RECONNECT_INTERVAL: Duration = Duration::from_secs(1);

/// Text that replaces a password in logs and errors.
const REDACTED: &str = "***";

/// Location and options of the shared quota of one API key. `Debug` shows
/// the URL with its password replaced by `***`.
#[derive(Clone)]
pub struct SharedQuotaSettings {
    /// `redis://[user:password@]host[:port][/db]`, or `rediss://` for TLS.
    pub url: Secret,
    /// Prefix of every key, from [`key_namespace`]: derived from a hash of
    /// the API key, so containers with the same key share one budget and the
    /// key itself never reaches Redis.
    pub namespace: String,
    /// Containers expected to share the key. While Redis is unreachable,
    /// each container enforces this fraction of the key's limits.
    pub fallback_containers: u32,
    pub connect_timeout: Duration,
    pub command_timeout: Duration,
    pub sync_interval: Duration,
    pub reconnect_interval: Duration,
}

impl SharedQuotaSettings {
    /// Builds settings with the default timeouts and intervals. A
    /// `fallback_containers` of 0 is taken as 1.
    pub fn new(url: Secret, api_key: &Secret, fallback_containers: u32) -> Self {
        SharedQuotaSettings {
            url,
            namespace: key_namespace(api_key.expose()),
            fallback_containers: fallback_containers.max(1),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            command_timeout: DEFAULT_COMMAND_TIMEOUT,
            sync_interval: DEFAULT_SYNC_INTERVAL,
            reconnect_interval: DEFAULT_RECONNECT_INTERVAL,
        }
    }

    /// Returns the URL with its password replaced, for logs.
    pub fn redacted_url(&self) -> String {
        redact_url(self.url.expose())
    }

    /// Removes the URL's password from `message`, such as an error text
    /// from the Redis client.
    pub(crate) fn scrub(&self, message: &str) -> String {
        scrub_password(message, self.url.expose())
    }
}

impl fmt::Debug for SharedQuotaSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedQuotaSettings")
            .field("url", &self.redacted_url())
            .field("namespace", &self.namespace)
            .field("fallback_containers", &self.fallback_containers)
            .field("connect_timeout", &self.connect_timeout)
            .field("command_timeout", &self.command_timeout)
            .field("sync_interval", &self.sync_interval)
            .field("reconnect_interval", &self.reconnect_interval)
            .finish()
    }
}

/// Returns the key prefix for an API key: `intezer-dynamic:{<hex>}`, where
/// `<hex>` is the first 16 bytes of the key's SHA-256. The braces make every
/// key of one API key a Redis Cluster hash tag, so they share a slot.
pub fn key_namespace(api_key: &str) -> String {
    let digest = Sha256::digest(api_key.as_bytes());
    format!("intezer-dynamic:{{{}}}", hex::encode(&digest[..16]))
}

/// Returns `url` with the password (in the user-info part or in a `pass` or
/// `password` query parameter) replaced by `***`. A text that does not parse
/// as a URL is replaced as a whole, because its password cannot be located.
pub fn redact_url(url: &str) -> String {
    let Ok(mut parsed) = url::Url::parse(url) else {
        return "<unparsable Redis URL>".to_string();
    };
    if parsed.password().is_some() {
        // Only URLs that cannot have a password reject this.
        let _ = parsed.set_password(Some(REDACTED));
    }
    let has_secret_query = parsed
        .query_pairs()
        .any(|(name, _)| is_password_parameter(&name));
    if has_secret_query {
        let pairs: Vec<(String, String)> = parsed
            .query_pairs()
            .map(|(name, value)| {
                let value = if is_password_parameter(&name) {
                    REDACTED.to_string()
                } else {
                    value.into_owned()
                };
                (name.into_owned(), value)
            })
            .collect();
        parsed.query_pairs_mut().clear().extend_pairs(pairs);
    }
    parsed.to_string()
}

fn is_password_parameter(name: &str) -> bool {
    matches!(name, "pass" | "password")
}

/// Replaces every occurrence of the password of `url`, as written and
/// percent-decoded, in `message`.
fn scrub_password(message: &str, url: &str) -> String {
    let Ok(parsed) = url::Url::parse(url) else {
        return message.to_string();
    };
    let mut passwords: Vec<String> = Vec::new();
    if let Some(password) = parsed.password() {
        passwords.push(password.to_string());
        if let Ok(decoded) = percent_decode(password) {
            passwords.push(decoded);
        }
    }
    for (name, value) in parsed.query_pairs() {
        if is_password_parameter(&name) {
            passwords.push(value.into_owned());
        }
    }
    let mut scrubbed = message.to_string();
    for password in passwords.iter().filter(|password| !password.is_empty()) {
        scrubbed = scrubbed.replace(password.as_str(), REDACTED);
    }
    scrubbed
}

/// Decodes `%XX` escapes, as the user-info part of a URL uses them.
fn percent_decode(text: &str) -> Result<String, std::string::FromUtf8Error> {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let escaped = bytes
            .get(index + 1..index + 3)
            .filter(|_| bytes[index] == b'%')
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) => {
                decoded.push(byte);
                index += 3;
            }
            None => {
                decoded.push(bytes[index]);
                index += 1;
            }
        }
    }
    String::from_utf8(decoded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_replaces_user_info_password() {
        assert_eq!(
            redact_url("redis://quota:s3cr%40t@redis.example:6380/2"),
            "redis://quota:***@redis.example:6380/2"
        );
    }

    #[test]
    fn redact_replaces_password_only_form() {
        assert_eq!(
            redact_url("rediss://:hunter2@10.0.0.5"),
            "rediss://:***@10.0.0.5"
        );
    }

    #[test]
    fn redact_replaces_query_password() {
        let redacted = redact_url("redis+unix:///run/redis.sock?db=1&pass=hunter2");
        assert!(!redacted.contains("hunter2"), "{redacted}");
        assert!(redacted.contains("db=1"), "{redacted}");
    }

    #[test]
    fn redact_keeps_url_without_password() {
        assert_eq!(
            redact_url("redis://redis-volatile:6379/0"),
            "redis://redis-volatile:6379/0"
        );
    }

    #[test]
    fn redact_hides_unparsable_text() {
        assert_eq!(redact_url("not a url hunter2"), "<unparsable Redis URL>");
    }

    #[test]
    fn scrub_removes_encoded_and_decoded_password() {
        let url = "redis://quota:s3cr%40t@redis.example:6380";
        let scrubbed = scrub_password("auth failed for s3cr%40t (s3cr@t)", url);
        assert_eq!(scrubbed, "auth failed for *** (***)");
    }

    #[test]
    fn namespace_hides_api_key() {
        let namespace = key_namespace("0000-my-intezer-key");
        assert!(!namespace.contains("my-intezer-key"), "{namespace}");
        assert!(namespace.starts_with("intezer-dynamic:{"), "{namespace}");
        assert_eq!(namespace.len(), "intezer-dynamic:{}".len() + 32);
    }

    #[test]
    fn namespace_is_stable_per_key() {
        assert_eq!(key_namespace("a"), key_namespace("a"));
        assert_ne!(key_namespace("a"), key_namespace("b"));
    }

    #[test]
    fn debug_shows_redacted_url() {
        let settings = SharedQuotaSettings::new(
            Secret::new("redis://:hunter2@127.0.0.1:6379"),
            &Secret::new("key"),
            3,
        );
        let text = format!("{settings:?}");
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("redis://:***@127.0.0.1:6379"), "{text}");
    }

    #[test]
    fn zero_containers_is_taken_as_one() {
        let settings =
            SharedQuotaSettings::new(Secret::new("redis://127.0.0.1"), &Secret::new("key"), 0);
        assert_eq!(settings.fallback_containers, 1);
    }
}
