//! Runs one Intezer scenario through `scan`'s pipeline, as
//! `scan --scenario FILE` does, against the scenario replay simulator.

use std::path::Path;

use serde_json::{Map, Value};

use intezer_dynamic::config::environment::DEFAULT_SERVICE_TAG;
use intezer_dynamic::config::{Secret, ServiceConfig};
use intezer_dynamic::runtime::{self, ScanInput, ScanOutcome, ScanSettings};
use intezer_dynamic::simulator::intezer::{IntezerBehaviour, IntezerSimulator, RecordedCall};
use intezer_dynamic::simulator::scenario::Scenario;

/// The outcome of one scenario and every call the simulator received.
pub struct Replay {
    pub outcome: ScanOutcome,
    pub calls: Vec<RecordedCall>,
}

/// Replays the scenario at `path` with configuration `overrides` applied
/// after the scenario's own configuration, like `--set`.
pub async fn replay_scenario(path: &Path, overrides: &[(&str, Value)]) -> Replay {
    let scenario = Scenario::load(path).unwrap();
    let sample = scenario.sample_path().expect("scenario names a sample");
    let env = super::environment(&[]);
    assert_eq!(env.service_tag, DEFAULT_SERVICE_TAG);
    let manifest = runtime::load_manifest(&env, None).unwrap();
    let overrides: Map<String, Value> = overrides
        .iter()
        .map(|(key, value)| (key.to_string(), value.clone()))
        .collect();
    let mut config =
        ServiceConfig::from_layers([&manifest.config, &scenario.config, &overrides]).unwrap();
    let params = scenario.submission_params.clone();
    let simulator = IntezerSimulator::start(IntezerBehaviour::Scenario(scenario), 0)
        .await
        .unwrap();
    config.base_url = simulator.base_url();
    config.api_key = Secret::new("scenario-key");

    let settings = ScanSettings {
        manifest,
        config,
        params,
        concurrency: 1,
        extract_dir: None,
    };
    let mut reports = runtime::scan(settings, vec![ScanInput { path: sample }])
        .await
        .unwrap();
    let calls = simulator.calls();
    simulator.stop().await;
    Replay {
        outcome: reports.remove(0).outcome,
        calls,
    }
}
