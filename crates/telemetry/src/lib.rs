//! 物联网监测 IoT monitoring: registered devices (墒情 soil-moisture probes,
//! weather stations, water-quality sensors, water meters, cold-chain
//! loggers), telemetry accepted over HTTP and MQTT and committed before it is
//! acknowledged, time series with roll-ups and retention, and alarms.

pub mod alarm;
pub mod api;
pub mod demo;
pub mod devices;
pub mod gateway;
mod hot;
pub mod ingest;
pub mod model;
pub mod payload;
pub mod series;
pub mod store;
pub mod writer;
