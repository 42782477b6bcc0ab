//! rot-server library.
