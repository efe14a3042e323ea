//! The `intezer-dynamic` binary: parses the command line and runs one
//! command. Errors end here as a message and an exit status: 2 for usage
//! and configuration errors, 1 for everything else.

#![forbid(unsafe_code)]

mod cli;
mod commands;

use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command, LogFormatArg};
use intezer_dynamic::telemetry::{self, LogFormat};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let format = match cli.log_format {
        LogFormatArg::Text => LogFormat::Text,
        LogFormatArg::Json => LogFormat::Json,
    };
    let default_level = match cli.command {
        Command::Demo(_) | Command::Scan(_) => "warn",
        _ => "info",
    };
    // The liveness probe prints one line and nothing else, so it starts
    // neither logging nor trace export. Other commands keep the export
    // handle until they return, because dropping it flushes queued spans.
    let _trace_export = if matches!(cli.command, Command::Healthcheck(_)) {
        None
    } else {
        match telemetry::init(default_level, format) {
            Ok(export) => Some(export),
            Err(err) => {
                eprintln!("error: {err}");
                return ExitCode::from(2);
            }
        }
    };

    let outcome = match cli.command {
        Command::Serve(args) => commands::serve::run(args, false),
        Command::Register(args) => commands::serve::run(args, true),
        Command::Scan(args) => commands::scan::run(args),
        Command::Simulate(args) => commands::simulate::run(args),
        Command::Demo(args) => commands::demo::run(args),
        Command::Healthcheck(args) => commands::healthcheck::run(args),
    };
    match outcome {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {}", commands::describe(&err));
            ExitCode::from(commands::exit_status(&err))
        }
    }
}
