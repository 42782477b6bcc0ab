//! `rot-bootstrap`: the maintainers' tool for the bootstrap list. A thin command line over the
//! library: create a list, edit its proxies and maintainers, sign and merge signatures, verify
//! and show it. See `docs/bootstrap.md` for an example session.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use rot_bootstrap::demo::{DemoSpec, create_demo_ring};
use rot_bootstrap::{
    BootstrapError, Edit, ListBody, ListFile, MaintainerSet, ProxyEntry, SignatureVerdict,
    SigningStatus, Tally, TrustStore, unix_now,
};
use rot_proto::{Identity, PublicKey};

const DAY: u64 = 86_400;

#[derive(Parser)]
#[command(
    name = "rot-bootstrap",
    version,
    about = "Create, sign and verify the ROT bootstrap list"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    log: rot_ops::LogArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Create a maintainer key file (identity key format, owner-only) and print its public key.
    Keygen {
        /// Where to write the key; an existing file is never overwritten.
        key_file: PathBuf,
    },
    /// Create a first, unsigned list (serial 1) without proxies.
    Init {
        /// The list file to create.
        list: PathBuf,
        /// A maintainer's public key (64 hex); repeat for each maintainer.
        #[arg(long = "maintainer", required = true)]
        maintainers: Vec<PublicKey>,
        /// Signatures required (k of n).
        #[arg(long)]
        threshold: u64,
        /// Days the list stays valid; successors keep this period.
        #[arg(long, default_value_t = 90)]
        valid_days: u64,
        /// Free text for people reading the list.
        #[arg(long)]
        comment: Option<String>,
        /// Overwrite an existing file.
        #[arg(long)]
        force: bool,
    },
    /// Add a proxy for a coin network.
    AddProxy {
        /// The list file.
        list: PathBuf,
        /// Coin profile id, e.g. ltc, ltc-test, ltc-regtest.
        #[arg(long)]
        coin: String,
        /// The proxy's base URL.
        #[arg(long)]
        url: String,
        /// The proxy's public key (64 hex).
        #[arg(long)]
        key: PublicKey,
        /// The team operating the proxy.
        #[arg(long)]
        team: String,
        /// How to reach its operators.
        #[arg(long)]
        contact: String,
    },
    /// Remove a proxy of a coin network, named by URL or key.
    RemoveProxy {
        /// The list file.
        list: PathBuf,
        /// Coin profile id.
        #[arg(long)]
        coin: String,
        /// The proxy's base URL.
        #[arg(long, required_unless_present = "key")]
        url: Option<String>,
        /// The proxy's public key.
        #[arg(long)]
        key: Option<PublicKey>,
    },
    /// Set the signing threshold, and with --maintainer replace the maintainer set (a key
    /// rotation: the old set must co-sign).
    SetThreshold {
        /// The list file.
        list: PathBuf,
        /// Signatures required (k).
        threshold: u64,
        /// The new set's public keys; repeat for each. Default: keep the keys.
        #[arg(long = "maintainer")]
        maintainers: Vec<PublicKey>,
    },
    /// Re-issue the list from now (a new version if it was complete), e.g. before it expires.
    Renew {
        /// The list file.
        list: PathBuf,
        /// Days the list stays valid. Default: its current period.
        #[arg(long)]
        valid_days: Option<u64>,
    },
    /// Add your signature to the list.
    Sign {
        /// The list file.
        list: PathBuf,
        /// Your maintainer key file.
        #[arg(long)]
        key: PathBuf,
    },
    /// Merge the signatures of copies of the same list signed elsewhere.
    Merge {
        /// The list file to merge into.
        list: PathBuf,
        /// Signed copies.
        #[arg(required = true)]
        copies: Vec<PathBuf>,
    },
    /// Check the list as a client would and say exactly why it is or is not acceptable (exit
    /// status 1 if it is not).
    Verify {
        /// The list file.
        list: PathBuf,
        /// Pinned maintainer set, JSON {"threshold": k, "keys": [...]}.
        #[arg(long)]
        pins: Option<PathBuf>,
        /// An older list the client holds: the new one must follow from it and be newer.
        #[arg(long)]
        trusted: Option<PathBuf>,
        /// Check at this unix time instead of now.
        #[arg(long)]
        now: Option<u64>,
    },
    /// Print the list readably.
    Show {
        /// The list file.
        list: PathBuf,
    },
    /// Create a throw-away ring for local testing: maintainer keys, a signed list and pins.
    Demo {
        /// Directory for maintainer-N.key, list.json and pins.json.
        #[arg(long)]
        dir: PathBuf,
        /// Number of maintainers.
        #[arg(long, default_value_t = 3)]
        maintainers: usize,
        /// Signatures required.
        #[arg(long, default_value_t = 2)]
        threshold: u64,
        /// A proxy as COIN=URL=KEY, e.g. ltc-regtest=http://127.0.0.1:8080=<64 hex>; repeat.
        #[arg(long = "proxy")]
        proxies: Vec<String>,
        /// Days the list stays valid.
        #[arg(long, default_value_t = 30)]
        valid_days: u64,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(error) = cli.log.init(rot_ops::logging::TOOL_FILTER) {
        eprintln!("error: {error}");
        return ExitCode::from(2);
    }
    match run(cli.command) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(2)
        }
    }
}

fn run(command: Command) -> Result<ExitCode, BootstrapError> {
    let now = unix_now();
    match command {
        Command::Keygen { key_file } => keygen(&key_file)?,
        Command::Init {
            list,
            maintainers,
            threshold,
            valid_days,
            comment,
            force,
        } => {
            if list.exists() && !force {
                return Err(io_error(&list, "already exists; pass --force to overwrite"));
            }
            let set = MaintainerSet::new(threshold, maintainers)?;
            let mut body = ListBody::new(set, now, valid_days.saturating_mul(DAY));
            body.comment = comment;
            let file = ListFile::unsigned(&body)?;
            file.write(&list)?;
            println!(
                "created {}: serial 1, {}, expires {}",
                list.display(),
                body.maintainers,
                utc(body.expires_at)
            );
            println!(
                "next: add proxies with `rot-bootstrap add-proxy`, then each maintainer runs `rot-bootstrap sign`"
            );
        }
        Command::AddProxy {
            list,
            coin,
            url,
            key,
            team,
            contact,
        } => edit(&list, now, |body| {
            let entry = ProxyEntry {
                url: url.trim_end_matches('/').to_owned(),
                key,
                team,
                contact,
            };
            println!("adding {} to {coin}", entry.url);
            body.proxies.entry(coin).or_default().push(entry);
            Ok(())
        })?,
        Command::RemoveProxy {
            list,
            coin,
            url,
            key,
        } => edit(&list, now, |body| {
            let url = url.map(|url| url.trim_end_matches('/').to_owned());
            let entries = body.proxies.get_mut(&coin).ok_or_else(|| {
                BootstrapError::Invalid(format!("the list has no proxies for {coin}"))
            })?;
            let before = entries.len();
            entries.retain(|entry| {
                url.as_ref().is_none_or(|url| *url != entry.url)
                    && key.as_ref().is_none_or(|key| *key != entry.key)
            });
            if entries.len() == before {
                return Err(BootstrapError::Invalid(format!("no such proxy for {coin}")));
            }
            if entries.is_empty() {
                body.proxies.remove(&coin);
            }
            println!(
                "removed {} proxy(ies) of {coin}",
                before - body.proxies_for(&coin).len()
            );
            Ok(())
        })?,
        Command::SetThreshold {
            list,
            threshold,
            maintainers,
        } => edit(&list, now, |body| {
            let keys = if maintainers.is_empty() {
                body.maintainers.keys.clone()
            } else {
                maintainers
            };
            body.set_maintainers(MaintainerSet::new(threshold, keys)?);
            match &body.previous_maintainers {
                Some(previous) => println!(
                    "maintainers now {}; this list rotates from {previous}, which must co-sign it",
                    body.maintainers
                ),
                None => println!("maintainers now {}", body.maintainers),
            }
            Ok(())
        })?,
        Command::Renew { list, valid_days } => {
            let file = ListFile::read(&list)?;
            let edit = file.renew(now, valid_days.map(|days| days.saturating_mul(DAY)))?;
            save_edit(&list, &edit)?;
        }
        Command::Sign { list, key } => {
            let identity = Identity::load(&key)?;
            let mut file = ListFile::read(&list)?;
            file.sign(&identity)?;
            file.write(&list)?;
            println!("signed {} as {}", list.display(), identity.public_key());
            print_status(&file.signing_status()?);
        }
        Command::Merge { list, copies } => {
            let mut file = ListFile::read(&list)?;
            for copy in &copies {
                let added = file.merge(&ListFile::read(copy)?, copy)?;
                println!("{}: {added} new signature(s)", copy.display());
            }
            file.write(&list)?;
            print_status(&file.signing_status()?);
        }
        Command::Verify {
            list,
            pins,
            trusted,
            now: at,
        } => {
            return verify(
                &list,
                pins.as_deref(),
                trusted.as_deref(),
                at.unwrap_or(now),
            );
        }
        Command::Show { list } => show(&ListFile::read(&list)?, now)?,
        Command::Demo {
            dir,
            maintainers,
            threshold,
            proxies,
            valid_days,
        } => {
            let proxies = proxies
                .iter()
                .map(|text| parse_demo_proxy(text))
                .collect::<Result<Vec<_>, _>>()?;
            let spec = DemoSpec {
                maintainers,
                threshold,
                proxies,
                valid_secs: valid_days.saturating_mul(DAY),
            };
            let ring = create_demo_ring(&dir, &spec, now)?;
            println!(
                "demo ring in {} (throw-away keys: never use them in production)",
                dir.display()
            );
            println!("  list: {}", ring.list_path.display());
            println!(
                "  pins: {} ({})",
                ring.pins_path.display(),
                ring.maintainers
            );
            for path in &ring.key_files {
                println!("  key:  {}", path.display());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn keygen(path: &Path) -> Result<(), BootstrapError> {
    if path.exists() {
        return Err(io_error(path, "already exists; not overwriting a key"));
    }
    let identity = Identity::load_or_generate(path)?;
    println!("{}", identity.public_key());
    eprintln!(
        "wrote {}; give the public key above to the other maintainers",
        path.display()
    );
    Ok(())
}

/// Reads the list, applies `change`, writes it back and says what happened.
fn edit(
    path: &Path,
    now: u64,
    change: impl FnOnce(&mut ListBody) -> Result<(), BootstrapError>,
) -> Result<(), BootstrapError> {
    let edit = ListFile::read(path)?.edit(now, change)?;
    save_edit(path, &edit)
}

fn save_edit(path: &Path, edit: &Edit) -> Result<(), BootstrapError> {
    edit.file.write(path)?;
    let body = edit.file.decode_body()?;
    if let Some(previous) = edit.succeeds {
        println!(
            "drafted serial {} succeeding the complete serial {previous}, valid until {}",
            body.serial,
            utc(body.expires_at)
        );
    }
    if edit.dropped_signatures > 0 {
        println!(
            "dropped {} signature(s) that no longer match",
            edit.dropped_signatures
        );
    }
    println!(
        "{} is unsigned: each maintainer now runs `rot-bootstrap sign {} --key <key file>`",
        path.display(),
        path.display()
    );
    Ok(())
}

fn verify(
    path: &Path,
    pins: Option<&Path>,
    trusted: Option<&Path>,
    now: u64,
) -> Result<ExitCode, BootstrapError> {
    let file = ListFile::read(path)?;
    if let Ok(status) = file.signing_status() {
        print_status(&status);
    }
    let pinned = match (pins, trusted) {
        (Some(pins), _) => Some(MaintainerSet::from_json(&read_text(pins)?)?),
        (None, Some(trusted)) => Some(ListFile::read(trusted)?.decode_body()?.maintainers),
        (None, None) => None,
    };
    let verdict = match pinned {
        Some(pinned) => {
            let mut store = TrustStore::new(pinned);
            if let Some(trusted) = trusted {
                store.load_cache(trusted).map_err(|error| {
                    BootstrapError::Invalid(format!(
                        "the trusted list {} is itself not valid: {error}",
                        trusted.display()
                    ))
                })?;
            }
            store.check(&file, now).map(|_| "trusted")
        }
        None => file.verify().and_then(|list| {
            if list.is_current(now) {
                Ok("maintainers not checked against pins (pass --pins or --trusted)")
            } else {
                Err(BootstrapError::Expired {
                    serial: list.serial(),
                    expires_at: list.expires_at(),
                    now,
                })
            }
        }),
    };
    match verdict {
        Ok(note) => {
            let body = file.decode_body()?;
            println!(
                "ACCEPTABLE: serial {}, valid until {}; {note}",
                body.serial,
                utc(body.expires_at)
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(error) => {
            println!("REFUSED: {error}");
            Ok(ExitCode::FAILURE)
        }
    }
}

fn show(file: &ListFile, now: u64) -> Result<(), BootstrapError> {
    let body = file.decode_body()?;
    println!("bootstrap list serial {}", body.serial);
    println!("  issued:  {}", utc(body.issued_at));
    let state = if now < body.expires_at {
        ""
    } else {
        " (EXPIRED)"
    };
    println!("  expires: {}{state}", utc(body.expires_at));
    if let Some(comment) = &body.comment {
        println!("  comment: {comment}");
    }
    println!("proxies:");
    if body.proxies.is_empty() {
        println!("  (none)");
    }
    for (coin, entries) in &body.proxies {
        println!("  {coin}:");
        for entry in entries {
            println!("    {}", entry.url);
            println!("      key:     {}", entry.key);
            println!("      team:    {}", entry.team);
            println!("      contact: {}", entry.contact);
        }
    }
    if !file.rotations().is_empty() {
        let serials: Vec<String> = file
            .rotations()
            .iter()
            .map(|link| link.serial_hint().to_string())
            .collect();
        println!("rotation links (serials): {}", serials.join(", "));
    }
    print_status(&file.signing_status()?);
    Ok(())
}

fn print_status(status: &SigningStatus) {
    print_tally("maintainers", &status.maintainers);
    if let Some(previous) = &status.previous {
        print_tally("previous maintainers (rotation)", previous);
    }
    for check in &status.checks {
        let problem = match check.verdict {
            SignatureVerdict::Valid => continue,
            SignatureVerdict::Invalid => "does not verify over this body",
            SignatureVerdict::UnknownSigner => "is by a key that is not a maintainer",
            SignatureVerdict::Duplicate => "is a second signature by the same key",
        };
        println!("  ! signature by {} {problem}", check.key);
    }
    println!(
        "signatures: {}",
        if status.complete() {
            "complete"
        } else {
            "INCOMPLETE"
        }
    );
}

fn print_tally(name: &str, tally: &Tally) {
    println!("{name}: {} of {} required", tally.valid, tally.threshold);
    for key in &tally.signed {
        println!("  + {key} signed");
    }
    for key in &tally.missing {
        println!("  - {key} not signed");
    }
}

fn parse_demo_proxy(text: &str) -> Result<(String, ProxyEntry), BootstrapError> {
    let invalid = || BootstrapError::Invalid(format!("--proxy {text:?}: expected COIN=URL=KEY"));
    let (coin, rest) = text.split_once('=').ok_or_else(invalid)?;
    let (url, key) = rest.rsplit_once('=').ok_or_else(invalid)?;
    Ok((
        coin.to_owned(),
        ProxyEntry {
            url: url.trim_end_matches('/').to_owned(),
            key: key.parse()?,
            team: "demo team".to_owned(),
            contact: "demo@localhost".to_owned(),
        },
    ))
}

fn read_text(path: &Path) -> Result<String, BootstrapError> {
    std::fs::read_to_string(path).map_err(|source| BootstrapError::Io {
        path: path.to_owned(),
        source,
    })
}

fn io_error(path: &Path, reason: &str) -> BootstrapError {
    BootstrapError::Io {
        path: path.to_owned(),
        source: std::io::Error::other(reason.to_owned()),
    }
}

/// `2026-11-21 20:27:03 UTC` for unix seconds (proleptic Gregorian, civil-from-days).
fn utc(secs: u64) -> String {
    let days = (secs / DAY) as i64;
    let rem = secs % DAY;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(1_795_292_823), "2026-11-21 20:27:03 UTC");
    }
}
