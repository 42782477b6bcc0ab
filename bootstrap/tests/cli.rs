//! The maintainers' tool end to end, run as the real binary: keygen, init, add-proxy, signing
//! by two of three maintainers, verify, tampering, merging, rotation and the demo ring.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

struct Tool {
    dir: tempfile::TempDir,
}

impl Tool {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_rot-bootstrap"))
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .unwrap()
    }

    /// Runs a command that must succeed and returns its standard output.
    fn ok(&self, args: &[&str]) -> String {
        let output = self.run(args);
        assert!(
            output.status.success(),
            "{args:?} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    /// Runs `verify` and returns (exit code, standard output).
    fn verify(&self, args: &[&str]) -> (i32, String) {
        let output = self.run(&[&["verify"], args].concat());
        (
            output.status.code().unwrap(),
            String::from_utf8(output.stdout).unwrap(),
        )
    }

    /// Creates a maintainer key and returns its public key.
    fn keygen(&self, name: &str) -> String {
        self.ok(&["keygen", name]).trim().to_owned()
    }
}

const PROXY_KEY: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";

/// keygen ×3, init 2 of 3, add-proxy: an unsigned list.json and the three public keys.
fn unsigned_list(tool: &Tool) -> Vec<String> {
    let keys: Vec<String> = ["m1.key", "m2.key", "m3.key"]
        .iter()
        .map(|name| tool.keygen(name))
        .collect();
    for key in &keys {
        assert_eq!(key.len(), 64, "{key}");
    }
    let mut init = vec![
        "init",
        "list.json",
        "--threshold",
        "2",
        "--valid-days",
        "30",
    ];
    for key in &keys {
        init.extend(["--maintainer", key.as_str()]);
    }
    tool.ok(&init);
    tool.ok(&[
        "add-proxy",
        "list.json",
        "--coin",
        "ltc-regtest",
        "--url",
        "http://127.0.0.1:18080/",
        "--key",
        PROXY_KEY,
        "--team",
        "Regtest Team",
        "--contact",
        "ops@example.org",
    ]);
    keys
}

#[test]
fn keygen_init_add_proxy_sign_two_of_three_verify_then_tamper() {
    let tool = Tool::new();
    let keys = unsigned_list(&tool);
    let (code, out) = tool.verify(&["list.json"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("REFUSED: list serial 1 carries no signatures"),
        "{out}"
    );

    tool.ok(&["sign", "list.json", "--key", "m1.key"]);
    let (code, out) = tool.verify(&["list.json"]);
    assert_eq!(code, 1);
    assert!(
        out.contains(
            "REFUSED: list serial 1 has 1 valid signature(s) of its maintainers, 2 required"
        ),
        "{out}"
    );

    let signed = tool.ok(&["sign", "list.json", "--key", "m3.key"]);
    assert!(signed.contains("signatures: complete"), "{signed}");
    let (code, out) = tool.verify(&["list.json"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("ACCEPTABLE: serial 1"), "{out}");
    assert!(out.contains(&format!("- {} not signed", keys[1])), "{out}");

    // As a client pinning the three keys would.
    let pins = format!(
        "{{\"threshold\": 2, \"keys\": [\"{}\", \"{}\", \"{}\"]}}",
        keys[0], keys[1], keys[2]
    );
    std::fs::write(tool.path("pins.json"), pins).unwrap();
    let (code, out) = tool.verify(&["list.json", "--pins", "pins.json"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("trusted"), "{out}");
    // ...and after the list's expiry.
    let (code, out) = tool.verify(&["list.json", "--now", "99999999999"]);
    assert_eq!(code, 1);
    assert!(out.contains("REFUSED: list serial 1 expired at"), "{out}");

    let show = tool.ok(&["show", "list.json"]);
    for expected in [
        "serial 1",
        "ltc-regtest:",
        "http://127.0.0.1:18080",
        PROXY_KEY,
        "Regtest Team",
    ] {
        assert!(show.contains(expected), "{expected}: {show}");
    }

    // Tamper with one byte of the signed file.
    let text = std::fs::read_to_string(tool.path("list.json")).unwrap();
    std::fs::write(tool.path("list.json"), text.replace("18080", "18081")).unwrap();
    let (code, out) = tool.verify(&["list.json"]);
    assert_eq!(code, 1);
    assert!(
        out.contains("REFUSED: tampered list: the signature by maintainer"),
        "{out}"
    );
    assert!(out.contains("does not verify over this body"), "{out}");
}

#[test]
fn maintainers_sign_copies_independently_and_merge() {
    let tool = Tool::new();
    unsigned_list(&tool);
    std::fs::copy(tool.path("list.json"), tool.path("copy.json")).unwrap();
    tool.ok(&["sign", "list.json", "--key", "m1.key"]);
    tool.ok(&["sign", "copy.json", "--key", "m2.key"]);
    let merged = tool.ok(&["merge", "list.json", "copy.json"]);
    assert!(merged.contains("copy.json: 1 new signature(s)"), "{merged}");
    assert_eq!(tool.verify(&["list.json"]).0, 0);

    // A copy of another body does not merge.
    tool.ok(&[
        "remove-proxy",
        "copy.json",
        "--coin",
        "ltc-regtest",
        "--key",
        PROXY_KEY,
    ]);
    let output = tool.run(&["merge", "list.json", "copy.json"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("different list body"));
}

#[test]
fn a_non_maintainer_cannot_sign_and_keys_are_never_overwritten() {
    let tool = Tool::new();
    unsigned_list(&tool);
    tool.keygen("stranger.key");
    let output = tool.run(&["sign", "list.json", "--key", "stranger.key"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("is not among the maintainers"));
    let output = tool.run(&["keygen", "m1.key"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("already exists"));
}

#[test]
fn rotation_through_the_tool_is_followed_from_the_old_list() {
    let tool = Tool::new();
    let keys = unsigned_list(&tool);
    tool.ok(&["sign", "list.json", "--key", "m1.key"]);
    tool.ok(&["sign", "list.json", "--key", "m2.key"]);
    std::fs::copy(tool.path("list.json"), tool.path("old.json")).unwrap();

    // Replace maintainer 1 by a new key: serial 2, rotating from the old set.
    let new_key = tool.keygen("m4.key");
    let out = tool.ok(&[
        "set-threshold",
        "list.json",
        "2",
        "--maintainer",
        &keys[1],
        "--maintainer",
        &keys[2],
        "--maintainer",
        &new_key,
    ]);
    assert!(out.contains("drafted serial 2"), "{out}");
    assert!(out.contains("must co-sign"), "{out}");
    tool.ok(&["sign", "list.json", "--key", "m4.key"]);
    // Key 2 is in both sets; with key 4 the new set is complete, the old one is not.
    tool.ok(&["sign", "list.json", "--key", "m2.key"]);
    let (code, out) = tool.verify(&["list.json", "--trusted", "old.json"]);
    assert_eq!(code, 1);
    assert!(
        out.contains("of its previous_maintainers, 2 required"),
        "{out}"
    );
    tool.ok(&["sign", "list.json", "--key", "m1.key"]);
    let (code, out) = tool.verify(&["list.json", "--trusted", "old.json"]);
    assert_eq!(code, 0, "{out}");
    // A client holding the new list no longer trusts the old set.
    let (code, out) = tool.verify(&["old.json", "--trusted", "list.json"]);
    assert_eq!(code, 1);
    assert!(
        out.contains("signed by maintainers this client does not trust"),
        "{out}"
    );

    // Renewing the new list gives serial 3; serial 2 is then a rollback.
    std::fs::copy(tool.path("list.json"), tool.path("two.json")).unwrap();
    tool.ok(&["renew", "list.json"]);
    tool.ok(&["sign", "list.json", "--key", "m2.key"]);
    tool.ok(&["sign", "list.json", "--key", "m3.key"]);
    let (code, out) = tool.verify(&["list.json", "--trusted", "two.json"]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = tool.verify(&["two.json", "--trusted", "list.json"]);
    assert_eq!(code, 1);
    assert!(
        out.contains("rollback refused: list serial 2 is older than the cached serial 3"),
        "{out}"
    );
}

#[test]
fn demo_creates_a_ring_the_pins_accept() {
    let tool = Tool::new();
    let proxy = format!("ltc-regtest=http://127.0.0.1:18080={PROXY_KEY}");
    let out = tool.ok(&["demo", "--dir", "ring", "--proxy", &proxy]);
    assert!(out.contains("never use them in production"), "{out}");
    let ring = Path::new("ring");
    let list = ring.join("list.json");
    let pins = ring.join("pins.json");
    let (code, out) = tool.verify(&[list.to_str().unwrap(), "--pins", pins.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    let show = tool.ok(&["show", list.to_str().unwrap()]);
    assert!(show.contains("DEMO list"), "{show}");
}
