//! The Esplora requests the relay forwards, sorted by what a server needs to answer them: a
//! server is not sent a request whose capability it does not advertise (an Electrum-backed
//! server lacks `spent-by`, so `/tx/:txid/outspend(s)` never go there), nor one of a kind it
//! has answered 501 to (`/block/:hash/txids` has no capability name; a server that cannot
//! list a block's transactions says so with 501 and is remembered).
//!
//! Paths are checked before anything is forwarded: only characters Esplora paths use, no
//! dot segments, a bounded length. Methods too: `POST` only for `/tx` (a broadcast), `GET` and
//! `HEAD` for everything else.

use axum::http::Method;
use rot_proto::message::capability;

use crate::Error;

/// Longest relayed path (after the relay prefix).
pub const MAX_PATH_LEN: usize = 512;
/// Longest relayed query string.
pub const MAX_QUERY_LEN: usize = 256;

/// What kind of request a relayed path is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Route {
    /// Any read every server answers.
    Read,
    /// `/tx/:txid/outspend/:vout`, `/tx/:txid/outspends`.
    SpentBy,
    /// `/tx/:txid/merkle-proof`.
    MerkleProof,
    /// `/fee-estimates`.
    FeeEstimates,
    /// `/mempool…`, `/address/:a/txs/mempool`, `/scripthash/:h/txs/mempool`.
    Mempool,
    /// `/block/:hash/txids` (no capability name: learnt from 501 answers).
    BlockTxids,
    /// `POST /tx`: sent to two servers.
    Broadcast,
}

impl Route {
    /// Every route, in bit order.
    pub const ALL: [Route; 7] = [
        Route::Read,
        Route::SpentBy,
        Route::MerkleProof,
        Route::FeeEstimates,
        Route::Mempool,
        Route::BlockTxids,
        Route::Broadcast,
    ];

    /// Sorts a request, refusing methods and paths the relay does not forward.
    pub fn classify(method: &Method, path: &str) -> Result<Self, Error> {
        check_path(path)?;
        // The first five segments tell every route apart (none has five or more, so a longer
        // path, cut to five, matches none but the mempool prefix).
        let mut segments = [""; 5];
        let mut count = 0;
        for segment in path[1..].split('/') {
            if count == segments.len() {
                count += 1;
                break;
            }
            segments[count] = segment;
            count += 1;
        }
        let route = match &segments[..count.min(segments.len())] {
            ["tx"] => Self::Broadcast,
            ["tx", _, "outspend", _] | ["tx", _, "outspends"] => Self::SpentBy,
            ["tx", _, "merkle-proof"] => Self::MerkleProof,
            ["fee-estimates"] => Self::FeeEstimates,
            ["mempool", ..] | ["address" | "scripthash", _, "txs", "mempool"] => Self::Mempool,
            ["block", _, "txids"] => Self::BlockTxids,
            _ => Self::Read,
        };
        let allowed = match route {
            Self::Broadcast => method == Method::POST,
            _ => method == Method::GET || method == Method::HEAD,
        };
        if !allowed {
            return Err(Error::MethodNotAllowed);
        }
        Ok(route)
    }

    /// The capability a server must advertise to be sent this route.
    pub fn capability(self) -> Option<&'static str> {
        match self {
            Self::SpentBy => Some(capability::SPENT_BY),
            Self::MerkleProof => Some(capability::MERKLE_PROOF),
            Self::FeeEstimates => Some(capability::FEE_ESTIMATES),
            Self::Mempool => Some(capability::MEMPOOL),
            Self::Broadcast => Some(capability::BROADCAST),
            Self::Read | Self::BlockTxids => None,
        }
    }

    /// The route's bit in a [`Routes`] set.
    fn bit(self) -> u8 {
        1 << (self as u8)
    }

    /// A short name for logs and the operator view.
    pub fn name(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::SpentBy => "spent-by",
            Self::MerkleProof => "merkle-proof",
            Self::FeeEstimates => "fee-estimates",
            Self::Mempool => "mempool",
            Self::BlockTxids => "block-txids",
            Self::Broadcast => "broadcast",
        }
    }
}

/// A set of routes (a server's advertised or learnt abilities).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Routes(u8);

impl Routes {
    /// The routes a server advertising `capabilities` may be sent.
    pub fn offered(capabilities: &[String]) -> Self {
        let mut routes = Self::default();
        for route in Route::ALL {
            let offered = route
                .capability()
                .is_none_or(|needed| capabilities.iter().any(|c| c == needed));
            if offered {
                routes.insert(route);
            }
        }
        routes
    }

    /// The set's bits, for atomic storage.
    pub fn bits(self) -> u8 {
        self.0
    }

    /// The set of `bits`.
    pub fn from_bits(bits: u8) -> Self {
        Self(bits)
    }

    /// Adds `route`.
    pub fn insert(&mut self, route: Route) {
        self.0 |= route.bit();
    }

    /// Whether `route` is in the set.
    pub fn contains(self, route: Route) -> bool {
        self.0 & route.bit() != 0
    }

    /// The names of the routes in the set.
    pub fn names(self) -> Vec<&'static str> {
        Route::ALL
            .into_iter()
            .filter(|r| self.contains(*r))
            .map(Route::name)
            .collect()
    }
}

/// Refuses paths that are not plain Esplora paths.
fn check_path(path: &str) -> Result<(), Error> {
    let bad = |why: &str| Error::BadRequest(format!("invalid relay path: {why}"));
    if !path.starts_with('/') || path.len() < 2 {
        return Err(Error::NotFound("no such endpoint".into()));
    }
    if path.len() > MAX_PATH_LEN {
        return Err(bad(&format!("longer than {MAX_PATH_LEN} bytes")));
    }
    let plain = path
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'-' | b'_' | b'.' | b':'));
    if !plain {
        return Err(bad("only letters, digits and / - _ . : are allowed"));
    }
    if path[1..]
        .split('/')
        .any(|segment| segment.is_empty() || segment == "." || segment == "..")
    {
        return Err(bad("empty or dot segment"));
    }
    Ok(())
}

/// Refuses query strings with anything but plain `key=value&…` characters.
pub fn check_query(query: &str) -> Result<(), Error> {
    let plain = query.len() <= MAX_QUERY_LEN
        && query
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'=' | b'&' | b'-' | b'_' | b'.'));
    if plain {
        Ok(())
    } else {
        Err(Error::BadRequest(format!(
            "invalid relay query: at most {MAX_QUERY_LEN} bytes of letters, digits and = & - _ ."
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_sorted_by_the_capability_they_need() {
        let txid = "ab".repeat(32);
        for (method, path, route) in [
            (Method::GET, "/blocks/tip/height".to_owned(), Route::Read),
            (
                Method::GET,
                format!("/tx/{txid}/outspend/0"),
                Route::SpentBy,
            ),
            (Method::GET, format!("/tx/{txid}/outspends"), Route::SpentBy),
            (
                Method::HEAD,
                format!("/tx/{txid}/merkle-proof"),
                Route::MerkleProof,
            ),
            (
                Method::GET,
                "/fee-estimates".to_owned(),
                Route::FeeEstimates,
            ),
            (Method::GET, "/mempool/txids".to_owned(), Route::Mempool),
            (
                Method::GET,
                "/address/rltc1qxyz/txs/mempool".to_owned(),
                Route::Mempool,
            ),
            (
                Method::GET,
                format!("/block/{txid}/txids"),
                Route::BlockTxids,
            ),
            (
                Method::GET,
                "/address/rltc1qxyz/utxo".to_owned(),
                Route::Read,
            ),
            (Method::POST, "/tx".to_owned(), Route::Broadcast),
        ] {
            assert_eq!(Route::classify(&method, &path).unwrap(), route, "{path}");
        }
    }

    #[test]
    fn odd_methods_and_paths_are_refused() {
        assert!(matches!(
            Route::classify(&Method::GET, "/tx"),
            Err(Error::MethodNotAllowed)
        ));
        assert!(matches!(
            Route::classify(&Method::POST, "/blocks/tip/height"),
            Err(Error::MethodNotAllowed)
        ));
        for bad in [
            "/a/../b",
            "/a//b",
            "/a%2e",
            "/a b",
            "/x?y",
            &format!("/{}", "a".repeat(600)),
        ] {
            assert!(
                matches!(
                    Route::classify(&Method::GET, bad),
                    Err(Error::BadRequest(_))
                ),
                "{bad}"
            );
        }
        assert!(matches!(
            Route::classify(&Method::GET, "/"),
            Err(Error::NotFound(_))
        ));
        check_query(&format!("nonce={}", "0a".repeat(32))).unwrap();
        assert!(check_query("a=<script>").is_err());
    }

    #[test]
    fn capabilities_decide_the_routes_offered() {
        let native: Vec<String> = [
            "esplora",
            "spent-by",
            "mempool",
            "fee-estimates",
            "broadcast",
            "merkle-proof",
        ]
        .iter()
        .map(|c| (*c).to_owned())
        .collect();
        let all = Routes::offered(&native);
        assert!(Route::ALL.iter().all(|r| all.contains(*r)));
        let electrum = Routes::offered(&["esplora".to_owned(), "broadcast".to_owned()]);
        assert!(!electrum.contains(Route::SpentBy));
        assert!(!electrum.contains(Route::Mempool));
        assert!(electrum.contains(Route::Read));
        assert!(electrum.contains(Route::BlockTxids));
        assert!(electrum.contains(Route::Broadcast));
        assert_eq!(Routes::from_bits(electrum.bits()), electrum);
        assert_eq!(electrum.names(), ["read", "block-txids", "broadcast"]);
    }
}
