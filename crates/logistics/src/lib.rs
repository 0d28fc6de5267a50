//! Logistics for Shuxiang: dispatching delivery vehicles with capacities and
//! time windows ([`dispatch`], solved by `vrp-core`) and a reader for the
//! Solomon / Gehring & Homberger VRPTW benchmark format ([`solomon`]).

pub mod api;
pub mod coldchain;
pub mod dispatch;
pub mod network;
pub mod shipments;
pub mod solomon;
pub mod store;
