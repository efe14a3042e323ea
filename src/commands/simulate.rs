//! `simulate`: one embedded simulator, on 127.0.0.1, until interrupted.

use std::process::ExitCode;

use serde_json::{Map, Value};

use intezer_dynamic::simulator::faults::FaultPlan;
use intezer_dynamic::simulator::intezer::{DefaultOptions, IntezerBehaviour, IntezerSimulator};
use intezer_dynamic::simulator::scenario::Scenario;
use intezer_dynamic::simulator::service_server::{ServiceServerOptions, ServiceServerSimulator};

use super::demo::sim_file;
use super::{run_system, shutdown_signal, UsageError};
use crate::cli::{SimulateArgs, SimulatorKind};

pub fn run(args: SimulateArgs) -> anyhow::Result<ExitCode> {
    match args.which {
        SimulatorKind::Intezer {
            port,
            scenario,
            polls,
            faults,
            fault_seed,
        } => {
            let plan =
                FaultPlan::parse(&faults, fault_seed).map_err(|err| UsageError(err.to_string()))?;
            let behaviour = match scenario {
                Some(path) => IntezerBehaviour::Scenario(
                    Scenario::load(&path).map_err(|err| UsageError(err.to_string()))?,
                ),
                None => IntezerBehaviour::Default(DefaultOptions {
                    polls_before_finished: polls,
                    ..DefaultOptions::default()
                }),
            };
            run_system(async move {
                let handle = IntezerSimulator::start_with_faults(behaviour, port, plan)
                    .await
                    .map_err(|err| listen_error(err, port))?;
                println!(
                    "Intezer simulator listening; base_url: {}",
                    handle.base_url()
                );
                shutdown_signal().await;
                println!("{} calls received", handle.calls().len());
                let injected = handle.injected_faults().len();
                if injected > 0 {
                    println!("{injected} faults injected");
                }
                handle.stop().await;
                Ok(ExitCode::SUCCESS)
            })
        }
        SimulatorKind::ServiceServer {
            port,
            files,
            config,
            api_key,
            faults,
            fault_seed,
        } => {
            let mut options = ServiceServerOptions {
                api_key,
                faults: FaultPlan::parse(&faults, fault_seed)
                    .map_err(|err| UsageError(err.to_string()))?,
                ..ServiceServerOptions::default()
            };
            for path in &files {
                options.files.push(sim_file(path)?);
            }
            options.config_overrides = parse_config(&config)?;
            run_system(async move {
                let handle = ServiceServerSimulator::start(options, port)
                    .await
                    .map_err(|err| listen_error(err, port))?;
                println!(
                    "service-server simulator listening; SERVICE_API_HOST={}",
                    handle.base_url()
                );
                shutdown_signal().await;
                println!("{}", serde_json::to_string_pretty(&handle.report())?);
                handle.stop().await;
                Ok(ExitCode::SUCCESS)
            })
        }
    }
}

/// Turns a simulator's start failure into a usage error when its settings
/// were invalid, or a listen error otherwise.
fn listen_error(err: std::io::Error, port: u16) -> anyhow::Error {
    match err.kind() {
        std::io::ErrorKind::InvalidInput => anyhow::Error::new(UsageError(err.to_string())),
        _ => anyhow::Error::new(err).context(format!("cannot listen on 127.0.0.1:{port}")),
    }
}

/// Reads `KEY=VALUE` pairs; a value that parses as JSON (true, 5) keeps its
/// type, anything else is a string.
fn parse_config(pairs: &[String]) -> Result<Map<String, Value>, UsageError> {
    let mut config = Map::new();
    for pair in pairs {
        let (key, raw) = pair
            .split_once('=')
            .ok_or_else(|| UsageError(format!("invalid --config {pair:?}: expected KEY=VALUE")))?;
        let value = serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.to_string()));
        config.insert(key.trim().to_string(), value);
    }
    Ok(config)
}
