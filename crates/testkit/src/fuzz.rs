//! What the parser property tests share: a fixed budget of cases, valid documents changed
//! at random, and the rule that a refusal says why.

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError};

/// `cases` cases a property, the same each run, with no failures kept between runs.
pub fn config(cases: u32) -> Config {
    Config { cases, failure_persistence: None, ..Config::default() }
}

/// `valid` changed: cut short, and up to five bytes replaced.
pub fn mutated(valid: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
    (0..=valid.len(), prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6))
        .prop_map(move |(cut, changes)| {
            let mut v = valid[..cut].to_vec();
            if !v.is_empty() {
                for (at, byte) in changes {
                    let i = at.index(v.len());
                    v[i] = byte;
                }
            }
            v
        })
}

/// Fails the case when `result` is a refusal without a reason (an empty message).
pub fn said_why<T, E: std::fmt::Display>(result: Result<T, E>) -> Result<(), TestCaseError> {
    if let Err(e) = result {
        prop_assert!(!e.to_string().trim().is_empty(), "a refusal without a reason");
    }
    Ok(())
}
