//! `healthcheck`: the container's liveness probe.
//!
//! It performs the check of AL's Python probe (`python3 -m
//! assemblyline_v4_service.healthz`), which this image does not contain:
//! `GET {SERVICE_API_HOST}/healthz/live`, trusting
//! `SERVICE_SERVER_ROOT_CA_PATH` for HTTPS as `serve` does. Every failure,
//! a bad environment included, exits 1 with one line on standard error,
//! because Docker's HEALTHCHECK reserves status 2.

use std::process::ExitCode;
use std::time::Duration;

use intezer_dynamic::assemblyline::client::{Identity, ServiceServerClient};
use intezer_dynamic::assemblyline::manifest::Manifest;
use intezer_dynamic::config::Environment;

use super::run_system;
use crate::cli::HealthcheckArgs;

pub fn run(args: HealthcheckArgs) -> anyhow::Result<ExitCode> {
    let timeout = Duration::from_secs_f64(args.timeout);
    match check(timeout) {
        Ok(url) => {
            println!("live: {url}");
            Ok(ExitCode::SUCCESS)
        }
        Err(reason) => {
            eprintln!("not live: {}", one_line(&reason));
            Ok(ExitCode::FAILURE)
        }
    }
}

/// Runs the check and returns the URL it reached, or the reason it failed.
fn check(timeout: Duration) -> Result<String, String> {
    let env = Environment::from_process().map_err(|err| err.to_string())?;
    let url = format!(
        "{}/healthz/live",
        without_credentials(&env.service_api_host)
    );
    let manifest = Manifest::embedded(&env.service_tag).map_err(|err| err.to_string())?;
    let identity = Identity {
        service_name: manifest.name,
        service_version: manifest.version,
        tool_version: manifest.tool_version.unwrap_or_default(),
    };
    let client = ServiceServerClient::new(&env, identity).map_err(|err| err.to_string())?;
    match run_system(client.check_live(timeout)) {
        Ok(()) => Ok(url),
        Err(err) => Err(format!("GET {url}: {err}")),
    }
}

/// Returns `url` without a user name or password, so neither is printed.
fn without_credentials(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if !parsed.username().is_empty() || parsed.password().is_some() => {
            let _ = parsed.set_username("");
            let _ = parsed.set_password(None);
            parsed.as_str().trim_end_matches('/').to_string()
        }
        _ => url.to_string(),
    }
}

/// Joins the lines of `text` with spaces, so the reason stays on one line.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_removed_from_url() {
        assert_eq!(
            without_credentials("https://user:secret@al-service-server:5003"),
            "https://al-service-server:5003"
        );
        assert_eq!(
            without_credentials("http://al-service-server:5003"),
            "http://al-service-server:5003"
        );
    }

    #[test]
    fn reason_is_one_line() {
        assert_eq!(one_line("HTTP 503:\nFAIL\n  now"), "HTTP 503: FAIL now");
    }
}
