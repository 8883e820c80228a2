//! PKCS#12 files as an import reads them, fed in broken: a valid file (modern and legacy)
//! cut short or with bytes changed, and random bytes. Reading may refuse, saying why, but
//! never panics. The budget is fixed ([`CASES`] per property); the figures are in
//! docs/reliability.md.

use proptest::prelude::*;

const CASES: u32 = 20_000;

/// A PKCS#12 file of a fresh key and self-signed certificate, password `pw`.
fn valid(legacy: bool) -> Vec<u8> {
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec!["www.example.test".into()]).unwrap();
    let cert = params.self_signed(&key).unwrap();
    certhub_deploy::pkcs12::build("www", &key.serialize_der(), &[cert.der().to_vec()], "pw", legacy)
        .unwrap()
}

fn mutated(legacy: bool) -> impl Strategy<Value = Vec<u8>> {
    let valid = valid(legacy);
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

fn said_why(der: &[u8]) -> Result<(), TestCaseError> {
    if let Err(e) = certhub_deploy::pkcs12::read(der, "pw") {
        prop_assert!(!e.to_string().trim().is_empty(), "a refusal without a reason");
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: CASES, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn pkcs12_changed(der in mutated(false)) {
        said_why(&der)?;
    }

    #[test]
    fn pkcs12_legacy_changed(der in mutated(true)) {
        said_why(&der)?;
    }

    #[test]
    fn pkcs12_random(der in prop::collection::vec(any::<u8>(), 0..2000)) {
        said_why(&der)?;
    }
}
