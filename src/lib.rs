#![forbid(unsafe_code)]

pub mod actors;
pub mod assemblyline;
pub mod config;
pub mod download;
pub mod intezer;
pub mod quota;
pub mod report;
pub mod runtime;
pub mod simulator;
pub mod telemetry;
