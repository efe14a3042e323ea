//! Embedded simulators of the Intezer API and the Assemblyline service
//! server, for demos and tests. They listen on 127.0.0.1 only.
//!
//! - [`scenario`]: scenario files, the scripted responses for one task.
//! - [`intezer`]: the Intezer API simulator, which replays a scenario or
//!   plays the stateful default scenario of `default_scenario`.
//! - [`service_server`]: the AL service-server simulator, which hands out
//!   tasks for given files and reports any task lost or answered twice.
//! - [`faults`]: the faults both simulators inject on request.

mod default_scenario;
pub mod faults;
pub mod intezer;
mod replay;
mod reply;
mod request;
pub mod scenario;
pub mod service_server;

pub use intezer::{
    run_until_ctrl_c, DefaultOptions, DefaultVerdict, IntezerBehaviour, IntezerSimHandle,
    IntezerSimulator, RecordedCall,
};
pub use scenario::{ResponseBody, Route, RouteResponse, Scenario, ScenarioError};
