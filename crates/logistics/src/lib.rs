//! Logistics for Shuxiang (农村物流与冷链):
//! - [`network`]: sites (operation centres, warehouses, stations) and vehicles
//! - [`shipments`]: village-to-city shipments with handovers and proof of delivery
//! - [`coldchain`]: the pure cold-chain rules (bands, excursions, MKT, gaps) and
//!   [`report`]: a shipment's cold-chain report over a [`coldchain::TemperatureSource`]
//! - [`journey`]: the public journey of a trace code for consumers (no personal data)
//! - [`dispatch`]: vehicle routing with capacities and time windows on `vrp-core`,
//!   [`plans`]: a depot's day of collection runs stored as plan → route → stops
//! - [`solomon`]: the Solomon / Gehring & Homberger VRPTW benchmark format
//! - [`stats`]: officials' numbers for their region
//! - [`api`]: the JSON routes; [`store`]: the migrations and shared helpers

pub mod api;
pub mod coldchain;
pub mod dispatch;
pub mod journey;
pub mod network;
pub mod plans;
pub mod report;
pub mod shipments;
pub mod solomon;
pub mod stats;
pub mod store;
