//! PKCS#12 files as an import reads them, fed in broken: a valid file (modern and legacy)
//! cut short or with bytes changed, and random bytes. Reading may refuse, saying why, but
//! never panics. The budget is fixed ([`CASES`] per property); the figures are in
//! docs/reliability.md.

use certhub_testkit::fuzz::{config, mutated, said_why};
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

fn read(der: &[u8]) -> Result<(), TestCaseError> {
    said_why(certhub_deploy::pkcs12::read(der, "pw"))
}

proptest! {
    #![proptest_config(config(CASES))]

    #[test]
    fn pkcs12_changed(der in mutated(valid(false))) {
        read(&der)?;
    }

    #[test]
    fn pkcs12_legacy_changed(der in mutated(valid(true))) {
        read(&der)?;
    }

    #[test]
    fn pkcs12_random(der in prop::collection::vec(any::<u8>(), 0..2000)) {
        read(&der)?;
    }
}
