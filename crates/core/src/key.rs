//! Key types and private keys: generation, PEM/PKCS#8 import and export.
//!
//! A [`PrivateKey`] always holds a PKCS#8 document. Keys given as SEC1 (`EC PRIVATE KEY`)
//! or PKCS#1 (`RSA PRIVATE KEY`) PEM are converted to PKCS#8 on import.

use std::fmt;
use std::str::FromStr;

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
use aws_lc_rs::rsa::KeyPair as RsaKeyPair;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_ASN1_SIGNING, ECDSA_P384_SHA384_ASN1_SIGNING, EcdsaKeyPair,
    EcdsaSigningAlgorithm,
};
use rcgen::{PublicKeyData, RsaKeySize, SignatureAlgorithm};
use serde::{Deserialize, Serialize};
use zeroize::Zeroize;

/// The key types certhub generates and accepts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum KeyType {
    /// ECDSA on NIST P-256 with SHA-256 (the default).
    #[default]
    #[serde(rename = "ec-p256")]
    EcP256,
    /// ECDSA on NIST P-384 with SHA-384.
    #[serde(rename = "ec-p384")]
    EcP384,
    /// RSA with a 2048-bit modulus.
    #[serde(rename = "rsa-2048")]
    Rsa2048,
    /// RSA with a 3072-bit modulus.
    #[serde(rename = "rsa-3072")]
    Rsa3072,
    /// RSA with a 4096-bit modulus.
    #[serde(rename = "rsa-4096")]
    Rsa4096,
}

impl KeyType {
    /// Every key type, in the order they are listed to users.
    pub const ALL: [KeyType; 5] =
        [Self::EcP256, Self::EcP384, Self::Rsa2048, Self::Rsa3072, Self::Rsa4096];

    /// The name used on the command line, in configuration and in serde.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::EcP256 => "ec-p256",
            Self::EcP384 => "ec-p384",
            Self::Rsa2048 => "rsa-2048",
            Self::Rsa3072 => "rsa-3072",
            Self::Rsa4096 => "rsa-4096",
        }
    }

    /// Is this an RSA key type?
    pub fn is_rsa(&self) -> bool {
        matches!(self, Self::Rsa2048 | Self::Rsa3072 | Self::Rsa4096)
    }

    /// The signature algorithm keys of this type sign certificates and CSRs with.
    pub fn signature_algorithm(&self) -> &'static SignatureAlgorithm {
        match self {
            Self::EcP256 => &rcgen::PKCS_ECDSA_P256_SHA256,
            Self::EcP384 => &rcgen::PKCS_ECDSA_P384_SHA384,
            Self::Rsa2048 | Self::Rsa3072 | Self::Rsa4096 => &rcgen::PKCS_RSA_SHA256,
        }
    }

    fn ec_algorithm(&self) -> Option<&'static EcdsaSigningAlgorithm> {
        match self {
            Self::EcP256 => Some(&ECDSA_P256_SHA256_ASN1_SIGNING),
            Self::EcP384 => Some(&ECDSA_P384_SHA384_ASN1_SIGNING),
            _ => None,
        }
    }

    fn rsa_from_bits(bits: usize) -> Option<Self> {
        match bits {
            2048 => Some(Self::Rsa2048),
            3072 => Some(Self::Rsa3072),
            4096 => Some(Self::Rsa4096),
            _ => None,
        }
    }
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for KeyType {
    type Err = KeyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim().to_ascii_lowercase();
        Self::ALL
            .into_iter()
            .find(|t| t.as_str() == wanted)
            .ok_or_else(|| KeyError::UnknownType { given: s.to_string() })
    }
}

/// Why a key could not be generated, read or used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The crypto library failed to generate a key.
    #[error("could not generate a {key_type} key: {reason}")]
    Generate {
        /// The key type asked for.
        key_type: KeyType,
        /// The library's reason.
        reason: String,
    },
    /// The input is not PEM, or has no private key block.
    #[error("the private key is not valid PEM: {0}")]
    Pem(String),
    /// The key is not a PKCS#8 (or SEC1/PKCS#1) key of a supported type.
    #[error("the private key could not be read: {0}")]
    Unreadable(String),
    /// The key is valid but of a type certhub does not use.
    #[error(
        "the private key is {0}; certhub supports ec-p256, ec-p384, rsa-2048, rsa-3072 and rsa-4096"
    )]
    Unsupported(String),
    /// A key type name that is not one of the supported ones.
    #[error(
        "unknown key type {given:?}; expected one of ec-p256, ec-p384, rsa-2048, rsa-3072, rsa-4096"
    )]
    UnknownType {
        /// The name as given.
        given: String,
    },
}

/// A private key as a PKCS#8 document. The bytes are wiped on drop, and `Debug` prints
/// only the key type.
#[derive(Clone, PartialEq, Eq)]
pub struct PrivateKey {
    key_type: KeyType,
    pkcs8: Vec<u8>,
}

impl PrivateKey {
    /// Generates a new random key of `key_type`.
    pub fn generate(key_type: KeyType) -> Result<PrivateKey, KeyError> {
        let fail = |e: rcgen::Error| KeyError::Generate { key_type, reason: e.to_string() };
        let pair = match key_type {
            KeyType::EcP256 | KeyType::EcP384 => {
                rcgen::KeyPair::generate_for(key_type.signature_algorithm()).map_err(fail)?
            }
            KeyType::Rsa2048 | KeyType::Rsa3072 | KeyType::Rsa4096 => {
                let size = match key_type {
                    KeyType::Rsa2048 => RsaKeySize::_2048,
                    KeyType::Rsa3072 => RsaKeySize::_3072,
                    _ => RsaKeySize::_4096,
                };
                rcgen::KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, size).map_err(fail)?
            }
        };
        Ok(PrivateKey { key_type, pkcs8: pair.serialize_der() })
    }

    /// Reads a key from PEM: `PRIVATE KEY` (PKCS#8), `EC PRIVATE KEY` (SEC1) or
    /// `RSA PRIVATE KEY` (PKCS#1). The first private key block is used; other blocks
    /// (certificates, EC parameters) are skipped.
    pub fn from_pem(input: &str) -> Result<PrivateKey, KeyError> {
        let blocks = pem::parse_many(input).map_err(|e| KeyError::Pem(e.to_string()))?;
        let block = blocks
            .into_iter()
            .find(|b| matches!(b.tag(), "PRIVATE KEY" | "EC PRIVATE KEY" | "RSA PRIVATE KEY"))
            .ok_or_else(|| {
                KeyError::Pem(
                    "no PRIVATE KEY, EC PRIVATE KEY or RSA PRIVATE KEY block found".to_string(),
                )
            })?;
        let tag = block.tag().to_string();
        let mut der = block.into_contents();
        let result = match tag.as_str() {
            "PRIVATE KEY" => Self::from_pkcs8_der(std::mem::take(&mut der)),
            "EC PRIVATE KEY" => sec1_to_pkcs8(&der).and_then(Self::from_pkcs8_der),
            _ => pkcs1_to_pkcs8(&der).and_then(Self::from_pkcs8_der),
        };
        der.zeroize();
        result
    }

    /// Reads a PKCS#8 DER key and detects its type.
    pub fn from_pkcs8_der(mut der: Vec<u8>) -> Result<PrivateKey, KeyError> {
        match detect_key_type(&der) {
            Ok(key_type) => Ok(PrivateKey { key_type, pkcs8: der }),
            Err(e) => {
                der.zeroize();
                Err(e)
            }
        }
    }

    /// The key as PEM, PKCS#8 (`-----BEGIN PRIVATE KEY-----`).
    pub fn to_pem(&self) -> String {
        crate::cert::pem_block("PRIVATE KEY", &self.pkcs8)
    }

    /// The PKCS#8 DER document.
    pub fn pkcs8_der(&self) -> &[u8] {
        &self.pkcs8
    }

    /// The key's type.
    pub fn key_type(&self) -> KeyType {
        self.key_type
    }

    /// The public key as a DER SubjectPublicKeyInfo.
    pub fn public_key_der(&self) -> Vec<u8> {
        self.to_rcgen().subject_public_key_info()
    }

    /// The key as an rcgen key pair, for signing CSRs and certificates.
    pub fn to_rcgen(&self) -> rcgen::KeyPair {
        // The document was checked to be a PKCS#8 key of `key_type` when this value was
        // made, so the crypto library accepts it and picks the matching algorithm.
        rcgen::KeyPair::try_from(self.pkcs8.as_slice())
            .expect("a PrivateKey holds a PKCS#8 key checked at construction")
    }
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrivateKey")
            .field("key_type", &self.key_type)
            .field("pkcs8", &"<redacted>")
            .finish()
    }
}

impl Drop for PrivateKey {
    fn drop(&mut self) {
        self.pkcs8.zeroize();
    }
}

fn detect_key_type(der: &[u8]) -> Result<KeyType, KeyError> {
    for key_type in [KeyType::EcP256, KeyType::EcP384] {
        if let Some(alg) = key_type.ec_algorithm()
            && EcdsaKeyPair::from_pkcs8(alg, der).is_ok()
        {
            return Ok(key_type);
        }
    }
    match RsaKeyPair::from_pkcs8(der) {
        Ok(pair) => {
            let bits = pair.public_modulus_len() * 8;
            KeyType::rsa_from_bits(bits)
                .ok_or_else(|| KeyError::Unsupported(format!("an RSA key of {bits} bits")))
        }
        Err(rsa_err) => {
            // Name what the key is when it is valid but unsupported (P-521, Ed25519).
            match rcgen::KeyPair::try_from(der) {
                Ok(other) => Err(KeyError::Unsupported(
                    if other.algorithm() == &rcgen::PKCS_ED25519 {
                        "an Ed25519 key"
                    } else {
                        "an EC key on a curve other than P-256 and P-384"
                    }
                    .to_string(),
                )),
                Err(_) => Err(KeyError::Unreadable(format!(
                    "not a PKCS#8 EC P-256, EC P-384 or RSA key ({rsa_err})"
                ))),
            }
        }
    }
}

fn sec1_to_pkcs8(der: &[u8]) -> Result<Vec<u8>, KeyError> {
    for key_type in [KeyType::EcP256, KeyType::EcP384] {
        if let Some(alg) = key_type.ec_algorithm()
            && let Ok(pair) = EcdsaKeyPair::from_private_key_der(alg, der)
        {
            return pair.to_pkcs8v1().map(|doc| doc.as_ref().to_vec()).map_err(|_| {
                KeyError::Unreadable("the EC key could not be re-encoded as PKCS#8".into())
            });
        }
    }
    Err(KeyError::Unreadable(
        "the EC PRIVATE KEY block is not a SEC1 key on P-256 or P-384".to_string(),
    ))
}

fn pkcs1_to_pkcs8(der: &[u8]) -> Result<Vec<u8>, KeyError> {
    let pair = RsaKeyPair::from_der(der).map_err(|e| {
        KeyError::Unreadable(format!("the RSA PRIVATE KEY block is not a PKCS#1 RSA key ({e})"))
    })?;
    let doc: Pkcs8V1Der<'static> = pair.as_der().map_err(|_| {
        KeyError::Unreadable("the RSA key could not be re-encoded as PKCS#8".into())
    })?;
    Ok(doc.as_ref().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_type_names_round_trip() {
        for t in KeyType::ALL {
            assert_eq!(t.as_str().parse::<KeyType>().unwrap(), t);
            assert_eq!(t.to_string(), t.as_str());
        }
        assert_eq!(KeyType::default(), KeyType::EcP256);
        assert_eq!(" RSA-2048 ".parse::<KeyType>().unwrap(), KeyType::Rsa2048);
    }

    #[test]
    fn unknown_key_type_lists_the_choices() {
        let err = "ed25519".parse::<KeyType>().unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("\"ed25519\""), "{msg}");
        for t in KeyType::ALL {
            assert!(msg.contains(t.as_str()), "{msg}");
        }
    }

    #[test]
    fn debug_does_not_show_key_material() {
        let key = PrivateKey::generate(KeyType::EcP256).unwrap();
        let dbg = format!("{key:?}");
        assert!(dbg.contains("<redacted>") && dbg.contains("EcP256"), "{dbg}");
        assert!(!dbg.contains(&format!("{:?}", &key.pkcs8_der()[..8])), "{dbg}");
    }
}
