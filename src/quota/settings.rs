//! The numbers one quota guard enforces.

use std::time::Duration;

use super::error::QuotaError;

/// Outage-breaker threshold used when a tier or config does not set one.
pub const DEFAULT_OUTAGE_THRESHOLD: u32 = 5;
/// Time an open breaker waits before it lets one probe through, unless set.
pub const DEFAULT_PROBE_INTERVAL: Duration = Duration::from_secs(30);
/// Largest random delay added to a wake-up, so that waiters who wait for the
/// same moment do not send together.
pub const DEFAULT_MAX_JITTER: Duration = Duration::from_millis(50);

/// Limits for one Intezer API key. Build them with [`QuotaSettings::from_tier`]
/// or [`QuotaSettings::resolve`], or fill the fields directly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaSettings {
    /// Sustained request rate; 0 means unlimited.
    pub requests_per_minute: u32,
    /// Requests that may be sent at once after an idle period; at least 1
    /// when `requests_per_minute` is set.
    pub burst: u32,
    /// File scans (hash lookups, uploads, downloads) per UTC day; 0 means
    /// unlimited. The day resets at 00:00 UTC.
    pub file_scans_per_day: u64,
    /// Consecutive transient failures (5xx, transport errors, timeouts) that
    /// open the outage breaker.
    pub outage_threshold: u32,
    /// Time a breaker stays open before it lets one probe through.
    pub probe_interval: Duration,
    /// Largest random delay added when a waiter wakes for a token or at the
    /// end of a pause. The delay never pushes a waiter past its deadline.
    pub max_jitter: Duration,
}

impl Default for QuotaSettings {
    /// No rate or budget limit, with the default breaker settings.
    fn default() -> Self {
        QuotaSettings {
            requests_per_minute: 0,
            burst: 1,
            file_scans_per_day: 0,
            outage_threshold: DEFAULT_OUTAGE_THRESHOLD,
            probe_interval: DEFAULT_PROBE_INTERVAL,
            max_jitter: DEFAULT_MAX_JITTER,
        }
    }
}

impl QuotaSettings {
    /// Checks that every value is in range, naming the first one that is not.
    pub fn validate(&self) -> Result<(), QuotaError> {
        if self.requests_per_minute > 0 && self.burst == 0 {
            return Err(QuotaError::InvalidSettings(format!(
                "requests_burst is 0 with requests_per_minute {}; set requests_burst to at least 1",
                self.requests_per_minute
            )));
        }
        if self.outage_threshold == 0 {
            return Err(QuotaError::InvalidSettings(
                "outage_threshold is 0; set it to at least 1".to_string(),
            ));
        }
        if self.probe_interval.is_zero() {
            return Err(QuotaError::InvalidSettings(
                "probe_interval is 0 s; set it to a positive duration".to_string(),
            ));
        }
        Ok(())
    }

    /// Returns one container's share when `containers` share these limits:
    /// the rate, burst and daily budget divided by `containers`, rounded
    /// down. A limit that is set stays at least 1, so it never turns into
    /// "unlimited". With more containers than the limit, the shares then add
    /// up to more than the whole.
    pub fn share(&self, containers: u32) -> QuotaSettings {
        let containers = containers.max(1);
        let divide = |value: u32| match value {
            0 => 0,
            value => (value / containers).max(1),
        };
        QuotaSettings {
            requests_per_minute: divide(self.requests_per_minute),
            burst: (self.burst / containers).max(1),
            file_scans_per_day: match self.file_scans_per_day {
                0 => 0,
                scans => (scans / u64::from(containers)).max(1),
            },
            ..self.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_settings_are_valid() {
        assert_eq!(QuotaSettings::default().validate(), Ok(()));
    }

    #[test]
    fn zero_burst_with_rate_is_rejected() {
        let settings = QuotaSettings {
            requests_per_minute: 10,
            burst: 0,
            ..QuotaSettings::default()
        };
        let message = settings.validate().unwrap_err().to_string();
        assert!(message.contains("burst is 0"), "{message}");
    }

    #[test]
    fn zero_burst_without_rate_is_accepted() {
        let settings = QuotaSettings {
            requests_per_minute: 0,
            burst: 0,
            ..QuotaSettings::default()
        };
        assert_eq!(settings.validate(), Ok(()));
    }

    #[test]
    fn zero_outage_threshold_is_rejected() {
        let settings = QuotaSettings {
            outage_threshold: 0,
            ..QuotaSettings::default()
        };
        let message = settings.validate().unwrap_err().to_string();
        assert!(message.contains("outage_threshold is 0"), "{message}");
    }

    #[test]
    fn zero_probe_interval_is_rejected() {
        let settings = QuotaSettings {
            probe_interval: Duration::ZERO,
            ..QuotaSettings::default()
        };
        let message = settings.validate().unwrap_err().to_string();
        assert!(message.contains("probe_interval is 0"), "{message}");
    }

    #[test]
    fn share_divides_limits_rounding_down() {
        let key = QuotaSettings {
            requests_per_minute: 120,
            burst: 20,
            file_scans_per_day: 2000,
            ..QuotaSettings::default()
        };
        let share = key.share(8);
        assert_eq!(share.requests_per_minute, 15);
        assert_eq!(share.burst, 2);
        assert_eq!(share.file_scans_per_day, 250);
        assert_eq!(share.outage_threshold, key.outage_threshold);
    }

    #[test]
    fn share_keeps_set_limits_at_least_one() {
        let key = QuotaSettings {
            requests_per_minute: 10,
            burst: 2,
            file_scans_per_day: 10,
            ..QuotaSettings::default()
        };
        let share = key.share(20);
        assert_eq!(share.requests_per_minute, 1);
        assert_eq!(share.burst, 1);
        assert_eq!(share.file_scans_per_day, 1);
    }

    #[test]
    fn share_keeps_unlimited_unlimited() {
        let share = QuotaSettings::default().share(4);
        assert_eq!(share.requests_per_minute, 0);
        assert_eq!(share.file_scans_per_day, 0);
    }
}
