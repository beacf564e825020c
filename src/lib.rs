//! servitor: a job manager whose jobs are directories holding an executable `run`.
//!
//! The daemon (`daemon`) discovers jobs (`jobs`), records executions on disk
//! (`store`), runs them (`runner`), announces status changes (`events`) and serves
//! it all over HTTP (`api`, `ui`). The command-line client (`cli`, `client`)
//! speaks to the daemon over its UNIX socket with the same domain types.

pub mod api;
pub mod catalog;
pub mod cli;
pub mod client;
pub mod config;
pub mod daemon;
pub mod events;
pub mod jobs;
pub mod output;
pub mod paths;
pub mod runner;
pub mod store;
pub mod telemetry;
pub mod ui;
pub mod watch;
