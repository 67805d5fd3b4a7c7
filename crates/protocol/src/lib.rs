//! The contract between the control plane and a unit of work, in one place so that every
//! executor, scanner mode (`scanplane job`) and the report endpoint agree on it:
//! - [`env`]: the env vars that configure scanner mode, built by executors and read by the job;
//! - [`registry`]: registries as stored and as a discovery unit receives them;
//! - [`report`]: the NDJSON lines a job streams to `POST /api/v1/scans/:id/report`;
//! - [`token`]: per-attempt report tokens, stored only as their hash.

pub mod env;
pub mod registry;
pub mod report;
pub mod token;
