//! Property tests for identifier parsing, request normalisation and wildcard coverage.

use std::net::{Ipv4Addr, Ipv6Addr};

use certhub_core::identifier::{Identifier, RequestRules, Rule, normalize};
use proptest::prelude::*;

/// A valid label (not an `xn--` label, which would have to be valid punycode).
fn label() -> impl Strategy<Value = String> {
    "[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?".prop_filter("no xn-- labels", |l| !l.starts_with("xn--"))
}

/// A valid last label (never all digits).
fn tld() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9]{1,8}"
}

/// A valid DNS name of two to five labels.
fn name() -> impl Strategy<Value = String> {
    (prop::collection::vec(label(), 1..5), tld()).prop_map(|(mut labels, tld)| {
        labels.push(tld);
        labels.join(".")
    })
}

/// A valid name, possibly a wildcard.
fn name_or_wildcard() -> impl Strategy<Value = String> {
    (any::<bool>(), name()).prop_map(|(wild, n)| if wild { format!("*.{n}") } else { n })
}

/// The same name as a user might type it: random case, maybe a trailing dot, maybe spaces.
fn user_variant(n: String) -> impl Strategy<Value = String> {
    let len = n.len();
    (prop::collection::vec(any::<bool>(), len), any::<bool>(), any::<bool>()).prop_map(
        move |(upper, dot, spaces)| {
            let mut s: String = n
                .chars()
                .zip(&upper)
                .map(|(c, u)| if *u { c.to_ascii_uppercase() } else { c })
                .collect();
            if dot {
                s.push('.');
            }
            if spaces {
                s = format!("  {s}\t");
            }
            s
        },
    )
}

/// Inputs drawn from a small pool, so duplicates and wildcard coverage happen often.
fn request() -> impl Strategy<Value = Vec<String>> {
    let pooled =
        ("(www|a|b)", "(x|y)\\.(com|org)", 0..3u8).prop_map(|(first, base, shape)| match shape {
            0 => format!("{first}.{base}"),
            1 => format!("*.{base}"),
            _ => format!("*.{first}.{base}"),
        });
    let item = prop_oneof![
        4 => pooled.prop_flat_map(user_variant),
        2 => name_or_wildcard(),
        1 => any::<Ipv4Addr>().prop_map(|ip| ip.to_string()),
        1 => any::<Ipv6Addr>().prop_map(|ip| ip.to_string().to_uppercase()),
    ];
    prop::collection::vec(item, 1..12)
}

fn strings(ids: &[Identifier]) -> Vec<String> {
    ids.iter().map(|i| i.to_string()).collect()
}

fn rule_of(input: &str) -> Rule {
    match Identifier::parse(input) {
        Ok(id) => panic!("{input:?} was accepted as {id:?}"),
        Err(v) => {
            assert_eq!(v.identifier, input.trim());
            assert!(
                v.message.starts_with(&format!("{:?}: ", input.trim())),
                "message does not name the identifier: {v}"
            );
            v.rule
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn generated_valid_names_are_accepted(n in name_or_wildcard()) {
        prop_assert_eq!(Identifier::parse(&n).unwrap(), Identifier::Dns(n.clone()));
    }

    #[test]
    fn case_and_trailing_dot_variants_normalise_equal(
        (n, variant) in name_or_wildcard().prop_flat_map(|n| (Just(n.clone()), user_variant(n)))
    ) {
        prop_assert_eq!(Identifier::parse(&variant).unwrap(), Identifier::parse(&n).unwrap());
    }

    #[test]
    fn normalisation_is_idempotent(inputs in request()) {
        let rules = RequestRules { public_ca: true };
        let first = normalize(&inputs, &rules).unwrap();
        let again = normalize(&strings(&first.identifiers), &rules).unwrap();
        prop_assert_eq!(&again.identifiers, &first.identifiers);
        prop_assert!(again.notes.is_empty(), "{:?}", again.notes);
    }

    #[test]
    fn every_output_reparses_to_itself(inputs in request()) {
        let out = normalize(&inputs, &RequestRules::default()).unwrap();
        for id in &out.identifiers {
            prop_assert_eq!(&Identifier::parse(&id.to_string()).unwrap(), id);
        }
    }

    #[test]
    fn no_output_name_is_covered_by_an_output_wildcard(inputs in request()) {
        let out = normalize(&inputs, &RequestRules::default()).unwrap();
        for w in out.identifiers.iter().filter(|i| i.is_wildcard()) {
            for id in &out.identifiers {
                prop_assert!(!w.covers(id), "{} covers {}", w, id);
            }
        }
        // Nothing was lost without a note, and no identifier appears twice.
        let mut sorted = out.identifiers.clone();
        sorted.sort();
        sorted.dedup();
        prop_assert_eq!(sorted.len(), out.identifiers.len());
        prop_assert_eq!(out.identifiers.len() + out.notes.len(), inputs.len());
    }

    #[test]
    fn random_garbage_never_panics(s in "\\PC{0,80}", bytes in prop::collection::vec(any::<u8>(), 0..80)) {
        let _ = Identifier::parse(&s);
        let lossy = String::from_utf8_lossy(&bytes).into_owned();
        let _ = Identifier::parse(&lossy);
        let _ = normalize(&[s, lossy], &RequestRules { public_ca: true });
    }

    #[test]
    fn labels_longer_than_63_are_refused(long in "[a-z]{64,100}", n in name()) {
        prop_assert_eq!(rule_of(&format!("{long}.{n}")), Rule::LabelTooLong);
        prop_assert_eq!(rule_of(&format!("*.{long}.{n}")), Rule::LabelTooLong);
    }

    #[test]
    fn bad_characters_are_refused(
        (before, after) in ("[a-z0-9]{1,10}", "[a-z0-9]{1,10}"),
        bad in prop::sample::select(&['_', '!', '@', '#', '$', '%', '&', '(', ')', '+', '=', ',', ';',
            ':', '\'', '"', '<', '>', '/', '?', '~', '^', '|', '[', ']', '{', '}', ' ', '\\'][..]),
        n in name(),
    ) {
        prop_assert_eq!(rule_of(&format!("{before}{bad}{after}.{n}")), Rule::InvalidCharacter);
    }

    #[test]
    fn misplaced_wildcards_are_refused(
        labels in prop::collection::vec(label(), 2..5),
        tld in tld(),
        at in any::<prop::sample::Index>(),
        shape in 0..4u8,
    ) {
        let mut all = labels.clone();
        all.push(tld);
        let bad = match shape {
            // `*` as a whole label, but not the leftmost one.
            0 => {
                let i = 1 + at.index(all.len() - 1);
                all[i] = "*".to_string();
                all.join(".")
            }
            // `*` glued to the leftmost label.
            1 => format!("*{}", all.join(".")),
            // `*` inside a label.
            2 => {
                let i = at.index(all.len());
                all[i] = format!("{}*{}", all[i], all[i]);
                all.join(".")
            }
            // Two stars.
            _ => format!("**.{}", all.join(".")),
        };
        prop_assert_eq!(rule_of(&bad), Rule::InvalidWildcard);
    }

    #[test]
    fn wildcards_directly_under_a_tld_are_refused(t in tld()) {
        prop_assert_eq!(rule_of(&format!("*.{t}")), Rule::InvalidWildcard);
    }

    #[test]
    fn names_longer_than_253_are_refused(labels in prop::collection::vec("[a-z]{40,63}", 5..8)) {
        let n = format!("{}.com", labels.join("."));
        prop_assume!(n.len() > 253);
        prop_assert_eq!(rule_of(&n), Rule::NameTooLong);
    }
}

#[test]
fn idn_names_become_punycode() {
    assert_eq!(
        Identifier::parse("bücher.example").unwrap(),
        Identifier::Dns("xn--bcher-kva.example".into())
    );
    assert_eq!(
        Identifier::parse("BÜCHER.Example.").unwrap(),
        Identifier::Dns("xn--bcher-kva.example".into())
    );
    assert_eq!(
        Identifier::parse("xn--bcher-kva.example").unwrap(),
        Identifier::Dns("xn--bcher-kva.example".into())
    );
}

#[test]
fn example_names_from_the_rules() {
    assert!(Identifier::parse("*.example.com").is_ok());
    assert_eq!(rule_of("*.com"), Rule::InvalidWildcard);
    for bad in ["a.*.example.com", "*a.example.com", "**.x.com"] {
        let v = Identifier::parse(bad).unwrap_err();
        assert_eq!(v.rule, Rule::InvalidWildcard, "{bad}");
        assert!(v.message.contains("wildcard is allowed only as the whole leftmost label"), "{v}");
    }
    let v = normalize(&["srvdevapp01".into()], &RequestRules { public_ca: true }).unwrap_err();
    assert_eq!(v[0].rule, Rule::SingleLabel);
    assert!(v[0].to_string().contains("single-label intranet name"), "{}", v[0]);
}
