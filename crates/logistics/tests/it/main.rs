//! Integration tests of the logistics slice on each backend.
