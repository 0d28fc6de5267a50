//! (being written)

pub mod api;
