//! One proxy as the list names it: where it is, the key it signs with, and who runs it, so that
//! servers can register with it, wallets can query it, and people can reach its operators.

use rot_proto::{Network, PublicKey};
use serde::{Deserialize, Serialize};

/// Longest proxy URL accepted.
pub const MAX_URL_LEN: usize = 512;

/// Longest `team` or `contact` text accepted.
pub const MAX_TEXT_LEN: usize = 200;

/// The path under a proxy's base URL where it serves the newest valid list it holds.
pub const BOOTSTRAP_PATH: &str = "/v1/bootstrap";

/// A proxy of one coin network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProxyEntry {
    /// Base URL, `http://` or `https://`, without a trailing slash, query or fragment.
    pub url: String,
    /// The proxy's ed25519 public key (its identity in rot-proto terms).
    pub key: PublicKey,
    /// The team operating it, e.g. "Litecoin Foundation".
    pub team: String,
    /// How to reach the operators (e-mail address, URL, handle).
    pub contact: String,
}

impl ProxyEntry {
    /// The URL where this proxy serves the bootstrap list.
    pub fn bootstrap_url(&self) -> String {
        bootstrap_url(&self.url)
    }

    /// Checks the URL and texts; the error names the field.
    pub(crate) fn validate(&self) -> Result<(), String> {
        validate_url(&self.url)?;
        validate_text("team", &self.team)?;
        validate_text("contact", &self.contact)
    }
}

/// Where a proxy with base URL `base_url` serves the bootstrap list: a mirror URL for
/// [`crate::fetch`].
pub fn bootstrap_url(base_url: &str) -> String {
    format!("{}{BOOTSTRAP_PATH}", base_url.trim_end_matches('/'))
}

/// Checks a proxy base URL: http(s), a host, no whitespace, no trailing slash, no query or
/// fragment, so that every URL has one spelling and paths can be appended to it.
pub fn validate_url(url: &str) -> Result<(), String> {
    if url.len() > MAX_URL_LEN {
        return Err(format!("url longer than {MAX_URL_LEN} bytes"));
    }
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| format!("url {url:?} must start with http:// or https://"))?;
    let host = rest.split('/').next().unwrap_or_default();
    if host.is_empty() {
        return Err(format!("url {url:?} has no host"));
    }
    if url
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '?' || c == '#')
    {
        return Err(format!(
            "url {url:?} must not contain whitespace, a query or a fragment"
        ));
    }
    if url.ends_with('/') {
        return Err(format!("url {url:?} must not end with '/'"));
    }
    Ok(())
}

fn validate_text(field: &str, text: &str) -> Result<(), String> {
    if text.trim().is_empty() || text.len() > MAX_TEXT_LEN || text.chars().any(char::is_control) {
        return Err(format!(
            "{field} {text:?} must be 1 to {MAX_TEXT_LEN} bytes of printable text"
        ));
    }
    Ok(())
}

/// Checks that `id` has the form of a coin profile id (`CoinProfile::id()`): a lower-case
/// ticker of 2 to 10 letters or digits, with `-test` or `-regtest` unless it is a main network.
/// Profiles are open-ended data, so the id need not be one rot-proto ships.
pub fn validate_coin_id(id: &str) -> Result<(), String> {
    let (ticker, suffix_ok) = match id.split_once('-') {
        Some((ticker, network)) => (
            ticker,
            matches!(network.parse(), Ok(Network::Test | Network::Regtest)),
        ),
        None => (id, true),
    };
    let ticker_ok = (2..=10).contains(&ticker.len())
        && ticker
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if ticker_ok && suffix_ok {
        Ok(())
    } else {
        Err(format!(
            "coin id {id:?} must look like \"ltc\", \"ltc-test\" or \"ltc-regtest\""
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rot_proto::{Coins, Identity};

    fn entry(url: &str) -> ProxyEntry {
        ProxyEntry {
            url: url.to_owned(),
            key: Identity::from_seed([1; 32]).public_key(),
            team: "Team".to_owned(),
            contact: "ops@example.org".to_owned(),
        }
    }

    #[test]
    fn accepts_plain_base_urls() {
        for url in [
            "https://proxy.example.org",
            "http://127.0.0.1:8080",
            "https://example.org/rot/ltc",
        ] {
            entry(url).validate().unwrap();
        }
        assert_eq!(
            entry("http://127.0.0.1:1").bootstrap_url(),
            "http://127.0.0.1:1/v1/bootstrap"
        );
    }

    #[test]
    fn refuses_urls_with_more_than_one_spelling() {
        let long = format!("https://{}", "a".repeat(MAX_URL_LEN));
        for url in [
            "ftp://x.org",
            "https://",
            "https:///path",
            "https://x.org/",
            "https://x.org?a=1",
            "https://x.org#frag",
            "https://x .org",
            long.as_str(),
        ] {
            assert!(entry(url).validate().is_err(), "{url}");
        }
    }

    #[test]
    fn refuses_empty_or_control_texts() {
        let mut bad = entry("https://x.org");
        bad.team = " ".to_owned();
        assert!(bad.validate().unwrap_err().contains("team"));
        let mut bad = entry("https://x.org");
        bad.contact = "a\nb".to_owned();
        assert!(bad.validate().unwrap_err().contains("contact"));
    }

    #[test]
    fn every_builtin_coin_id_is_valid() {
        for profile in Coins::builtin().iter() {
            validate_coin_id(&profile.id()).unwrap();
        }
    }

    #[test]
    fn refuses_other_coin_ids() {
        for id in [
            "",
            "l",
            "LTC",
            "ltc-main",
            "ltc-testnet",
            "ltc-",
            "-test",
            "ltc_test",
            "ltc-test-x",
        ] {
            assert!(validate_coin_id(id).is_err(), "{id}");
        }
    }
}
