//! The coin file example in docs/coins.md must load, so the documentation stays true.

use rot_proto::{Address, Coins, Network};

#[test]
fn documented_example_coin_file_loads() {
    let doc = include_str!("../../docs/coins.md");
    let start = doc
        .find("```json\n")
        .expect("docs/coins.md has a JSON example")
        + 8;
    let len = doc[start..]
        .find("```")
        .expect("the JSON example is closed");
    let mut coins = Coins::builtin();
    let ids = coins.add_from_json(&doc[start..start + len]).unwrap();
    assert_eq!(ids, ["exc"]);
    let profile = coins.get("EXC", Network::Main).unwrap();
    let script = hex::decode("0014751e76e8199196d454941c45d1b3a323f1433bd6").unwrap();
    let address = Address::from_script(profile, &script).unwrap();
    assert!(address.as_str().starts_with("exc1q"));
    assert_eq!(
        Address::parse_with_registry(profile, address.as_str(), &coins).unwrap(),
        address
    );
}
