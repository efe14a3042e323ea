//! Tier presets from `config/quota-tiers.yml`, embedded at build time.

use std::sync::OnceLock;
use std::time::Duration;

use serde::Deserialize;

use super::error::QuotaError;
use super::settings::{QuotaSettings, DEFAULT_OUTAGE_THRESHOLD, DEFAULT_PROBE_INTERVAL};

/// The preset file, embedded so that a deployed binary needs no extra file.
pub const TIER_PRESETS_YAML: &str = include_str!("../../config/quota-tiers.yml");

/// The tier that has no preset and takes every number from explicit keys.
pub const CUSTOM_TIER: &str = "custom";

/// One tier's numbers as written in the preset file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct TierPreset {
    requests_per_minute: u32,
    burst: u32,
    file_scans_per_day: u64,
    outage_threshold: Option<u32>,
    probe_interval_secs: Option<u64>,
}

/// Tiers in file order; `None` marks a tier without a preset (`custom`).
type TierTable = Vec<(String, Option<TierPreset>)>;

/// Explicit values that replace a tier's numbers, as read from the service
/// configuration. `None` keeps the tier's value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QuotaOverrides {
    pub requests_per_minute: Option<u32>,
    pub burst: Option<u32>,
    pub file_scans_per_day: Option<u64>,
    pub outage_threshold: Option<u32>,
    pub probe_interval: Option<Duration>,
}

impl QuotaSettings {
    /// Returns the preset of `tier` from `config/quota-tiers.yml`.
    ///
    /// Fails with [`QuotaError::UnknownTier`] for a name that is not in the
    /// file, and with [`QuotaError::InvalidSettings`] for `custom`, which has
    /// no preset.
    pub fn from_tier(tier: &str) -> Result<QuotaSettings, QuotaError> {
        QuotaSettings::resolve(tier, &QuotaOverrides::default())
    }

    /// Returns the preset of `tier` with `overrides` applied. The `custom`
    /// tier needs `requests_per_minute`, `burst` and `file_scans_per_day` in
    /// `overrides`, and the error names any that are missing.
    pub fn resolve(tier: &str, overrides: &QuotaOverrides) -> Result<QuotaSettings, QuotaError> {
        let table = tier_table()?;
        let Some((_, preset)) = table.iter().find(|(name, _)| name == tier) else {
            return Err(QuotaError::UnknownTier {
                tier: tier.to_string(),
                known: known_tiers(table),
            });
        };

        let mut settings = match preset {
            Some(preset) => preset_settings(preset),
            None => custom_base(tier, overrides)?,
        };
        apply_overrides(&mut settings, overrides);
        settings.validate()?;
        Ok(settings)
    }

    /// Returns the tier names in file order.
    pub fn known_tiers() -> Result<Vec<String>, QuotaError> {
        Ok(tier_table()?.iter().map(|(name, _)| name.clone()).collect())
    }
}

/// Parses the embedded file once.
fn tier_table() -> Result<&'static TierTable, QuotaError> {
    static TABLE: OnceLock<Result<TierTable, String>> = OnceLock::new();
    TABLE
        .get_or_init(|| parse_tiers(TIER_PRESETS_YAML))
        .as_ref()
        .map_err(|err| QuotaError::InvalidSettings(err.clone()))
}

/// Parses a preset file into tiers, keeping the file's order.
fn parse_tiers(text: &str) -> Result<TierTable, String> {
    let mapping: serde_yaml::Mapping =
        serde_yaml::from_str(text).map_err(|err| format!("invalid quota tier file: {err}"))?;
    let mut table = Vec::with_capacity(mapping.len());
    for (key, value) in mapping {
        let Some(name) = key.as_str() else {
            return Err(format!(
                "invalid quota tier file: tier name {key:?} is not a string"
            ));
        };
        let preset: Option<TierPreset> = serde_yaml::from_value(value)
            .map_err(|err| format!("invalid quota tier {name:?}: {err}"))?;
        table.push((name.to_string(), preset));
    }
    Ok(table)
}

fn known_tiers(table: &TierTable) -> String {
    let names: Vec<&str> = table.iter().map(|(name, _)| name.as_str()).collect();
    names.join(", ")
}

fn preset_settings(preset: &TierPreset) -> QuotaSettings {
    QuotaSettings {
        requests_per_minute: preset.requests_per_minute,
        burst: preset.burst,
        file_scans_per_day: preset.file_scans_per_day,
        outage_threshold: preset.outage_threshold.unwrap_or(DEFAULT_OUTAGE_THRESHOLD),
        probe_interval: preset
            .probe_interval_secs
            .map(Duration::from_secs)
            .unwrap_or(DEFAULT_PROBE_INTERVAL),
        ..QuotaSettings::default()
    }
}

/// Starts a tier without a preset, which only works when the overrides set
/// every rate and budget number.
fn custom_base(tier: &str, overrides: &QuotaOverrides) -> Result<QuotaSettings, QuotaError> {
    let mut missing = Vec::new();
    if overrides.requests_per_minute.is_none() {
        missing.push("requests_per_minute");
    }
    if overrides.burst.is_none() {
        missing.push("burst");
    }
    if overrides.file_scans_per_day.is_none() {
        missing.push("file_scans_per_day");
    }
    if !missing.is_empty() {
        return Err(QuotaError::InvalidSettings(format!(
            "tier {tier:?} has no preset; set {} explicitly",
            missing.join(", ")
        )));
    }
    Ok(QuotaSettings::default())
}

fn apply_overrides(settings: &mut QuotaSettings, overrides: &QuotaOverrides) {
    if let Some(rate) = overrides.requests_per_minute {
        settings.requests_per_minute = rate;
    }
    if let Some(burst) = overrides.burst {
        settings.burst = burst;
    }
    if let Some(budget) = overrides.file_scans_per_day {
        settings.file_scans_per_day = budget;
    }
    if let Some(threshold) = overrides.outage_threshold {
        settings.outage_threshold = threshold;
    }
    if let Some(interval) = overrides.probe_interval {
        settings.probe_interval = interval;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preset_file_parses() {
        assert!(parse_tiers(TIER_PRESETS_YAML).is_ok());
    }

    #[test]
    fn preset_file_lists_tiers_in_order() {
        let names = QuotaSettings::known_tiers().unwrap();
        assert_eq!(
            names,
            [
                "community",
                "starter",
                "business",
                "enterprise",
                "on_premise",
                "custom"
            ]
        );
    }

    #[test]
    fn every_preset_is_valid() {
        for name in QuotaSettings::known_tiers().unwrap() {
            if name == CUSTOM_TIER {
                continue;
            }
            assert!(QuotaSettings::from_tier(&name).is_ok(), "tier {name}");
        }
    }

    #[test]
    fn community_preset_loads() {
        let settings = QuotaSettings::from_tier("community").unwrap();
        assert_eq!(settings.requests_per_minute, 10);
        assert_eq!(settings.burst, 2);
        assert_eq!(settings.file_scans_per_day, 10);
        assert_eq!(settings.outage_threshold, DEFAULT_OUTAGE_THRESHOLD);
        assert_eq!(settings.probe_interval, DEFAULT_PROBE_INTERVAL);
    }

    #[test]
    fn on_premise_preset_is_unlimited() {
        let settings = QuotaSettings::from_tier("on_premise").unwrap();
        assert_eq!(settings.requests_per_minute, 0);
        assert_eq!(settings.file_scans_per_day, 0);
    }

    #[test]
    fn unknown_tier_names_known_tiers() {
        let err = QuotaSettings::from_tier("platinum").unwrap_err();
        assert_eq!(
            err,
            QuotaError::UnknownTier {
                tier: "platinum".to_string(),
                known: "community, starter, business, enterprise, on_premise, custom".to_string(),
            }
        );
    }

    #[test]
    fn custom_tier_without_values_names_missing_keys() {
        let message = QuotaSettings::from_tier(CUSTOM_TIER)
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("requests_per_minute, burst, file_scans_per_day"),
            "{message}"
        );
    }

    #[test]
    fn custom_tier_takes_explicit_values() {
        let overrides = QuotaOverrides {
            requests_per_minute: Some(7),
            burst: Some(3),
            file_scans_per_day: Some(42),
            ..QuotaOverrides::default()
        };
        let settings = QuotaSettings::resolve(CUSTOM_TIER, &overrides).unwrap();
        assert_eq!(settings.requests_per_minute, 7);
        assert_eq!(settings.burst, 3);
        assert_eq!(settings.file_scans_per_day, 42);
    }

    #[test]
    fn override_replaces_preset_value() {
        let overrides = QuotaOverrides {
            file_scans_per_day: Some(5),
            ..QuotaOverrides::default()
        };
        let settings = QuotaSettings::resolve("enterprise", &overrides).unwrap();
        assert_eq!(settings.file_scans_per_day, 5);
        assert_eq!(settings.requests_per_minute, 120);
    }

    #[test]
    fn invalid_override_is_rejected() {
        let overrides = QuotaOverrides {
            burst: Some(0),
            ..QuotaOverrides::default()
        };
        let err = QuotaSettings::resolve("business", &overrides).unwrap_err();
        assert!(matches!(err, QuotaError::InvalidSettings(_)), "{err:?}");
    }

    #[test]
    fn malformed_preset_is_reported() {
        let err = parse_tiers("community:\n  requests_per_minute: ten\n").unwrap_err();
        assert!(err.contains("community"), "{err}");
    }
}
