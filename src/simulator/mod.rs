//! Embedded simulators of the Intezer API and the Assemblyline service
//! server, for demos and tests. They listen on 127.0.0.1 only.

pub mod service_server;
