//! rot-proxy library.
