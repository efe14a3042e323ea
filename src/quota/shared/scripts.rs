//! The Lua scripts the shared backend runs in Redis, and their replies.
//!
//! Each script runs atomically, so one container's decision never
//! interleaves with another's. Times are microseconds of Redis's own clock
//! (`TIME`), so the containers' clocks never need to agree, except for the
//! UTC day that names the file-scan counter. Stored times are written with
//! `%.0f`, because Lua's default number format keeps only 14 digits.
//!
//! Keys of one API key, all under its namespace:
//! * `tat`: the GCRA theoretical arrival time of the request rate;
//! * `pause`: the end of a pause after HTTP 429;
//! * `scans:<YYYY-MM-DD>`: file scans counted on that UTC day;
//! * `uploads-closed`: present while Intezer reports the quota used up for
//!   uploads; it expires at the next 00:00 UTC.

use std::time::Duration;

use redis::Script;

/// Seconds a day's file-scan counter is kept: its own day plus one, so a
/// container whose clock is a little behind still finds it.
pub(crate) const SCANS_KEY_TTL_SECS: u64 = 2 * 24 * 60 * 60;

/// Takes one request token and, for a file scan, one unit of today's
/// budget, unless a pause runs or the budget is spent. GCRA: a token is
/// free when `tat + interval - burst * interval <= now`.
///
/// KEYS: tat, pause, scans of today.
/// ARGV: cost (0 free, 1 file scan), interval in µs (0: no rate limit),
/// burst, daily limit (0: none), TTL of the scans key in seconds.
/// Returns `{status, value, used}`: status 0 granted (value: tokens left,
/// -1 without a rate limit), 1 no token (value: µs until one is due),
/// 2 paused (value: µs until the pause ends), 3 budget spent.
const ACQUIRE: &str = r"
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local pause_end = tonumber(redis.call('GET', KEYS[2]) or '0')
if pause_end > now then
  return {2, pause_end - now, 0}
end
local cost = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local burst = tonumber(ARGV[3])
local limit = tonumber(ARGV[4])
local used = tonumber(redis.call('GET', KEYS[3]) or '0')
if cost == 1 and limit > 0 and used >= limit then
  return {3, 0, used}
end
local left = -1
if interval > 0 then
  local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
  if tat < now then
    tat = now
  end
  local new_tat = tat + interval
  local allowed_at = new_tat - burst * interval
  if allowed_at > now then
    return {1, allowed_at - now, used}
  end
  local keep_ms = math.ceil((new_tat - now) / 1000) + 1
  redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', keep_ms)
  left = math.floor((burst * interval - (new_tat - now)) / interval)
end
if cost == 1 then
  used = redis.call('INCR', KEYS[3])
  redis.call('EXPIRE', KEYS[3], ARGV[5])
end
return {0, left, used}
";

/// Reads the shared state without changing it.
///
/// KEYS: tat, pause, scans of today, uploads-closed.
/// ARGV: interval in µs (0: no rate limit), burst.
/// Returns `{pause_left_us, uploads_closed_ms, used, tokens}`:
/// `uploads_closed_ms` is the key's PTTL (negative when absent), `tokens`
/// is -1 without a rate limit.
const SYNC: &str = r"
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local pause_left = 0
local pause_end = tonumber(redis.call('GET', KEYS[2]) or '0')
if pause_end > now then
  pause_left = pause_end - now
end
local used = tonumber(redis.call('GET', KEYS[3]) or '0')
local uploads_closed = redis.call('PTTL', KEYS[4])
local tokens = -1
local interval = tonumber(ARGV[1])
if interval > 0 then
  local burst = tonumber(ARGV[2])
  local ahead = tonumber(redis.call('GET', KEYS[1]) or '0') - now
  if ahead < 0 then
    ahead = 0
  end
  tokens = math.floor((burst * interval - ahead) / interval)
  if tokens < 0 then
    tokens = 0
  end
end
return {pause_left, uploads_closed, used, tokens}
";

/// Extends the shared pause to end `ARGV[1]` µs from now; a pause that
/// already ends later is kept. KEYS: pause. Returns 1 when extended.
const PAUSE: &str = r"
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local length = tonumber(ARGV[1])
local pause_end = now + length
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if current >= pause_end then
  return 0
end
redis.call('SET', KEYS[1], string.format('%.0f', pause_end), 'PX', math.ceil(length / 1000) + 1)
return 1
";

/// Raises a day's counter to at least `ARGV[1]`, then adds `ARGV[2]`.
/// Seeds the count from Intezer's figure, and after a reconnection restores
/// the count a restarted Redis lost plus the scans taken in fallback.
/// KEYS: scans of the day. ARGV: floor, extra, TTL in seconds.
/// Returns the new count.
const RAISE_COUNT: &str = r"
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
local floor = tonumber(ARGV[1])
if floor > current then
  current = floor
end
current = current + tonumber(ARGV[2])
redis.call('SET', KEYS[1], string.format('%.0f', current), 'EX', ARGV[3])
return current
";

/// Gives back one file scan of a day, never going below 0. KEYS: scans of
/// the day. Returns the new count.
const REFUND: &str = r"
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if current > 0 then
  return redis.call('DECR', KEYS[1])
end
return 0
";

/// The scripts, hashed once; `invoke_async` sends `EVALSHA` and loads the
/// script when Redis does not know it (after a restart, for example).
pub(crate) struct Scripts {
    pub(crate) acquire: Script,
    pub(crate) sync: Script,
    pub(crate) pause: Script,
    pub(crate) raise_count: Script,
    pub(crate) refund: Script,
}

impl Scripts {
    pub(crate) fn new() -> Self {
        Scripts {
            acquire: Script::new(ACQUIRE),
            sync: Script::new(SYNC),
            pause: Script::new(PAUSE),
            raise_count: Script::new(RAISE_COUNT),
            refund: Script::new(REFUND),
        }
    }
}

/// Outcome of [`ACQUIRE`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    /// A token was taken, and for a file scan one unit of the budget.
    Granted {
        tokens_left: Option<u32>,
        used_today: u64,
    },
    /// No token is free; the next is due after this wait.
    Wait(Duration),
    /// A pause after HTTP 429 still runs for this long.
    Paused(Duration),
    /// Today's file-scan budget is spent.
    BudgetSpent { used_today: u64 },
}

impl Decision {
    /// Reads the `{status, value, used}` reply of [`ACQUIRE`].
    pub(crate) fn from_reply((status, value, used): (i64, i64, i64)) -> Option<Decision> {
        let used_today = u64::try_from(used).unwrap_or(0);
        let micros = || Duration::from_micros(u64::try_from(value).unwrap_or(0));
        match status {
            0 => Some(Decision::Granted {
                tokens_left: u32::try_from(value).ok(),
                used_today,
            }),
            1 => Some(Decision::Wait(micros())),
            2 => Some(Decision::Paused(micros())),
            3 => Some(Decision::BudgetSpent { used_today }),
            _ => None,
        }
    }
}

/// Reply of [`SYNC`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SyncReply {
    pub(crate) pause_left: Duration,
    /// Time until the upload breaker key expires; `None` when absent.
    pub(crate) uploads_closed_for: Option<Duration>,
    pub(crate) used_today: u64,
    pub(crate) tokens_left: Option<u32>,
}

impl SyncReply {
    pub(crate) fn from_reply((pause, uploads, used, tokens): (i64, i64, i64, i64)) -> Self {
        SyncReply {
            pause_left: Duration::from_micros(u64::try_from(pause).unwrap_or(0)),
            // PTTL: -2 for a missing key, -1 for a key without expiry, which
            // this service never writes.
            uploads_closed_for: u64::try_from(uploads).ok().map(Duration::from_millis),
            used_today: u64::try_from(used).unwrap_or(0),
            tokens_left: u32::try_from(tokens).ok(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn granted_reply_reads_tokens_and_count() {
        assert_eq!(
            Decision::from_reply((0, 3, 7)),
            Some(Decision::Granted {
                tokens_left: Some(3),
                used_today: 7
            })
        );
    }

    #[test]
    fn granted_without_rate_limit_has_no_token_count() {
        assert_eq!(
            Decision::from_reply((0, -1, 0)),
            Some(Decision::Granted {
                tokens_left: None,
                used_today: 0
            })
        );
    }

    #[test]
    fn wait_and_pause_replies_are_microseconds() {
        assert_eq!(
            Decision::from_reply((1, 1_500_000, 0)),
            Some(Decision::Wait(Duration::from_millis(1500)))
        );
        assert_eq!(
            Decision::from_reply((2, 250, 0)),
            Some(Decision::Paused(Duration::from_micros(250)))
        );
    }

    #[test]
    fn unknown_status_is_rejected() {
        assert_eq!(Decision::from_reply((9, 0, 0)), None);
    }

    #[test]
    fn sync_reply_reads_missing_upload_key() {
        let reply = SyncReply::from_reply((0, -2, 4, -1));
        assert_eq!(reply.uploads_closed_for, None);
        assert_eq!(reply.used_today, 4);
        assert_eq!(reply.tokens_left, None);
    }
}
