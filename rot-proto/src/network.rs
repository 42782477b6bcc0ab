//! Which chain of a coin a node, server or profile is on. Every coin has the same three kinds
//! of chain (as in Bitcoin Core's `-chain=main|test|regtest`), so the network is a closed enum
//! while the coins themselves are open-ended data.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::Error;

/// A coin's chain: its public network, its public test network, or a private regression-test
/// chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Network {
    /// The production chain.
    Main,
    /// The public test chain (for Bitcoin testnet3, for Litecoin testnet4).
    Test,
    /// A private chain whose blocks are mined on demand, as used by tests.
    Regtest,
}

impl Network {
    /// Every network, in the order used for listings.
    pub const ALL: [Network; 3] = [Network::Main, Network::Test, Network::Regtest];

    /// The lower-case name, as written in coin profiles and ids.
    pub fn as_str(self) -> &'static str {
        match self {
            Network::Main => "main",
            Network::Test => "test",
            Network::Regtest => "regtest",
        }
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Network {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        Network::ALL
            .into_iter()
            .find(|network| network.as_str() == s)
            .ok_or_else(|| Error::UnknownNetwork(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_round_trips_through_display_and_serde() {
        for network in Network::ALL {
            let text = network.to_string();
            assert_eq!(text.parse::<Network>().unwrap(), network);
            let json = serde_json::to_string(&network).unwrap();
            assert_eq!(json, format!("\"{text}\""));
            assert_eq!(serde_json::from_str::<Network>(&json).unwrap(), network);
        }
    }

    #[test]
    fn rejects_other_spellings() {
        for bad in ["Main", "testnet", "mainnet", "signet", ""] {
            let err = bad.parse::<Network>().unwrap_err();
            assert!(err.to_string().contains("main, test, regtest"), "{err}");
        }
    }
}
