//! Replay of a scenario file: each request gets the next scripted response
//! of the first route that matches it.

use std::collections::HashMap;
use std::io;
use std::path::PathBuf;

use bytes::Bytes;

use super::reply::{Reply, ReplyBody};
use super::request::IncomingRequest;
use super::scenario::{ResponseBody, Scenario};

/// Replay state: the scenario, how many requests each route has served, and
/// the bytes of every `file` body, read once at start.
pub(crate) struct Replay {
    scenario: Scenario,
    /// Requests served so far, per route index. A list advances with every
    /// request its route matches, whatever the concrete path.
    served: Vec<u64>,
    files: HashMap<PathBuf, Bytes>,
}

impl Replay {
    /// Reads the files the scenario serves, so that a file removed after
    /// loading fails here instead of mid-test.
    pub fn new(scenario: Scenario) -> io::Result<Replay> {
        let mut files = HashMap::new();
        for route in &scenario.routes {
            for response in &route.responses {
                if let ResponseBody::File(path) = &response.body {
                    if !files.contains_key(path) {
                        let bytes = std::fs::read(path).map_err(|error| {
                            io::Error::new(
                                error.kind(),
                                format!(
                                    "failed to read {} for route {:?}: {error}",
                                    path.display(),
                                    route.key()
                                ),
                            )
                        })?;
                        files.insert(path.clone(), Bytes::from(bytes));
                    }
                }
            }
        }
        Ok(Replay {
            served: vec![0; scenario.routes.len()],
            scenario,
            files,
        })
    }

    pub fn require_authorization(&self) -> bool {
        self.scenario.require_authorization
    }

    /// Picks the response: the next one of the first matching route, a
    /// default token for an unrouted `POST /get-access-token`, or 404.
    pub fn respond(&mut self, request: &IncomingRequest) -> Reply {
        let Some(api_path) = request.api_path.as_deref() else {
            return no_route();
        };

        let Some((index, route)) = self.scenario.find_route(&request.method, api_path) else {
            if request.method == "POST" && api_path == "/get-access-token" {
                return Reply::new_access_token().with_route("POST /get-access-token");
            }
            return no_route();
        };

        let served = self.served[index];
        self.served[index] += 1;
        let response = route.response_for(served);
        let body = match &response.body {
            ResponseBody::Empty => ReplyBody::Empty,
            ResponseBody::Json(value) => ReplyBody::Json(value.clone()),
            ResponseBody::Text(text) => ReplyBody::Text(text.clone()),
            // Every file was read in `new`, so the lookup only misses if the
            // scenario changed after that, which it cannot.
            ResponseBody::File(path) => {
                ReplyBody::Bytes(self.files.get(path).cloned().unwrap_or_default())
            }
        };
        Reply {
            status: response.status,
            body,
            headers: response.headers.clone(),
            delay: response.delay,
            route: Some(route.key()),
            fault: None,
        }
    }
}

fn no_route() -> Reply {
    Reply::error(404, "no route in scenario")
}
