//! Keys, CSRs and certificate facts: generation, import/export and round trips.

use std::net::IpAddr;

use certhub_core::cert::{CertError, CertInfo, key_matches_cert, split_pem_chain};
use certhub_core::csr::{CsrError, ParsedCsr, build_csr};
use certhub_core::identifier::Identifier;
use certhub_core::key::{KeyError, KeyType, PrivateKey};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, SanType,
    SerialNumber, date_time_ymd,
};
use x509_parser::der_parser::parse_der;
use x509_parser::prelude::FromDer;
use x509_parser::x509::SubjectPublicKeyInfo;

fn dns(n: &str) -> Identifier {
    Identifier::Dns(n.to_string())
}

fn ip(s: &str) -> Identifier {
    Identifier::Ip(s.parse::<IpAddr>().unwrap())
}

fn request_ids() -> Vec<Identifier> {
    vec![dns("example.com"), dns("*.example.com"), ip("192.0.2.1"), ip("2001:db8::1")]
}

/// Checks a key end to end: PEM and DER round trips, a CSR that verifies and names every
/// identifier, and a certificate for it that matches the key.
fn check_key(key: &PrivateKey, key_type: KeyType) {
    assert_eq!(key.key_type(), key_type);

    let pem = key.to_pem();
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"), "{pem}");
    let from_pem = PrivateKey::from_pem(&pem).unwrap();
    assert_eq!(from_pem.key_type(), key_type);
    assert_eq!(from_pem.pkcs8_der(), key.pkcs8_der());
    let from_der = PrivateKey::from_pkcs8_der(key.pkcs8_der().to_vec()).unwrap();
    assert_eq!(from_der.key_type(), key_type);
    assert_eq!(from_der.public_key_der(), key.public_key_der());
    assert_eq!(key.to_rcgen().algorithm(), key_type.signature_algorithm());

    let spki_der = key.public_key_der();
    let (_, spki) = SubjectPublicKeyInfo::from_der(&spki_der).unwrap();
    let bits = match spki.parsed().unwrap() {
        x509_parser::public_key::PublicKey::RSA(rsa) => rsa.key_size(),
        x509_parser::public_key::PublicKey::EC(ec) => ec.key_size(),
        other => panic!("unexpected public key {other:?}"),
    };
    let expected_bits = match key_type {
        KeyType::EcP256 => 256,
        KeyType::EcP384 => 384,
        KeyType::Rsa2048 => 2048,
        KeyType::Rsa3072 => 3072,
        KeyType::Rsa4096 => 4096,
    };
    assert_eq!(bits, expected_bits);

    let ids = request_ids();
    let der = build_csr(key, &ids).unwrap();
    let parsed = ParsedCsr::parse(&der).unwrap();
    assert_eq!(parsed.common_name.as_deref(), Some("example.com"));
    assert_eq!(parsed.identifiers, ids);
    assert_eq!(parsed.der, der);
    assert_eq!(parsed.public_key_der, key.public_key_der());

    let pem_csr = pem::encode(&pem::Pem::new("CERTIFICATE REQUEST", der.clone()));
    assert_eq!(ParsedCsr::parse(pem_csr.as_bytes()).unwrap(), parsed);

    let cert = CertificateParams::new(vec!["example.com".to_string()])
        .unwrap()
        .self_signed(&key.to_rcgen())
        .unwrap();
    assert!(key_matches_cert(key, cert.der()));
}

#[test]
fn ec_keys_generate_round_trip_and_sign_csrs() {
    for key_type in [KeyType::EcP256, KeyType::EcP384] {
        let key = PrivateKey::generate(key_type).unwrap();
        check_key(&key, key_type);
    }
}

#[test]
fn rsa_2048_key_generates_round_trips_and_signs_csrs() {
    let key = PrivateKey::generate(KeyType::Rsa2048).unwrap();
    check_key(&key, KeyType::Rsa2048);
}

#[test]
fn rsa_3072_and_4096_keys_generate_round_trip_and_sign_csrs() {
    for key_type in [KeyType::Rsa3072, KeyType::Rsa4096] {
        let key = PrivateKey::generate(key_type).unwrap();
        check_key(&key, key_type);
    }
}

/// The inner private key of a PKCS#8 document (SEC1 for EC, PKCS#1 for RSA).
fn inner_key(pkcs8: &[u8]) -> Vec<u8> {
    let (_, obj) = parse_der(pkcs8).unwrap();
    let seq = obj.as_sequence().unwrap();
    seq[2].as_slice().unwrap().to_vec()
}

#[test]
fn imports_sec1_and_pkcs1_pem_as_pkcs8() {
    let ec = PrivateKey::generate(KeyType::EcP384).unwrap();
    let sec1 = pem::encode(&pem::Pem::new("EC PRIVATE KEY", inner_key(ec.pkcs8_der())));
    let imported = PrivateKey::from_pem(&sec1).unwrap();
    assert_eq!(imported.key_type(), KeyType::EcP384);
    assert_eq!(imported.public_key_der(), ec.public_key_der());
    assert!(imported.to_pem().starts_with("-----BEGIN PRIVATE KEY-----"));

    let rsa = PrivateKey::generate(KeyType::Rsa2048).unwrap();
    let pkcs1 = pem::encode(&pem::Pem::new("RSA PRIVATE KEY", inner_key(rsa.pkcs8_der())));
    let imported = PrivateKey::from_pem(&format!("junk before\n{pkcs1}")).unwrap();
    assert_eq!(imported.key_type(), KeyType::Rsa2048);
    assert_eq!(imported.public_key_der(), rsa.public_key_der());
}

#[test]
fn refuses_unsupported_and_unreadable_keys() {
    let ed = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let err = PrivateKey::from_pkcs8_der(ed.serialize_der()).unwrap_err();
    assert!(matches!(err, KeyError::Unsupported(_)), "{err}");
    assert!(err.to_string().contains("Ed25519"), "{err}");

    let p521 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P521_SHA512).unwrap();
    let err = PrivateKey::from_pkcs8_der(p521.serialize_der()).unwrap_err();
    assert!(matches!(err, KeyError::Unsupported(_)), "{err}");

    let err = PrivateKey::from_pkcs8_der(b"not a key".to_vec()).unwrap_err();
    assert!(matches!(err, KeyError::Unreadable(_)), "{err}");

    let err = PrivateKey::from_pem("no pem here").unwrap_err();
    assert!(matches!(err, KeyError::Pem(_)), "{err}");
    let cert_only = pem::encode(&pem::Pem::new("CERTIFICATE", vec![1, 2, 3]));
    let err = PrivateKey::from_pem(&cert_only).unwrap_err();
    assert!(matches!(err, KeyError::Pem(_)), "{err}");
}

#[test]
fn csr_common_name_is_first_dns_name_up_to_64_characters() {
    let key = PrivateKey::generate(KeyType::EcP256).unwrap();

    let long = format!("{}.example.com", "a".repeat(60));
    let ids = vec![dns(&long), dns("short.example.com")];
    let parsed = ParsedCsr::parse(&build_csr(&key, &ids).unwrap()).unwrap();
    assert_eq!(parsed.common_name, None);
    assert_eq!(parsed.identifiers, ids);

    let ids = vec![ip("192.0.2.7"), dns("www.example.org")];
    let parsed = ParsedCsr::parse(&build_csr(&key, &ids).unwrap()).unwrap();
    assert_eq!(parsed.common_name.as_deref(), Some("www.example.org"));
    assert_eq!(parsed.identifiers, ids);

    let ids = vec![ip("192.0.2.7")];
    let parsed = ParsedCsr::parse(&build_csr(&key, &ids).unwrap()).unwrap();
    assert_eq!(parsed.common_name, None);
    assert_eq!(parsed.identifiers, ids);

    assert_eq!(build_csr(&key, &[]), Err(CsrError::NoIdentifiers));
}

/// A CSR made directly with rcgen, as another tool would.
fn foreign_csr(key: &PrivateKey, cn: Option<&str>, sans: Vec<SanType>) -> Vec<u8> {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    if let Some(cn) = cn {
        params.distinguished_name.push(DnType::CommonName, cn);
    }
    params.distinguished_name.push(DnType::OrganizationName, "Example Org");
    params.subject_alt_names = sans;
    params.serialize_request(&key.to_rcgen()).unwrap().der().to_vec()
}

#[test]
fn csr_identifiers_include_a_dns_common_name_missing_from_the_sans() {
    let key = PrivateKey::generate(KeyType::EcP256).unwrap();

    // Only a CN, as some appliances produce.
    let der = foreign_csr(&key, Some("SecurityServer.Example.com"), vec![]);
    let parsed = ParsedCsr::parse(&der).unwrap();
    assert_eq!(parsed.common_name.as_deref(), Some("SecurityServer.Example.com"));
    assert_eq!(parsed.identifiers, vec![dns("securityserver.example.com")]);

    // CN not among the SANs comes first; SANs are normalised and deduplicated.
    let der = foreign_csr(
        &key,
        Some("cn.example.com"),
        vec![
            SanType::DnsName("WWW.example.com".try_into().unwrap()),
            SanType::DnsName("www.example.com.".try_into().unwrap()),
            SanType::IpAddress("10.0.0.1".parse().unwrap()),
        ],
    );
    let parsed = ParsedCsr::parse(&der).unwrap();
    assert_eq!(
        parsed.identifiers,
        vec![dns("cn.example.com"), dns("www.example.com"), ip("10.0.0.1")]
    );

    // A CN already among the SANs is not repeated, and a CN that is no DNS name is ignored.
    let der = foreign_csr(
        &key,
        Some("www.example.com"),
        vec![
            SanType::DnsName("api.example.com".try_into().unwrap()),
            SanType::DnsName("www.example.com".try_into().unwrap()),
        ],
    );
    let parsed = ParsedCsr::parse(&der).unwrap();
    assert_eq!(parsed.identifiers, vec![dns("api.example.com"), dns("www.example.com")]);
    let der = foreign_csr(
        &key,
        Some("My Web Server"),
        vec![SanType::DnsName("api.example.com".try_into().unwrap())],
    );
    let parsed = ParsedCsr::parse(&der).unwrap();
    assert_eq!(parsed.common_name.as_deref(), Some("My Web Server"));
    assert_eq!(parsed.identifiers, vec![dns("api.example.com")]);
}

#[test]
fn csr_with_bad_names_or_signature_is_refused() {
    let key = PrivateKey::generate(KeyType::EcP256).unwrap();

    let der =
        foreign_csr(&key, None, vec![SanType::Rfc822Name("admin@example.com".try_into().unwrap())]);
    let err = ParsedCsr::parse(&der).unwrap_err();
    assert!(matches!(err, CsrError::UnsupportedName(_)), "{err}");
    assert!(err.to_string().contains("admin@example.com"), "{err}");

    let der =
        foreign_csr(&key, None, vec![SanType::DnsName("a_b.example.com".try_into().unwrap())]);
    let err = ParsedCsr::parse(&der).unwrap_err();
    assert!(matches!(err, CsrError::Identifier(_)), "{err}");

    let der = foreign_csr(&key, None, vec![]);
    assert_eq!(ParsedCsr::parse(&der), Err(CsrError::NoIdentifiers));

    // Change one letter of the signed content: the structure stays valid, the signature not.
    let mut der = build_csr(&key, &[dns("example.com")]).unwrap();
    let at = der.windows(b"example".len()).position(|w| w == b"example").unwrap();
    der[at] = b'f';
    let err = ParsedCsr::parse(&der).unwrap_err();
    assert!(matches!(err, CsrError::Signature(_)), "{err}");

    let err = ParsedCsr::parse(b"\x30\x03\x02\x01\x00").unwrap_err();
    assert!(matches!(err, CsrError::Der(_)), "{err}");
    let wrong = pem::encode(&pem::Pem::new("CERTIFICATE", vec![1, 2, 3]));
    let err = ParsedCsr::parse(wrong.as_bytes()).unwrap_err();
    assert!(matches!(err, CsrError::Pem(_)), "{err}");
}

const NOT_BEFORE: i64 = 1_735_689_600; // 2025-01-01T00:00:00Z
const NOT_AFTER: i64 = 1_743_465_600; // 2025-04-01T00:00:00Z

#[test]
fn cert_info_reads_every_field_of_a_self_signed_certificate() {
    let key = PrivateKey::generate(KeyType::EcP256).unwrap();
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, "leaf.example.com");
    params.distinguished_name.push(DnType::OrganizationName, "certhub tests");
    params.serial_number = Some(SerialNumber::from_slice(&[0x9f, 0x01, 0x02]));
    params.not_before = date_time_ymd(2025, 1, 1);
    params.not_after = date_time_ymd(2025, 4, 1);
    params.subject_alt_names = vec![
        SanType::DnsName("leaf.example.com".try_into().unwrap()),
        SanType::DnsName("*.leaf.example.com".try_into().unwrap()),
        SanType::IpAddress("2001:db8::5".parse().unwrap()),
        SanType::URI("https://example.com/".try_into().unwrap()),
    ];
    let cert = params.self_signed(&key.to_rcgen()).unwrap();

    let info = CertInfo::from_der(cert.der()).unwrap();
    assert_eq!(info.serial_hex, "9f0102");
    assert_eq!(info.subject_cn.as_deref(), Some("leaf.example.com"));
    assert_eq!(info.issuer_cn.as_deref(), Some("leaf.example.com"));
    assert!(info.issuer_dn.contains("CN=leaf.example.com"), "{}", info.issuer_dn);
    assert!(info.issuer_dn.contains("O=certhub tests"), "{}", info.issuer_dn);
    assert_eq!(
        info.sans,
        vec![dns("leaf.example.com"), dns("*.leaf.example.com"), ip("2001:db8::5")]
    );
    assert_eq!(info.not_before, NOT_BEFORE);
    assert_eq!(info.not_after, NOT_AFTER);
    assert_eq!(info.leaf_der, cert.der().to_vec());
    assert_eq!(info.public_key_der, key.public_key_der());

    assert_eq!(CertInfo::from_pem_chain(&cert.pem()).unwrap(), info);
    assert!(key_matches_cert(&key, cert.der()));
    let other = PrivateKey::generate(KeyType::EcP256).unwrap();
    assert!(!key_matches_cert(&other, cert.der()));
    assert!(!key_matches_cert(&key, b"garbage"));
}

#[test]
fn chain_is_split_in_order_and_the_leaf_comes_first() {
    let ca_key = PrivateKey::generate(KeyType::EcP384).unwrap();
    let mut ca_params = CertificateParams::default();
    ca_params.distinguished_name = DistinguishedName::new();
    ca_params.distinguished_name.push(DnType::CommonName, "certhub test CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.serial_number = Some(SerialNumber::from_slice(&[0x01]));
    let ca_cert = ca_params.self_signed(&ca_key.to_rcgen()).unwrap();
    let ca_pair = ca_key.to_rcgen();
    let issuer = Issuer::from_params(&ca_params, &ca_pair);

    let leaf_key = PrivateKey::generate(KeyType::Rsa2048).unwrap();
    let mut leaf_params = CertificateParams::new(vec!["www.example.net".to_string()]).unwrap();
    leaf_params.distinguished_name = DistinguishedName::new();
    leaf_params.serial_number = Some(SerialNumber::from_slice(&[0x00, 0x00, 0x7a]));
    leaf_params.not_before = date_time_ymd(2025, 1, 1);
    leaf_params.not_after = date_time_ymd(2025, 4, 1);
    let leaf = leaf_params.signed_by(&leaf_key.to_rcgen(), &issuer).unwrap();

    let chain = format!("{}\n{}", leaf.pem(), ca_cert.pem());
    let ders = split_pem_chain(&chain).unwrap();
    assert_eq!(ders, vec![leaf.der().to_vec(), ca_cert.der().to_vec()]);

    let info = CertInfo::from_pem_chain(&chain).unwrap();
    assert_eq!(info.serial_hex, "7a");
    assert_eq!(info.issuer_cn.as_deref(), Some("certhub test CA"));
    assert_eq!(info.issuer_dn, "CN=certhub test CA");
    assert_eq!(info.subject_cn, None);
    assert_eq!(info.sans, vec![dns("www.example.net")]);
    assert_eq!((info.not_before, info.not_after), (NOT_BEFORE, NOT_AFTER));
    assert!(key_matches_cert(&leaf_key, &info.leaf_der));
    assert!(!key_matches_cert(&ca_key, &info.leaf_der));

    let ca_info = CertInfo::from_der(&ders[1]).unwrap();
    assert_eq!(ca_info.serial_hex, "01");
    assert_eq!(ca_info.subject_cn.as_deref(), Some("certhub test CA"));
}

#[test]
fn pem_without_certificates_is_refused() {
    assert_eq!(split_pem_chain("hello"), Err(CertError::NoCertificate));
    let key_only = PrivateKey::generate(KeyType::EcP256).unwrap().to_pem();
    assert_eq!(split_pem_chain(&key_only), Err(CertError::NoCertificate));
    let bad = pem::encode(&pem::Pem::new("CERTIFICATE", vec![1, 2, 3]));
    assert!(matches!(CertInfo::from_pem_chain(&bad), Err(CertError::Der(_))));
}
