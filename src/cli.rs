//! Command-line interface.

use std::convert::Infallible;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;

use clap::{Args, Parser, Subcommand, ValueEnum};
use intezer_dynamic::config::Secret;

/// The crate version and the git commit the binary was built from, as
/// `--version` prints them.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("INTEZER_DYNAMIC_GIT_COMMIT"),
    ")"
);

/// Assemblyline 4 service for Intezer Analyze: looks files up by SHA-256,
/// submits unknown ones when allowed, waits for the analysis and posts the
/// verdict, families and indicators as an Assemblyline result.
#[derive(Debug, Parser)]
#[command(name = "intezer-dynamic", version = VERSION, about)]
pub struct Cli {
    /// Log format on standard error.
    #[arg(
        long,
        global = true,
        env = "LOG_FORMAT",
        value_enum,
        default_value_t = LogFormatArg::Text
    )]
    pub log_format: LogFormatArg,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormatArg {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run as an Assemblyline service: register, take tasks from the
    /// service server (SERVICE_API_HOST), answer each with a result or an
    /// error.
    Serve(ServeArgs),
    /// Register the manifest with the service server and exit (same as
    /// `serve --register-only` or REGISTER_ONLY=true).
    Register(ServeArgs),
    /// Run the analysis on local files without Assemblyline and print one
    /// line per file.
    Scan(ScanArgs),
    /// Run one embedded simulator on 127.0.0.1 until interrupted.
    Simulate(SimulateArgs),
    /// Run the whole service against both embedded simulators on real
    /// files and print what each file got.
    Demo(DemoArgs),
    /// Check that the service server responds to GET
    /// SERVICE_API_HOST/healthz/live. Exit 0 when it does, else 1 with the
    /// reason on standard error. The container's liveness probe.
    Healthcheck(HealthcheckArgs),
}

/// One `--set KEY=VALUE` argument as typed, parsed later so that errors
/// name the key. `Debug` hides the value of `api_key`.
#[derive(Clone)]
pub struct SetArg(pub String);

impl FromStr for SetArg {
    type Err = Infallible;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Ok(SetArg(text.to_string()))
    }
}

impl fmt::Debug for SetArg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.split_once('=') {
            Some((key, _)) if key.trim() == "api_key" => write!(f, "\"{key}=<redacted>\""),
            _ => write!(f, "{:?}", self.0),
        }
    }
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Tasks processed at once (at least 1).
    #[arg(long, env = "CONCURRENCY", default_value_t = 16, value_parser = at_least_one)]
    pub concurrency: usize,

    /// Address of the metrics and health endpoints.
    #[arg(long, env = "METRICS_ADDR", default_value = "0.0.0.0:9464")]
    pub metrics_addr: SocketAddr,

    /// Override a service configuration key (a key of the manifest's
    /// `config:`), applied after the configuration AL returns; repeatable.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<SetArg>,

    /// Register and exit.
    #[arg(long)]
    pub register_only: bool,

    /// Manifest to register instead of the embedded service_manifest.yml.
    #[arg(long, value_name = "FILE")]
    pub manifest: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ScanArgs {
    /// Base URL of the Intezer API, ending in /api/.
    #[arg(long, value_name = "URL")]
    pub base_url: Option<String>,

    /// Intezer API key.
    #[arg(long, env = "INTEZER_API_KEY", hide_env_values = true)]
    pub api_key: Option<Secret>,

    /// Use the embedded Intezer simulator on 127.0.0.1 instead of Intezer.
    #[arg(long, conflicts_with_all = ["base_url", "api_key"])]
    pub simulator: bool,

    /// Replay an Intezer scenario file in the simulator; its config and
    /// submission parameters apply, and its sample is scanned when no FILE
    /// is given.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["base_url", "api_key", "simulator"])]
    pub scenario: Option<PathBuf>,

    /// Override a service configuration key; repeatable.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<SetArg>,

    /// Set a submission parameter (dynamic_submit, analysis_id); repeatable.
    #[arg(long = "param", value_name = "KEY=VALUE")]
    pub param: Vec<String>,

    /// Write <sha256>.result.json or <sha256>.error.json for each file here.
    #[arg(long, value_name = "DIR")]
    pub output_dir: Option<PathBuf>,

    /// Files scanned at once (at least 1).
    #[arg(long, default_value_t = 4, value_parser = at_least_one)]
    pub concurrency: usize,

    /// Output per file: `line` (sha256, verdict, score, sections, JSON
    /// path), `tree` (that line, then the sections with heuristics and tags)
    /// or `json` (the result or error JSON). Default: `tree` on a terminal,
    /// else `line`.
    #[arg(long, value_enum)]
    pub format: Option<ScanFormat>,

    /// Files to scan.
    #[arg(value_name = "FILE")]
    pub files: Vec<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ScanFormat {
    Line,
    Tree,
    Json,
}

#[derive(Debug, Args)]
pub struct SimulateArgs {
    #[command(subcommand)]
    pub which: SimulatorKind,
}

#[derive(Debug, Subcommand)]
pub enum SimulatorKind {
    /// The Intezer Analyze API, at http://127.0.0.1:PORT/api/.
    Intezer {
        /// Port on 127.0.0.1; 0 picks a free one.
        #[arg(long, default_value_t = 8085)]
        port: u16,
        /// Scenario file to replay instead of the default verdict mix.
        #[arg(long, value_name = "FILE")]
        scenario: Option<PathBuf>,
        /// Polls an uploaded file's analysis answers "in progress".
        #[arg(long, default_value_t = 2)]
        polls: u32,
        /// Inject a fault, as TARGET=FAULT[,first=N|,rate=P] (see
        /// docs/simulators.md); repeatable.
        #[arg(long = "fault", value_name = "RULE")]
        faults: Vec<String>,
        /// Seed of the `rate=` draws, so a run can be repeated.
        #[arg(long, default_value_t = 1)]
        fault_seed: u64,
    },
    /// The Assemblyline service server, at http://127.0.0.1:PORT.
    ServiceServer {
        /// Port on 127.0.0.1; 0 picks a free one.
        #[arg(long, default_value_t = 5003)]
        port: u16,
        /// Files handed out as tasks, one task each.
        #[arg(long = "file", value_name = "FILE")]
        files: Vec<PathBuf>,
        /// Service configuration returned at registration, as KEY=VALUE;
        /// repeatable.
        #[arg(long = "config", value_name = "KEY=VALUE")]
        config: Vec<String>,
        /// API key the server expects in X-APIKey.
        #[arg(long, default_value = "ThisIsARandomAuthKey...ChangeMe!")]
        api_key: String,
        /// Inject a fault, as TARGET=FAULT[,first=N|,rate=P] (see
        /// docs/simulators.md); repeatable.
        #[arg(long = "fault", value_name = "RULE")]
        faults: Vec<String>,
        /// Seed of the `rate=` draws, so a run can be repeated.
        #[arg(long, default_value_t = 1)]
        fault_seed: u64,
    },
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Address of the metrics and health endpoints.
    #[arg(long, value_name = "ADDR")]
    pub metrics_addr: Option<SocketAddr>,

    /// Seconds to keep serving metrics after the work is done.
    #[arg(long, value_name = "SECONDS", default_value_t = 0)]
    pub linger: u64,

    /// Write each posted result and error as JSON here.
    #[arg(long, value_name = "DIR")]
    pub output_dir: Option<PathBuf>,

    /// Tasks processed at once (at least 1).
    #[arg(long, default_value_t = 8, value_parser = at_least_one)]
    pub concurrency: usize,

    /// Files to analyse; default: this binary and a few programs from
    /// /usr/bin.
    #[arg(value_name = "PATH")]
    pub paths: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct HealthcheckArgs {
    /// Seconds to wait for the response, connection included.
    #[arg(long, value_name = "SECONDS", default_value_t = 5.0, value_parser = positive_seconds)]
    pub timeout: f64,
}

/// Parses a number of seconds that must be above 0.
fn positive_seconds(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(seconds) if seconds.is_finite() && seconds > 0.0 => Ok(seconds),
        _ => Err(format!("{text:?} is not a number of seconds above 0")),
    }
}

/// Parses a count that must be at least 1.
fn at_least_one(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(count) if count >= 1 => Ok(count),
        _ => Err(format!("{text:?} is not a whole number of at least 1")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_args_debug_hides_api_key() {
        let cli = Cli::try_parse_from([
            "intezer-dynamic",
            "scan",
            "--api-key",
            "cli-key-1414",
            "sample.exe",
        ])
        .unwrap();

        let printed = format!("{cli:?}");

        assert!(!printed.contains("cli-key-1414"), "{printed}");
        assert!(printed.contains("<redacted>"), "{printed}");
    }

    #[test]
    fn set_args_debug_hides_api_key() {
        let cli = Cli::try_parse_from([
            "intezer-dynamic",
            "serve",
            "--set",
            "api_key=set-key-1732",
            "--set",
            "private_only=true",
        ])
        .unwrap();

        let printed = format!("{cli:?}");

        assert!(!printed.contains("set-key-1732"), "{printed}");
        assert!(printed.contains("api_key=<redacted>"), "{printed}");
        assert!(printed.contains("private_only=true"), "{printed}");
    }
}
