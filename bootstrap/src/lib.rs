//! rot-bootstrap: the signed list of proxies.
