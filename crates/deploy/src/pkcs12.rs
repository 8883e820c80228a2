//! PKCS#12: AES-256-CBC with PBKDF2/HMAC-SHA256 and a SHA-256 MAC by default, or legacy
//! 3DES with a SHA-1 MAC for old Windows and Java key stores.

use p12_keystore::{
    Certificate, EncryptionAlgorithm, KeyStore, KeyStoreEntry, MacAlgorithm, PrivateKey,
    PrivateKeyChain,
};

use crate::Error;

/// A PKCS#12 file holding the key and the chain (leaf first) under `alias`.
pub fn build(
    alias: &str,
    key_pkcs8: &[u8],
    chain_der: &[Vec<u8>],
    password: &str,
    legacy: bool,
) -> Result<Vec<u8>, Error> {
    let key = PrivateKey::from_der(key_pkcs8)
        .map_err(|e| Error::Pkcs12(format!("the key cannot go into PKCS#12: {e}")))?;
    let certs = chain_der
        .iter()
        .map(|d| {
            Certificate::from_der(d)
                .map_err(|e| Error::Pkcs12(format!("a certificate cannot go into PKCS#12: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let local_key_id = aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        chain_der.first().map(Vec::as_slice).unwrap_or_default(),
    );
    let chain = PrivateKeyChain::new(local_key_id.as_ref()[..20].to_vec(), key, certs);
    let mut store = KeyStore::new();
    store.add_entry(alias, KeyStoreEntry::PrivateKeyChain(chain));
    let writer = store.writer(password);
    let writer = if legacy {
        writer
            .encryption_algorithm(EncryptionAlgorithm::PbeWithShaAnd3KeyTripleDesCbc)
            .mac_algorithm(MacAlgorithm::HmacSha1)
    } else {
        writer
            .encryption_algorithm(EncryptionAlgorithm::PbeWithHmacSha256AndAes256)
            .mac_algorithm(MacAlgorithm::HmacSha256)
    };
    writer.write().map_err(|e| Error::Pkcs12(format!("cannot write the PKCS#12 file: {e}")))
}

/// What a PKCS#12 file holds.
pub struct Contents {
    /// The private key, PKCS#8 DER.
    pub key_pkcs8: zeroize::Zeroizing<Vec<u8>>,
    /// The chain, leaf first, DER.
    pub chain_der: Vec<Vec<u8>>,
}

/// Reads a PKCS#12 file: the private key and its chain.
pub fn read(der: &[u8], password: &str) -> Result<Contents, Error> {
    let store =
        KeyStore::from_pkcs12(der, password, p12_keystore::Pkcs12ImportPolicy::default())
            .map_err(|e| Error::Pkcs12(format!("cannot open it (is the password right?): {e}")))?;
    let (_, chain) = store
        .private_key_chain()
        .ok_or_else(|| Error::Pkcs12("it holds no private key with a certificate".into()))?;
    Ok(Contents {
        key_pkcs8: zeroize::Zeroizing::new(chain.key().as_der().to_vec()),
        chain_der: chain.certs().iter().map(|c| c.as_der().to_vec()).collect(),
    })
}
