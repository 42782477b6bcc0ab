//! scriptpubkey_type, scriptpubkey_asm and scriptpubkey_address against real Esplora output.

use rot_proto::{Address, Coins, ScriptType, script_asm};
use serde::Deserialize;

#[derive(Deserialize)]
struct Fixture {
    outputs: Vec<Output>,
    scripts: Vec<Script>,
}

#[derive(Deserialize)]
struct Output {
    profile: String,
    scriptpubkey: String,
    scriptpubkey_asm: String,
    scriptpubkey_type: ScriptType,
    scriptpubkey_address: Option<String>,
}

#[derive(Deserialize)]
struct Script {
    script: String,
    asm: String,
}

fn fixture() -> Fixture {
    serde_json::from_str(include_str!("data/esplora_scripts.json")).unwrap()
}

#[test]
fn outputs_match_esplora() {
    let coins = Coins::builtin();
    for output in fixture().outputs {
        let profile = coins.require(&output.profile).unwrap();
        let script = hex::decode(&output.scriptpubkey).unwrap();
        assert_eq!(ScriptType::classify(&script), output.scriptpubkey_type);
        assert_eq!(script_asm(&script), output.scriptpubkey_asm);
        let address = Address::from_script(profile, &script).map(|a| a.to_string());
        assert_eq!(
            address, output.scriptpubkey_address,
            "{}",
            output.scriptpubkey
        );
    }
}

#[test]
fn input_scripts_match_esplora_asm() {
    for script in fixture().scripts {
        assert_eq!(
            script_asm(&hex::decode(&script.script).unwrap()),
            script.asm
        );
    }
}
