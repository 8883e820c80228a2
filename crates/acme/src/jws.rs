//! JWS in the flattened JSON serialization (RFC 7515 §7.2.2), as ACME uses it.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use crate::Error;
use crate::key::SigningKey;

/// base64url without padding.
pub(crate) fn b64(data: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(data)
}

/// Decodes base64url, with or without padding.
pub(crate) fn unb64(data: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(data.trim_end_matches('=')).ok()
}

/// How the signer is named in the protected header.
#[derive(Clone, Copy)]
pub(crate) enum KeyId<'a> {
    /// `jwk`: newAccount, revocation with the certificate key, the inner keyChange JWS.
    Jwk,
    /// `kid`: the account URL, for every other request.
    Kid(&'a str),
}

/// Signs `payload` (`None` for POST-as-GET, whose payload is the empty string).
pub(crate) fn sign(
    key: &SigningKey,
    id: KeyId<'_>,
    nonce: Option<&str>,
    url: &str,
    payload: Option<&Value>,
) -> Result<Value, Error> {
    let mut protected = json!({ "alg": key.algorithm().jws_alg(), "url": url });
    if let Some(nonce) = nonce {
        protected["nonce"] = Value::String(nonce.to_string());
    }
    match id {
        KeyId::Jwk => protected["jwk"] = key.jwk().clone(),
        KeyId::Kid(kid) => protected["kid"] = Value::String(kid.to_string()),
    }
    let protected = b64(protected.to_string().as_bytes());
    let payload = match payload {
        Some(p) => b64(p.to_string().as_bytes()),
        None => String::new(),
    };
    let signature = key.sign(format!("{protected}.{payload}").as_bytes())?;
    Ok(json!({ "protected": protected, "payload": payload, "signature": b64(&signature) }))
}

/// The MAC algorithms for External Account Binding (RFC 8555 §7.3.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EabAlgorithm {
    /// HMAC-SHA256 (`HS256`), what CAs issue by default.
    #[default]
    Hs256,
    /// HMAC-SHA384 (`HS384`).
    Hs384,
    /// HMAC-SHA512 (`HS512`).
    Hs512,
}

/// External Account Binding credentials: the CA's key identifier and HMAC key.
#[derive(Clone)]
pub struct ExternalAccountKey {
    kid: String,
    hmac_key: Vec<u8>,
    algorithm: EabAlgorithm,
}

impl std::fmt::Debug for ExternalAccountKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExternalAccountKey")
            .field("kid", &self.kid)
            .field("hmac_key", &"<redacted>")
            .field("algorithm", &self.algorithm)
            .finish()
    }
}

impl ExternalAccountKey {
    /// `hmac_key_b64url` is the key as CAs hand it out: base64url, usually without padding.
    pub fn new(
        kid: impl Into<String>,
        hmac_key_b64url: &str,
        algorithm: EabAlgorithm,
    ) -> Result<Self, Error> {
        let hmac_key = unb64(hmac_key_b64url.trim()).ok_or_else(|| {
            Error::Key("the EAB HMAC key is not base64url (as the CA issued it)".into())
        })?;
        if hmac_key.is_empty() {
            return Err(Error::Key("the EAB HMAC key is empty".into()));
        }
        // RFC 7518 §3.2: a key at least as long as the hash's output.
        let (name, least) = match algorithm {
            EabAlgorithm::Hs256 => ("HS256", 32),
            EabAlgorithm::Hs384 => ("HS384", 48),
            EabAlgorithm::Hs512 => ("HS512", 64),
        };
        if hmac_key.len() < least {
            return Err(Error::Key(format!(
                "the EAB HMAC key is {} bytes, too short for {name}, which needs at least {least}; \
                 check the algorithm the CA gave with the key (a {}-byte key is for HS256)",
                hmac_key.len(),
                hmac_key.len()
            )));
        }
        Ok(Self { kid: kid.into(), hmac_key, algorithm })
    }

    /// The key identifier.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The `externalAccountBinding` JWS binding `account_jwk` to this key, for `url` (newAccount).
    pub(crate) fn bind(&self, account_jwk: &Value, url: &str) -> Value {
        let (alg, hmac) = match self.algorithm {
            EabAlgorithm::Hs256 => ("HS256", aws_lc_rs::hmac::HMAC_SHA256),
            EabAlgorithm::Hs384 => ("HS384", aws_lc_rs::hmac::HMAC_SHA384),
            EabAlgorithm::Hs512 => ("HS512", aws_lc_rs::hmac::HMAC_SHA512),
        };
        let protected =
            b64(json!({ "alg": alg, "kid": self.kid, "url": url }).to_string().as_bytes());
        let payload = b64(account_jwk.to_string().as_bytes());
        let key = aws_lc_rs::hmac::Key::new(hmac, &self.hmac_key);
        let tag = aws_lc_rs::hmac::sign(&key, format!("{protected}.{payload}").as_bytes());
        json!({ "protected": protected, "payload": payload, "signature": b64(tag.as_ref()) })
    }
}

impl Drop for ExternalAccountKey {
    fn drop(&mut self) {
        self.hmac_key.iter_mut().for_each(|b| *b = 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::KeyAlgorithm;

    #[test]
    fn eab_binding_verifies_with_each_algorithm() {
        let account = SigningKey::generate(KeyAlgorithm::EcP256).unwrap();
        for (alg, h) in [
            (EabAlgorithm::Hs256, aws_lc_rs::hmac::HMAC_SHA256),
            (EabAlgorithm::Hs384, aws_lc_rs::hmac::HMAC_SHA384),
            (EabAlgorithm::Hs512, aws_lc_rs::hmac::HMAC_SHA512),
        ] {
            let eab = ExternalAccountKey::new("kid-1", &b64(&[7u8; 64]), alg).unwrap();
            let jws = eab.bind(account.jwk(), "https://ca/new-acct");
            let signing_input = format!(
                "{}.{}",
                jws["protected"].as_str().unwrap(),
                jws["payload"].as_str().unwrap()
            );
            let key = aws_lc_rs::hmac::Key::new(h, &[7u8; 64]);
            let sig = unb64(jws["signature"].as_str().unwrap()).unwrap();
            aws_lc_rs::hmac::verify(&key, signing_input.as_bytes(), &sig).unwrap();
            let payload: Value =
                serde_json::from_slice(&unb64(jws["payload"].as_str().unwrap()).unwrap()).unwrap();
            assert_eq!(&payload, account.jwk());
        }
    }

    #[test]
    fn post_as_get_has_an_empty_payload() {
        let k = SigningKey::generate(KeyAlgorithm::EcP256).unwrap();
        let jws =
            sign(&k, KeyId::Kid("https://ca/acct/1"), Some("n1"), "https://ca/x", None).unwrap();
        assert_eq!(jws["payload"], "");
        let header: Value =
            serde_json::from_slice(&unb64(jws["protected"].as_str().unwrap()).unwrap()).unwrap();
        assert_eq!(header["kid"], "https://ca/acct/1");
        assert_eq!(header["nonce"], "n1");
        assert!(header.get("jwk").is_none());
    }

    #[test]
    fn an_eab_key_shorter_than_its_hash_is_refused_before_sending() {
        let key = b64(&[7u8; 32]);
        assert!(ExternalAccountKey::new("kid-1", &key, EabAlgorithm::Hs256).is_ok());
        for (alg, name, least) in
            [(EabAlgorithm::Hs384, "HS384", 48), (EabAlgorithm::Hs512, "HS512", 64)]
        {
            let e = ExternalAccountKey::new("kid-1", &key, alg).expect_err("too short");
            let said = e.to_string();
            assert!(said.contains(&format!("32 bytes, too short for {name}")), "{said}");
            assert!(said.contains(&format!("at least {least}")), "{said}");
        }
    }
}
