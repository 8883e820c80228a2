//! Account and certificate keys as JWS signers: ES256, ES384 and RS256 (RFC 7518).

use std::fmt;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    self, ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair,
    KeyPair as _, RsaKeyPair,
};
use serde_json::{Value, json};

use crate::Error;
use crate::jws::b64;

/// The algorithms a [`SigningKey`] can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeyAlgorithm {
    /// ECDSA P-256 with SHA-256 (`ES256`).
    EcP256,
    /// ECDSA P-384 with SHA-384 (`ES384`).
    EcP384,
    /// RSA 2048 with PKCS#1 v1.5 and SHA-256 (`RS256`).
    Rsa2048,
    /// RSA 3072 (`RS256`).
    Rsa3072,
    /// RSA 4096 (`RS256`).
    Rsa4096,
}

impl KeyAlgorithm {
    /// The JWS `alg` value.
    pub fn jws_alg(&self) -> &'static str {
        match self {
            Self::EcP256 => "ES256",
            Self::EcP384 => "ES384",
            Self::Rsa2048 | Self::Rsa3072 | Self::Rsa4096 => "RS256",
        }
    }
}

enum Inner {
    Ec(EcdsaKeyPair),
    Rsa(RsaKeyPair),
}

/// A private key that signs JWS messages: an ACME account key, or a certificate's key when
/// it revokes its own certificate.
pub struct SigningKey {
    inner: Inner,
    algorithm: KeyAlgorithm,
    pkcs8: Vec<u8>,
    jwk: Value,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("algorithm", &self.algorithm)
            .field("key", &"<redacted>")
            .finish()
    }
}

impl Drop for SigningKey {
    fn drop(&mut self) {
        self.pkcs8.iter_mut().for_each(|b| *b = 0);
    }
}

impl SigningKey {
    /// Generates a new key.
    pub fn generate(algorithm: KeyAlgorithm) -> Result<Self, Error> {
        let failed = |_| Error::Key(format!("could not generate a {algorithm:?} key"));
        let pkcs8 = match algorithm {
            KeyAlgorithm::EcP256 | KeyAlgorithm::EcP384 => {
                let alg = if algorithm == KeyAlgorithm::EcP256 {
                    &ECDSA_P256_SHA256_FIXED_SIGNING
                } else {
                    &ECDSA_P384_SHA384_FIXED_SIGNING
                };
                EcdsaKeyPair::generate(alg)
                    .and_then(|k| k.to_pkcs8v1())
                    .map_err(failed)?
                    .as_ref()
                    .to_vec()
            }
            KeyAlgorithm::Rsa2048 | KeyAlgorithm::Rsa3072 | KeyAlgorithm::Rsa4096 => {
                let size = match algorithm {
                    KeyAlgorithm::Rsa2048 => KeySize::Rsa2048,
                    KeyAlgorithm::Rsa3072 => KeySize::Rsa3072,
                    _ => KeySize::Rsa4096,
                };
                RsaKeyPair::generate(size)
                    .and_then(|k| k.as_der())
                    .map_err(failed)?
                    .as_ref()
                    .to_vec()
            }
        };
        Self::from_pkcs8(&pkcs8)
    }

    /// Loads a PKCS#8 DER key (EC P-256, EC P-384 or RSA 2048/3072/4096).
    pub fn from_pkcs8(der: &[u8]) -> Result<Self, Error> {
        if let Ok(k) = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der) {
            return Ok(Self::ec(k, KeyAlgorithm::EcP256, "P-256", 32, der));
        }
        if let Ok(k) = EcdsaKeyPair::from_pkcs8(&ECDSA_P384_SHA384_FIXED_SIGNING, der) {
            return Ok(Self::ec(k, KeyAlgorithm::EcP384, "P-384", 48, der));
        }
        let k = RsaKeyPair::from_pkcs8(der).map_err(|e| {
            Error::Key(format!("the key is not a PKCS#8 EC P-256, EC P-384 or RSA key ({e})"))
        })?;
        let algorithm = match k.public_modulus_len() * 8 {
            2048 => KeyAlgorithm::Rsa2048,
            3072 => KeyAlgorithm::Rsa3072,
            4096 => KeyAlgorithm::Rsa4096,
            bits => {
                return Err(Error::Key(format!(
                    "RSA keys of {bits} bits are not supported; use 2048, 3072 or 4096"
                )));
            }
        };
        let public = k.public_key();
        let jwk = json!({
            "e": b64(public.exponent().big_endian_without_leading_zero()),
            "kty": "RSA",
            "n": b64(public.modulus().big_endian_without_leading_zero()),
        });
        Ok(Self { inner: Inner::Rsa(k), algorithm, pkcs8: der.to_vec(), jwk })
    }

    fn ec(k: EcdsaKeyPair, algorithm: KeyAlgorithm, crv: &str, len: usize, der: &[u8]) -> Self {
        // An uncompressed point: 0x04 || x || y, each coordinate `len` bytes.
        let point = k.public_key().as_ref();
        let (x, y) = point[1..].split_at(len);
        let jwk = json!({ "crv": crv, "kty": "EC", "x": b64(x), "y": b64(y) });
        Self { inner: Inner::Ec(k), algorithm, pkcs8: der.to_vec(), jwk }
    }

    /// The key's algorithm.
    pub fn algorithm(&self) -> KeyAlgorithm {
        self.algorithm
    }

    /// The PKCS#8 DER encoding, for storage.
    pub fn pkcs8_der(&self) -> &[u8] {
        &self.pkcs8
    }

    /// The public key as a JWK (RFC 7517), members in lexicographic order.
    pub fn jwk(&self) -> &Value {
        &self.jwk
    }

    /// The RFC 7638 thumbprint, base64url.
    pub fn thumbprint(&self) -> String {
        // serde_json's Map is ordered by key (no `preserve_order`), and the JWK holds only
        // the required members, so this is the canonical form.
        let canonical = self.jwk.to_string();
        b64(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, canonical.as_bytes()).as_ref())
    }

    /// Signs `message`.
    pub(crate) fn sign(&self, message: &[u8]) -> Result<Vec<u8>, Error> {
        let rng = SystemRandom::new();
        match &self.inner {
            Inner::Ec(k) => k
                .sign(&rng, message)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| Error::Key("ECDSA signing failed".into())),
            Inner::Rsa(k) => {
                let mut sig = vec![0; k.public_modulus_len()];
                k.sign(&signature::RSA_PKCS1_SHA256, &rng, message, &mut sig)
                    .map_err(|_| Error::Key("RSA signing failed".into()))?;
                Ok(sig)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thumbprint_matches_rfc7638_example() {
        // The RSA key of RFC 7638 §3.1 has this thumbprint; rebuild its JWK directly.
        let jwk = json!({
            "e": "AQAB",
            "kty": "RSA",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
        });
        let canonical = jwk.to_string();
        let got =
            b64(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, canonical.as_bytes())
                .as_ref());
        assert_eq!(got, "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
    }

    #[test]
    fn every_algorithm_round_trips_through_pkcs8() {
        for alg in [KeyAlgorithm::EcP256, KeyAlgorithm::EcP384, KeyAlgorithm::Rsa2048] {
            let k = SigningKey::generate(alg).unwrap();
            let again = SigningKey::from_pkcs8(k.pkcs8_der()).unwrap();
            assert_eq!(again.algorithm(), alg);
            assert_eq!(again.jwk(), k.jwk());
            assert_eq!(again.thumbprint(), k.thumbprint());
            assert!(!k.sign(b"x").unwrap().is_empty());
        }
    }

    #[test]
    fn debug_redacts_the_key() {
        let k = SigningKey::generate(KeyAlgorithm::EcP256).unwrap();
        assert!(!format!("{k:?}").contains(&b64(k.pkcs8_der())));
        assert!(format!("{k:?}").contains("redacted"));
    }
}
