//! The daily file-scan budget, reset at 00:00 UTC.

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};

/// File scans used on one UTC day against a limit (0 = unlimited).
#[derive(Debug)]
pub(crate) struct DailyBudget {
    limit: u64,
    day: NaiveDate,
    used: u64,
}

impl DailyBudget {
    pub(crate) fn new(limit: u64, now: DateTime<Utc>) -> Self {
        DailyBudget {
            limit,
            day: now.date_naive(),
            used: 0,
        }
    }

    /// Takes one file scan, or returns the next 00:00 UTC when none is left.
    /// Returns the day the scan was counted on.
    pub(crate) fn take(&mut self, now: DateTime<Utc>) -> Result<NaiveDate, DateTime<Utc>> {
        self.roll_over(now);
        if self.limit > 0 && self.used >= self.limit {
            return Err(next_midnight(now));
        }
        self.used += 1;
        Ok(self.day)
    }

    /// Returns the next 00:00 UTC when the budget is used up.
    pub(crate) fn exhausted_until(&mut self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.roll_over(now);
        (self.limit > 0 && self.used >= self.limit).then(|| next_midnight(now))
    }

    /// Gives back a scan counted on `day`; a scan from an earlier day is
    /// already forgotten by the reset.
    pub(crate) fn refund(&mut self, day: NaiveDate, now: DateTime<Utc>) {
        self.roll_over(now);
        if day == self.day {
            self.used = self.used.saturating_sub(1);
        }
    }

    /// Raises today's count to `used`. The count is never lowered, because
    /// scans still in flight may not show in Intezer's number yet.
    pub(crate) fn seed(&mut self, used: u64, now: DateTime<Utc>) {
        self.roll_over(now);
        self.used = self.used.max(used);
    }

    pub(crate) fn used(&mut self, now: DateTime<Utc>) -> u64 {
        self.roll_over(now);
        self.used
    }

    /// Returns the scans left today, or `None` when unlimited.
    pub(crate) fn remaining(&mut self, now: DateTime<Utc>) -> Option<u64> {
        self.roll_over(now);
        (self.limit > 0).then(|| self.limit.saturating_sub(self.used))
    }

    fn roll_over(&mut self, now: DateTime<Utc>) {
        let today = now.date_naive();
        if today != self.day {
            self.day = today;
            self.used = 0;
        }
    }
}

/// Returns the first 00:00 UTC after `now`.
pub(crate) fn next_midnight(now: DateTime<Utc>) -> DateTime<Utc> {
    let tomorrow = now.date_naive().succ_opt().unwrap_or(NaiveDate::MAX);
    tomorrow.and_time(NaiveTime::MIN).and_utc()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(hour: u32, minute: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 3, 9, hour, minute, 0).unwrap()
    }

    #[test]
    fn next_midnight_is_start_of_next_day() {
        let expected = Utc.with_ymd_and_hms(2024, 3, 10, 0, 0, 0).unwrap();
        assert_eq!(next_midnight(at(23, 59)), expected);
    }

    #[test]
    fn next_midnight_at_midnight_is_a_day_later() {
        let expected = Utc.with_ymd_and_hms(2024, 3, 10, 0, 0, 0).unwrap();
        assert_eq!(next_midnight(at(0, 0)), expected);
    }

    #[test]
    fn budget_rejects_past_limit() {
        let mut budget = DailyBudget::new(2, at(10, 0));
        assert!(budget.take(at(10, 0)).is_ok());
        assert!(budget.take(at(10, 1)).is_ok());
        assert_eq!(budget.take(at(10, 2)), Err(next_midnight(at(10, 2))));
    }

    #[test]
    fn budget_zero_limit_is_unlimited() {
        let mut budget = DailyBudget::new(0, at(10, 0));
        for _ in 0..1000 {
            assert!(budget.take(at(10, 0)).is_ok());
        }
        assert_eq!(budget.remaining(at(10, 0)), None);
    }

    #[test]
    fn budget_refund_from_yesterday_is_ignored() {
        let mut budget = DailyBudget::new(5, at(23, 0));
        let day = budget.take(at(23, 0)).unwrap();
        let tomorrow = at(23, 0) + chrono::Duration::hours(2);
        budget.take(tomorrow).unwrap();
        budget.refund(day, tomorrow);
        assert_eq!(budget.used(tomorrow), 1);
    }

    #[test]
    fn budget_seed_never_lowers_count() {
        let mut budget = DailyBudget::new(5, at(10, 0));
        budget.take(at(10, 0)).unwrap();
        budget.take(at(10, 0)).unwrap();
        budget.seed(1, at(10, 0));
        assert_eq!(budget.used(at(10, 0)), 2);
    }
}
