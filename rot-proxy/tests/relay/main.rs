//! The relay against real rot-servers over real regtest litecoind nodes: wallet traffic
//! through the proxy, a server dying under it, lagging and reorganised nodes, and a server
//! that lies (a test double in front of a real rot-server) being warned and excluded.

mod liar;
mod nodes;
mod traffic;
