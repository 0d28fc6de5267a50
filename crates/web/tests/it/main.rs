//! Integration tests of the web crate against real servers: API behaviour,
//! the authorisation matrix, pages, and a browser run.

mod support;

mod api;
mod browser;
mod matrix;
mod pages;
mod produce;
mod products;
