//! SVG maps drawn on the server from stored boundaries.
