//! Faults the simulators inject into their responses, so tests can check
//! that the service answers every task whatever the network and the
//! servers do.
//!
//! A [`FaultPlan`] is a list of [`FaultRule`]s, each written as
//! `TARGET=FAULT[,first=N|,rate=P]`: `TARGET` is an endpoint name of the
//! simulator (or `*` for every endpoint), `FAULT` one of the kinds of
//! [`Fault`], and the trigger says which matching requests get it (every
//! one by default, the first `N`, or each with probability `P` drawn from a
//! seeded generator). The first rule that fires for a request decides its
//! fault.
//!
//! Faults of the [`Stage::Before`] kind replace the response before the
//! simulator's state sees the request, as a failing proxy in front of a
//! server would, so a retried request is never counted twice. The others
//! ([`Stage::After`]) alter the response the simulator built.

use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::body::SizedStream;
use actix_web::http::{header, StatusCode};
use actix_web::HttpResponse;
use bytes::Bytes;
use futures_util::stream;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use serde_json::json;

/// Time a hung request waits before the simulator gives up on it; the
/// server stopping ends it sooner.
const HANG_FOR: Duration = Duration::from_secs(3600);

/// Default time over which `slow-body` spreads a response body.
const DEFAULT_SLOW_BODY: Duration = Duration::from_secs(3);

/// Pieces a `slow-body` response is cut into.
const SLOW_BODY_PIECES: u64 = 10;

/// Default size of a `huge-body` response: more than the service's 64 MiB
/// response cap.
const DEFAULT_HUGE_BODY_MIB: u64 = 80;

/// Size of each piece of a generated `huge-body` response.
const HUGE_BODY_PIECE: usize = 64 * 1024;

/// One way to break a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// `status:CODE`, or the bare code: that HTTP status with a JSON error
    /// body; 429 carries `Retry-After: 1`.
    Status(u16),
    /// `disconnect`: the status line and headers, then the connection closes
    /// before any body byte.
    Disconnect,
    /// `hang`: the request is read and never answered.
    Hang,
    /// `malformed-json`: HTTP 200 with a body that is not valid JSON.
    MalformedJson,
    /// `huge-body[:MIB]`: HTTP 200 with a JSON body of that many MiB
    /// (default 80).
    HugeBody { mib: u64 },
    /// `slow-body[:MS]`: the real response, its body spread over that many
    /// milliseconds (default 3000).
    SlowBody { over: Duration },
    /// `truncated`: the real response with its full `Content-Length`, but the
    /// connection closes after half the body.
    Truncated,
    /// `wrong-bytes`: the real response with its first body byte flipped, so
    /// a downloaded file's SHA-256 no longer matches.
    WrongBytes,
    /// `stuck`: HTTP 202 `{"status": "in_progress"}` in place of the real
    /// response, as an analysis that never finishes.
    Stuck,
    /// `expire-tokens`: HTTP 401, and the Intezer simulator invalidates every
    /// access token it has issued, as when they all expire at once. Other
    /// requests with an old token then get 401 too where the simulator
    /// checks tokens. The service-server simulator has no tokens and
    /// rejects this fault.
    ExpireTokens,
}

/// When a fault acts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// In place of the simulator's handling: the state never receives the request.
    Before,
    /// On the response the simulator built.
    After,
}

impl Fault {
    pub fn stage(&self) -> Stage {
        match self {
            Fault::Status(_)
            | Fault::Disconnect
            | Fault::Hang
            | Fault::MalformedJson
            | Fault::HugeBody { .. }
            | Fault::ExpireTokens => Stage::Before,
            Fault::SlowBody { .. } | Fault::Truncated | Fault::WrongBytes | Fault::Stuck => {
                Stage::After
            }
        }
    }

    /// Returns the status recorded for a request that got this fault in
    /// place of a response; 0 when no status line is sent.
    pub fn recorded_status(&self) -> u16 {
        match self {
            Fault::Status(code) => *code,
            Fault::ExpireTokens => 401,
            Fault::Hang => 0,
            Fault::Stuck => 202,
            _ => 200,
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Status(code) => write!(f, "status:{code}"),
            Fault::Disconnect => f.write_str("disconnect"),
            Fault::Hang => f.write_str("hang"),
            Fault::MalformedJson => f.write_str("malformed-json"),
            Fault::HugeBody { mib } => write!(f, "huge-body:{mib}"),
            Fault::SlowBody { over } => write!(f, "slow-body:{}", over.as_millis()),
            Fault::Truncated => f.write_str("truncated"),
            Fault::WrongBytes => f.write_str("wrong-bytes"),
            Fault::Stuck => f.write_str("stuck"),
            Fault::ExpireTokens => f.write_str("expire-tokens"),
        }
    }
}

/// Selection of the matching requests a rule breaks.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Trigger {
    Always,
    /// The first N matching requests.
    First(u32),
    /// Each matching request with this probability, from 0 to 1.
    Rate(f64),
}

/// One `TARGET=FAULT[,first=N|,rate=P]` rule.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultRule {
    /// Endpoint name, or `*` for every endpoint.
    pub target: String,
    pub fault: Fault,
    pub trigger: Trigger,
}

/// A fault rule that cannot be read, with the text and the expected form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid fault rule {rule:?}: {reason}; write TARGET=FAULT[,first=N|,rate=P] with FAULT one of \
     status:CODE, disconnect, hang, malformed-json, huge-body[:MIB], slow-body[:MS], truncated, \
     wrong-bytes, stuck, expire-tokens"
)]
pub struct FaultRuleError {
    pub rule: String,
    pub reason: String,
}

impl FromStr for FaultRule {
    type Err = FaultRuleError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = |reason: String| FaultRuleError {
            rule: text.to_string(),
            reason,
        };
        let (target, rest) = text
            .split_once('=')
            .ok_or_else(|| invalid("no '=' between target and fault".to_string()))?;
        let target = target.trim();
        if target.is_empty() {
            return Err(invalid("the target is empty".to_string()));
        }
        let mut parts = rest.split(',');
        let fault = parse_fault(parts.next().unwrap_or_default().trim()).map_err(invalid)?;
        let trigger = match parts.next().map(str::trim) {
            None => Trigger::Always,
            Some(option) => parse_trigger(option).map_err(invalid)?,
        };
        if let Some(extra) = parts.next() {
            return Err(invalid(format!("unexpected {extra:?} after the trigger")));
        }
        Ok(FaultRule {
            target: target.to_string(),
            fault,
            trigger,
        })
    }
}

fn parse_fault(text: &str) -> Result<Fault, String> {
    let (kind, argument) = match text.split_once(':') {
        Some((kind, argument)) => (kind, Some(argument.trim())),
        None => (text, None),
    };
    let number = |what: &str| -> Result<u64, String> {
        let argument = argument.ok_or_else(|| format!("{kind} needs {what}"))?;
        argument
            .parse::<u64>()
            .map_err(|_| format!("{argument:?} is not a whole number of {what}"))
    };
    let fault = match kind {
        "status" => Fault::Status(status_code(&number("an HTTP status")?.to_string())?),
        code if code.chars().all(|c| c.is_ascii_digit()) && !code.is_empty() => {
            Fault::Status(status_code(code)?)
        }
        "disconnect" => Fault::Disconnect,
        "hang" => Fault::Hang,
        "malformed-json" => Fault::MalformedJson,
        "huge-body" => Fault::HugeBody {
            mib: match argument {
                Some(_) => number("MiB")?,
                None => DEFAULT_HUGE_BODY_MIB,
            },
        },
        "slow-body" => Fault::SlowBody {
            over: match argument {
                Some(_) => Duration::from_millis(number("milliseconds")?),
                None => DEFAULT_SLOW_BODY,
            },
        },
        "truncated" => Fault::Truncated,
        "wrong-bytes" => Fault::WrongBytes,
        "stuck" => Fault::Stuck,
        "expire-tokens" => Fault::ExpireTokens,
        other => return Err(format!("unknown fault {other:?}")),
    };
    Ok(fault)
}

fn status_code(text: &str) -> Result<u16, String> {
    match text.parse::<u16>() {
        Ok(code) if (400..=599).contains(&code) => Ok(code),
        _ => Err(format!("{text:?} is not an HTTP error status (400 to 599)")),
    }
}

fn parse_trigger(text: &str) -> Result<Trigger, String> {
    if let Some(count) = text.strip_prefix("first=") {
        return count
            .parse::<u32>()
            .map(Trigger::First)
            .map_err(|_| format!("first={count:?} is not a whole number"));
    }
    if let Some(rate) = text.strip_prefix("rate=") {
        return match rate.parse::<f64>() {
            Ok(p) if (0.0..=1.0).contains(&p) => Ok(Trigger::Rate(p)),
            _ => Err(format!("rate={rate:?} is not a probability from 0 to 1")),
        };
    }
    Err(format!("unknown trigger {text:?}"))
}

/// One fault a simulator injected, for reports and assertions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InjectedFault {
    /// Endpoint name of the request.
    pub target: String,
    /// The fault, as written in a rule.
    pub fault: String,
}

/// The faults one simulator injects. Clones share their counters and
/// their record of injected faults.
#[derive(Clone, Default)]
pub struct FaultPlan {
    inner: Option<Arc<PlanInner>>,
}

struct PlanInner {
    rules: Vec<FaultRule>,
    state: Mutex<PlanState>,
}

struct PlanState {
    /// Matching requests seen so far, per rule.
    matched: Vec<u32>,
    rng: StdRng,
    injected: Vec<InjectedFault>,
}

impl fmt::Debug for FaultPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.rules()).finish()
    }
}

impl FaultPlan {
    /// Builds a plan; `seed` makes the `rate=` draws repeatable.
    pub fn new(rules: Vec<FaultRule>, seed: u64) -> FaultPlan {
        if rules.is_empty() {
            return FaultPlan::default();
        }
        let matched = vec![0; rules.len()];
        FaultPlan {
            inner: Some(Arc::new(PlanInner {
                rules,
                state: Mutex::new(PlanState {
                    matched,
                    rng: StdRng::seed_from_u64(seed),
                    injected: Vec::new(),
                }),
            })),
        }
    }

    /// Parses each `TARGET=FAULT[,trigger]` text into a plan.
    pub fn parse<S: AsRef<str>>(rules: &[S], seed: u64) -> Result<FaultPlan, FaultRuleError> {
        let rules = rules
            .iter()
            .map(|rule| rule.as_ref().parse())
            .collect::<Result<Vec<FaultRule>, _>>()?;
        Ok(FaultPlan::new(rules, seed))
    }

    pub fn rules(&self) -> &[FaultRule] {
        self.inner.as_ref().map_or(&[], |inner| &inner.rules)
    }

    /// Decides the fault of one request to `target` at `stage`, if any, and
    /// records it.
    pub fn pick(&self, target: &str, stage: Stage) -> Option<Fault> {
        let inner = self.inner.as_ref()?;
        let mut state = inner.state.lock().unwrap_or_else(|e| e.into_inner());
        for (index, rule) in inner.rules.iter().enumerate() {
            if rule.fault.stage() != stage || (rule.target != "*" && rule.target != target) {
                continue;
            }
            state.matched[index] += 1;
            let fires = match rule.trigger {
                Trigger::Always => true,
                Trigger::First(count) => state.matched[index] <= count,
                Trigger::Rate(probability) => state.rng.random_bool(probability),
            };
            if fires {
                state.injected.push(InjectedFault {
                    target: target.to_string(),
                    fault: rule.fault.to_string(),
                });
                return Some(rule.fault.clone());
            }
        }
        None
    }

    /// Returns every fault injected so far, in order.
    pub fn injected(&self) -> Vec<InjectedFault> {
        self.inner.as_ref().map_or_else(Vec::new, |inner| {
            inner
                .state
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .injected
                .clone()
        })
    }
}

/// Waits as a hung server would, until the server stops or an hour passes.
pub async fn hang() {
    tokio::time::sleep(HANG_FOR).await;
}

/// Builds the response of a [`Stage::Before`] fault. A `hang` is waited out
/// by the caller first, with [`hang`].
pub fn replacement_response(fault: &Fault) -> HttpResponse {
    match fault {
        Fault::Status(code) => error_response(*code),
        Fault::ExpireTokens => error_response(fault.recorded_status()),
        Fault::Disconnect => HttpResponse::Ok()
            .content_type("application/json")
            .streaming(stream::once(async {
                Err::<Bytes, _>(std::io::Error::other("injected disconnect"))
            })),
        Fault::MalformedJson => HttpResponse::Ok()
            .content_type("application/json")
            .body("{\"result\": {\"analysis_id\": "),
        Fault::HugeBody { mib } => huge_json(mib * 1024 * 1024),
        Fault::Hang => HttpResponse::GatewayTimeout().finish(),
        after => altered_response(after, StatusCode::OK, None, Bytes::new()),
    }
}

/// Builds an injected error response with status `code`; a 429 carries
/// `Retry-After: 1`.
fn error_response(code: u16) -> HttpResponse {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let message = format!("injected fault: HTTP {code}");
    let mut builder = HttpResponse::build(status);
    if code == 429 {
        builder.insert_header((header::RETRY_AFTER, "1"));
    }
    // Both simulated APIs' error shapes in one body.
    builder.json(json!({
        "error": message,
        "api_response": null,
        "api_error_message": message,
        "api_status_code": code,
    }))
}

/// Builds the response of a [`Stage::After`] fault from the response the
/// simulator built: its status, content type and body.
pub fn altered_response(
    fault: &Fault,
    status: StatusCode,
    content_type: Option<header::HeaderValue>,
    body: Bytes,
) -> HttpResponse {
    let mut builder = HttpResponse::build(status);
    if let Some(content_type) = content_type {
        builder.insert_header((header::CONTENT_TYPE, content_type));
    }
    let length = body.len() as u64;
    match fault {
        Fault::SlowBody { over } => {
            let piece = (body.len() as u64).div_ceil(SLOW_BODY_PIECES).max(1) as usize;
            let pause = *over / SLOW_BODY_PIECES as u32;
            let pieces: Vec<Bytes> = (0..body.len())
                .step_by(piece)
                .map(|start| body.slice(start..(start + piece).min(body.len())))
                .collect();
            let trickle = stream::unfold(pieces.into_iter(), move |mut rest| async move {
                let next = rest.next()?;
                tokio::time::sleep(pause).await;
                Some((Ok::<Bytes, std::io::Error>(next), rest))
            });
            builder.body(SizedStream::new(length, trickle))
        }
        Fault::Truncated => {
            let half = body.slice(..body.len() / 2);
            let pieces =
                stream::iter([Ok(half), Err(std::io::Error::other("injected truncation"))]);
            builder.body(SizedStream::new(length.max(1), pieces))
        }
        Fault::WrongBytes => {
            let mut damaged = body.to_vec();
            match damaged.first_mut() {
                Some(first) => *first ^= 0xff,
                None => damaged.push(0),
            }
            builder.body(damaged)
        }
        Fault::Stuck => HttpResponse::Accepted().json(json!({ "status": "in_progress" })),
        before => replacement_response(before),
    }
}

/// A JSON body `{"result": "xxx…"}` of `bytes` bytes, generated piece by
/// piece so the simulator never keeps it whole in memory.
fn huge_json(bytes: u64) -> HttpResponse {
    const HEAD: &[u8] = b"{\"result\": \"";
    const TAIL: &[u8] = b"\"}";
    let fill = bytes.saturating_sub((HEAD.len() + TAIL.len()) as u64);
    let filler = Bytes::from(vec![b'x'; HUGE_BODY_PIECE]);
    let full_pieces = fill / HUGE_BODY_PIECE as u64;
    let last = (fill % HUGE_BODY_PIECE as u64) as usize;
    let middle = (0..full_pieces)
        .map(move |_| filler.clone())
        .chain(std::iter::once(Bytes::from(vec![b'x'; last])));
    let pieces = std::iter::once(Bytes::from_static(HEAD))
        .chain(middle)
        .chain(std::iter::once(Bytes::from_static(TAIL)))
        .map(Ok::<Bytes, std::io::Error>);
    let length = HEAD.len() as u64 + fill + TAIL.len() as u64;
    HttpResponse::Ok()
        .content_type("application/json")
        .body(SizedStream::new(length, stream::iter(pieces)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_forms_parse() {
        let rule: FaultRule = "analyze=503,rate=0.25".parse().unwrap();
        assert_eq!(rule.target, "analyze");
        assert_eq!(rule.fault, Fault::Status(503));
        assert_eq!(rule.trigger, Trigger::Rate(0.25));

        let rule: FaultRule = "*=slow-body:500,first=2".parse().unwrap();
        assert_eq!(rule.target, "*");
        assert_eq!(
            rule.fault,
            Fault::SlowBody {
                over: Duration::from_millis(500)
            }
        );
        assert_eq!(rule.trigger, Trigger::First(2));

        let rule: FaultRule = "post-task=status:400".parse().unwrap();
        assert_eq!(rule.fault, Fault::Status(400));
        assert_eq!(rule.trigger, Trigger::Always);

        let rule: FaultRule = "files.download=huge-body".parse().unwrap();
        assert_eq!(rule.fault, Fault::HugeBody { mib: 80 });

        let rule: FaultRule = "analyses.status=expire-tokens,first=1".parse().unwrap();
        assert_eq!(rule.fault, Fault::ExpireTokens);
        assert_eq!(rule.fault.stage(), Stage::Before);
        assert_eq!(rule.fault.to_string(), "expire-tokens");
    }

    #[test]
    fn invalid_rules_name_the_problem() {
        let cases = [
            ("analyze", "no '='"),
            ("=hang", "target is empty"),
            ("analyze=explode", "unknown fault"),
            ("analyze=200", "not an HTTP error status"),
            ("analyze=hang,rate=2", "not a probability"),
            ("analyze=hang,often", "unknown trigger"),
            ("analyze=hang,first=1,rate=0.5", "unexpected"),
        ];
        for (text, reason) in cases {
            let err = text.parse::<FaultRule>().unwrap_err();
            assert!(err.to_string().contains(reason), "{text}: {err}");
            assert!(err.to_string().contains(text), "{text}: {err}");
        }
    }

    #[test]
    fn first_trigger_fires_n_times() {
        let plan = FaultPlan::parse(&["analyze=503,first=2"], 1).unwrap();
        let fired: Vec<bool> = (0..4)
            .map(|_| plan.pick("analyze", Stage::Before).is_some())
            .collect();
        assert_eq!(fired, [true, true, false, false]);
        assert_eq!(plan.injected().len(), 2);
    }

    #[test]
    fn rules_match_target_and_stage() {
        let plan = FaultPlan::parse(&["analyze=503", "*=truncated"], 1).unwrap();
        assert_eq!(plan.pick("files.download", Stage::Before), None);
        assert_eq!(
            plan.pick("analyze", Stage::Before),
            Some(Fault::Status(503))
        );
        assert_eq!(
            plan.pick("files.download", Stage::After),
            Some(Fault::Truncated)
        );
    }

    #[test]
    fn rate_draws_repeat_with_seed() {
        let draws = |seed| {
            let plan = FaultPlan::parse(&["*=hang,rate=0.3"], seed).unwrap();
            (0..200)
                .map(|_| plan.pick("analyze", Stage::Before).is_some())
                .collect::<Vec<bool>>()
        };
        let first = draws(7);
        assert_eq!(first, draws(7));
        let fired = first.iter().filter(|fired| **fired).count();
        assert!((30..=90).contains(&fired), "{fired} of 200 at rate 0.3");
    }

    #[test]
    fn empty_plan_injects_nothing() {
        let plan = FaultPlan::default();
        assert_eq!(plan.pick("analyze", Stage::Before), None);
        assert!(plan.injected().is_empty());
    }
}
