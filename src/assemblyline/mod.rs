//! The Assemblyline side: the service-server client, the task, the result
//! and error documents, and the service manifest.

pub mod client;
pub mod manifest;
pub mod result;
pub mod task;

pub use client::{Identity, Registration, ServiceServerClient, ServiceServerError, UploadableFile};
pub use manifest::Manifest;
pub use result::{
    BodyFormat, ErrorStatus, Heuristic, Section, ServiceIdentity, ServiceResult, TaskFailure,
};
pub use task::{Task, TaskError};
