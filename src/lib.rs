//! Klamm: a Kafka-compatible message broker.
//!
//! Requests flow from the network edge ([`server`]) through the protocol layer ([`api`], one
//! module per Kafka API) to the partition manager ([`topics`]) and the storage engine ([`log`]).

#[cfg(test)]
mod alloc_meter;
pub mod api;
pub mod broker;
pub mod clock;
pub mod codec;
pub mod config;
pub mod group;
pub mod log;
pub mod producer_ids;
pub mod server;
pub mod topics;

pub use broker::{Broker, StartError};
pub use config::{BrokerConfig, ConfigError};
