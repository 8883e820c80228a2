//! End to end: the real `certhub` binary against a real Pebble (30% of nonces rejected)
//! that resolves through a real BIND 9. Every issued chain is verified against Pebble's
//! root and every name.

mod accounts;
mod agents;
mod browser;
mod caa;
mod challenges;
mod common;
mod credentials;
mod deployment;
mod discovery;
mod hardening;
mod hub;
mod hubs;
mod import;
mod issuance;
mod metrics;
mod notifications;
mod oidc;
mod operations;
mod packaging;
mod postgres;
mod preview;
mod providers;
mod reliability;
mod remote_deploy;
mod renewal;
mod support;
mod users;
