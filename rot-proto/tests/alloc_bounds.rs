//! Parsers of outside bytes never allocate more than their input justifies: a count or length
//! claiming 2^32 or more items on a few bytes of input fails before anything is reserved, and
//! on any input the bytes allocated while parsing stay within a fixed multiple of its length.
//!
//! A counting global allocator measures it, so this binary holds ONE test: other tests running
//! on other threads would allocate into the same counters.

use std::alloc::System;
use std::cell::Cell;

use cap::Cap;
use proptest::prelude::*;
use proptest::test_runner::TestRunner;
use rot_harness::fuzz::{DEFAULT_CASES, config, every_wire_layout, wire_input};
use rot_proto::encode::Reader;
use rot_proto::{Block, ChainRules, PowAlgorithm, Transaction};

/// Counts every allocation. The limit makes a wildly oversized request fail at once (the test
/// process aborts, naming the size) instead of depending on the system's overcommit.
#[global_allocator]
static ALLOCATOR: Cap<System> = Cap::new(System, 1 << 30);

/// Bytes allocated (including since freed) while `f` runs.
fn allocated_by<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let before = ALLOCATOR.total_allocated();
    let result = f();
    (result, ALLOCATOR.total_allocated() - before)
}

/// Allowed allocation per input byte: parsed views hold a few machine words per item, and the
/// smallest item (an empty transaction) is 10 bytes; MWEB-less blocks and transactions use far
/// less in practice.
const BYTES_PER_INPUT_BYTE: usize = 64;
/// Fixed allowance (error messages, small vectors).
const SLACK: usize = 4096;

/// A compact size of `value` in its 9-byte form.
fn huge(value: u64) -> Vec<u8> {
    [&[0xff][..], &value.to_le_bytes()].concat()
}

/// Tiny inputs whose first count claims 2^32 or more items, at every count a parser reads:
/// inputs, outputs (after the segwit marker), witness items, block transactions, AuxPoW
/// branches, MWEB inputs and kernels.
fn huge_count_inputs() -> Vec<(&'static str, Vec<u8>)> {
    let version = 2i32.to_le_bytes().to_vec();
    let header_with_auxpow_bit = {
        let mut header = vec![0u8; 80];
        header[1] = 0x01; // version 0x100: AuxPoW follows
        header
    };
    let one_input = [&[1u8][..], &[0; 36], &[0], &[0xff; 4]].concat();
    let one_output = [&[1u8][..], &[0; 8], &[0]].concat();
    vec![
        ("tx inputs", [&version[..], &huge(1 << 32), &[0]].concat()),
        (
            "tx outputs after the segwit marker",
            [&version[..], &[0, 1], &one_input, &huge(u64::MAX)].concat(),
        ),
        (
            "witness items",
            [
                &version[..],
                &[0, 1],
                &one_input,
                &one_output,
                &huge(1 << 40),
            ]
            .concat(),
        ),
        (
            "MWEB inputs of a relayed transaction",
            [
                &version[..],
                &[0, 8],
                &[0],
                &[0],
                &[1],
                &[0; 64],
                &huge(1 << 33),
            ]
            .concat(),
        ),
        (
            "block transactions",
            [&[0u8; 80][..], &huge(1 << 32)].concat(),
        ),
        (
            "AuxPoW coinbase branch",
            [
                &header_with_auxpow_bit[..],
                &version,
                &one_input,
                &one_output,
                &[0; 4],
                &[0; 32],
                &huge(1 << 35),
            ]
            .concat(),
        ),
    ]
}

#[test]
fn parsers_allocate_in_proportion_to_their_input() {
    assert!(Reader::new(&huge(u64::MAX)).count(1).is_err());
    let all_quirks = ChainRules {
        pow: PowAlgorithm::Sha256d,
        segwit: true,
        mweb: true,
        auxpow: true,
        pos_ntime: false,
    };
    for (what, input) in huge_count_inputs() {
        for rules in every_wire_layout() {
            let (refused, allocated) = allocated_by(|| {
                Transaction::parse(&input, &rules).is_err() && Block::parse(&input, &rules).is_err()
            });
            // Under other rules the bytes may mean something else; under these they are the
            // huge count.
            assert!(refused || rules != all_quirks, "{what}: parsed");
            assert!(
                allocated <= SLACK,
                "{what} ({} bytes, {rules:?}): {allocated} bytes allocated",
                input.len()
            );
        }
    }

    // Any input, mostly mutated real blocks and transactions.
    let seeds: Vec<Vec<u8>> = ["block_433.hex", "syscoin_430000.hex", "tx_pegout.hex"]
        .iter()
        .map(|name| {
            let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/data")
                .join(name);
            hex::decode(std::fs::read_to_string(path).unwrap().trim()).unwrap()
        })
        .collect();
    let worst = Cell::new(0f64);
    let mut runner = TestRunner::new(config(DEFAULT_CASES));
    runner
        .run(&wire_input(seeds), |input| {
            for rules in every_wire_layout() {
                let (_, allocated) = allocated_by(|| {
                    let _ = Block::parse(&input, &rules);
                    let _ = Transaction::parse(&input, &rules);
                });
                let bound = BYTES_PER_INPUT_BYTE * input.len() + SLACK;
                prop_assert!(
                    allocated <= bound,
                    "{allocated} bytes allocated for {} input bytes under {rules:?}",
                    input.len()
                );
                worst.set(
                    worst
                        .get()
                        .max(allocated as f64 / input.len().max(1) as f64),
                );
            }
            Ok(())
        })
        .unwrap();
    println!("most bytes allocated per input byte: {:.1}", worst.get());
}
