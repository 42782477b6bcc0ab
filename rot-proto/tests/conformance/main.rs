//! The conformance suite and the wallet client against a REAL rot-server over a REAL regtest
//! litecoind: an honest server passes every check, a lying proxy in front of it fails
//! exactly the check its lie breaks (with evidence, at fault), an unreachable server is not
//! blamed, and cross-checks over several servers catch a liar among them.
//!
//! One test binary so the helpers are shared; each test builds its own chain on its own node.

mod chain;
mod client;
mod fakes;
mod suite;
