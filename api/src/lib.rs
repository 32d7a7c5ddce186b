//! The `twin` binary as a library, so tests can start the whole server in-process: configuration,
//! the command line, HTTP and WebSocket routes, authentication, and the wiring of adapters into the
//! actor tree. The only crate that names concrete adapters.

pub mod accounts;
pub mod audit;
pub mod auth;
pub mod bundle;
pub mod channels;
pub mod chat_client;
pub mod cli;
pub mod cluster;
pub mod creators;
pub mod extract;
pub mod gdpr;
pub mod limits;
pub mod live_wire;
pub mod models;
pub mod origin;
pub mod preview;
pub mod problem;
pub mod routes;
pub mod secrets;
pub mod settings;
pub mod startup;
pub mod telemetry;
pub mod tools;
pub mod widget;

pub use settings::Settings;
pub use startup::Application;
