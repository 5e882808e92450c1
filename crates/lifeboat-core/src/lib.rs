//! lifeboat's core: typed events, configuration, and every decision as a pure
//! function; the cloud only through the small traits in [`ports`].
//!
//! Data flows one way: event → plan → effects → report.

pub mod answer;
pub mod backup;
pub mod config;
pub mod contract;
pub mod event;
#[cfg(feature = "memory")]
pub mod memory;
pub mod metrics;
pub mod model;
pub mod node;
pub mod ports;
pub mod prepare;
pub mod prune;
pub mod relaunch;
pub mod spec;
pub mod tags;
pub mod userdata;

pub use config::Config;
