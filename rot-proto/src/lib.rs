//! rot-proto: the protocol shared by ROT proxies, servers, wallets and third-party implementations.
