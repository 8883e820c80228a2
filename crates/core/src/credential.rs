//! Stored credentials: named sets of secrets that challenge SPECs refer to
//! (`dns-01:rfc2136=HOST:PORT,credential=NAME`, `dns-01:callback=URL,credential=NAME`), kept
//! sealed in the store and read at each order, so that a rotation reaches every certificate
//! that uses one at its next order, and no secret is typed into a SPEC.

use std::collections::BTreeMap;

use crate::secret::Secret;

/// One field of a kind of credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    pub name: &'static str,
    /// Whether it is a secret: never shown back.
    pub secret: bool,
    /// Whether it must be given.
    pub required: bool,
    /// What it holds.
    pub about: &'static str,
}

/// A kind of credential: what it is for and its fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kind {
    pub name: &'static str,
    /// What uses it.
    pub about: &'static str,
    pub fields: &'static [Field],
}

/// The kinds of credential certhub keeps besides those of the DNS providers.
pub const KINDS: &[Kind] = &[
    Kind {
        name: "tsig",
        about: "a TSIG key for RFC 2136 updates: dns-01:rfc2136=HOST:PORT,credential=NAME",
        fields: &[
            Field { name: "key-name", secret: false, required: true, about: "the key's name" },
            Field {
                name: "key-secret",
                secret: true,
                required: true,
                about: "the key, base64 (as in BIND's key clause)",
            },
            Field {
                name: "algorithm",
                secret: false,
                required: false,
                about: "hmac-sha256 (the default), hmac-sha384 or hmac-sha512",
            },
        ],
    },
    Kind {
        name: "ssh",
        about: "a private key to sign in over SSH: sftp:…,credential=NAME and ssh:…,credential=NAME",
        fields: &[
            Field {
                name: "private-key",
                secret: true,
                required: true,
                about: "the private key, OpenSSH or PEM (--from-file private-key=PATH)",
            },
            Field {
                name: "passphrase",
                secret: true,
                required: false,
                about: "the private key's passphrase, if it has one",
            },
        ],
    },
    Kind {
        name: "callback",
        about: "a dns-01 callback channel: its signing key (dns-01:callback=URL,credential=NAME), \
                and with its URL a channel named once (dns-01:channel=NAME)",
        fields: &[
            Field {
                name: "secret",
                secret: true,
                required: true,
                about: "the HMAC-SHA256 key the events are signed with",
            },
            Field {
                name: "url",
                secret: false,
                required: false,
                about: "where the events go, for dns-01:channel=NAME",
            },
        ],
    },
];

/// Every kind: [`KINDS`], then one per DNS provider
/// ([`crate::dns_provider::PROVIDERS`]).
pub fn kinds() -> impl Iterator<Item = &'static Kind> {
    KINDS.iter().chain(crate::dns_provider::PROVIDERS)
}

/// The kind named `name`, or why there is none.
pub fn kind(name: &str) -> Result<&'static Kind, String> {
    kinds().find(|k| k.name == name).ok_or_else(|| {
        let names: Vec<&str> = KINDS.iter().map(|k| k.name).collect();
        format!(
            "there is no credential kind {name:?}; the kinds are {}, and each DNS provider's \
             name (`certhub dns providers` lists them)",
            names.join(", ")
        )
    })
}

impl Kind {
    /// The field named `name`.
    pub fn field(&self, name: &str) -> Option<&'static Field> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// Checks `values` against this kind's fields: each is one of them, none required is
    /// missing or empty.
    pub fn check(&self, values: &BTreeMap<String, Secret>) -> Result<(), String> {
        for name in values.keys() {
            if self.field(name).is_none() {
                let names: Vec<&str> = self.fields.iter().map(|f| f.name).collect();
                return Err(format!(
                    "a {} credential has no field {name:?}; its fields are {}",
                    self.name,
                    names.join(", ")
                ));
            }
        }
        for f in self.fields.iter().filter(|f| f.required) {
            if values.get(f.name).is_none_or(|v| v.expose().trim().is_empty()) {
                return Err(format!("a {} credential needs {} ({})", self.name, f.name, f.about));
            }
        }
        Ok(())
    }
}

/// Checks a credential's name: a name as certificates and channels have (see
/// [`crate::name`]).
pub fn check_name(name: &str) -> Result<(), String> {
    if crate::name::is_valid(name) {
        Ok(())
    } else {
        Err(format!("{name:?} is not a credential name: use {}", crate::name::RULE))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_credential_has_exactly_its_kinds_fields() {
        let tsig = kind("tsig").unwrap();
        let values = |pairs: &[(&str, &str)]| -> BTreeMap<String, Secret> {
            pairs.iter().map(|(k, v)| (k.to_string(), Secret::new(*v))).collect()
        };
        assert_eq!(tsig.check(&values(&[("key-name", "k"), ("key-secret", "czNjcmV0")])), Ok(()));
        let missing = tsig.check(&values(&[("key-name", "k")])).unwrap_err();
        assert!(missing.contains("needs key-secret"), "{missing}");
        let empty = tsig.check(&values(&[("key-name", "k"), ("key-secret", " ")])).unwrap_err();
        assert!(empty.contains("needs key-secret"), "{empty}");
        let unknown = tsig.check(&values(&[("key-name", "k"), ("token", "t")])).unwrap_err();
        assert!(unknown.contains("no field \"token\""), "{unknown}");
        assert!(kind("cloudfare").unwrap_err().contains("tsig, ssh, callback"));
        assert_eq!(kind("cloudflare").unwrap().fields[0].name, "api-token");
        assert!(check_name("dns-primary").is_ok());
        assert!(check_name("-x").is_err() && check_name("a b").is_err());
    }
}
