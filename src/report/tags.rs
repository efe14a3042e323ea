//! Tag validation with Assemblyline's own Rust tag model, and the one
//! function every section uses to add a tag.

use assemblyline_models::datastore::tagging::load_tags_from_object;
use serde_json::{json, Map, Value};

use super::safelist::Safelist;
use crate::assemblyline::Section;

/// Whether AL would accept `value` for the tag `name` (for example an IP for
/// `network.dynamic.ip`). Checked with the `assemblyline-models` crate, the
/// model AL's Rust service server validates tags with.
pub fn is_valid_tag(name: &str, value: &str) -> bool {
    if value.trim().is_empty() {
        return false;
    }
    let mut tags = Map::new();
    tags.insert(name.to_string(), json!([Value::String(value.to_string())]));
    let (_, rejected) = load_tags_from_object(tags);
    rejected.is_empty()
}

/// Adds a tag to `section` when AL would accept it and the safelist does
/// not list it. Returns whether the tag was added. An invalid value is
/// dropped with a debug log, so the server never rejects it.
pub fn add_tag(section: &mut Section, name: &str, value: &str, safelist: &Safelist) -> bool {
    if safelist.is_safelisted(name, value) {
        tracing::debug!(tag = name, value, "tag value is safelisted");
        return false;
    }
    if !is_valid_tag(name, value) {
        tracing::debug!(tag = name, value, "dropped invalid tag value");
        return false;
    }
    section.add_tag(name, value);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_tags_need_an_ip() {
        assert!(is_valid_tag("network.dynamic.ip", "192.0.2.10"));
        assert!(is_valid_tag("network.dynamic.ip", "2001:db8::1"));
        assert!(!is_valid_tag("network.dynamic.ip", "not an ip"));
        assert!(!is_valid_tag("network.dynamic.ip", "999.1.1.1"));
    }

    #[test]
    fn domain_tags_need_a_known_tld() {
        assert!(is_valid_tag("network.dynamic.domain", "c2.example.net"));
        assert!(!is_valid_tag("network.dynamic.domain", "nodot"));
        assert!(!is_valid_tag("network.dynamic.domain", "bad domain.com"));
    }

    #[test]
    fn unknown_tag_name_is_invalid() {
        assert!(!is_valid_tag("network.dynamic.nothing", "x"));
        assert!(!is_valid_tag("attribution.implant", ""));
        assert!(is_valid_tag("attribution.implant", "ExampleRAT"));
    }
}
