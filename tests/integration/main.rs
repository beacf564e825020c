//! Integration tests: the real `servitor` binary on temp working directories,
//! over its real socket, running real shell scripts. One file per area.

mod harness;

mod api;
mod cli;
mod daemon;
mod discovery;
mod executions;
mod lifecycle;
mod openapi;
mod state;
