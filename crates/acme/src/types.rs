//! RFC 8555 resources as the CA sends them.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::Problem;

/// The directory (RFC 8555 §7.1.1), with ARI's `renewalInfo` (RFC 9773).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Directory {
    /// newNonce URL.
    pub new_nonce: String,
    /// newAccount URL.
    pub new_account: String,
    /// newOrder URL.
    pub new_order: String,
    /// newAuthz URL (pre-authorization), if offered.
    #[serde(default)]
    pub new_authz: Option<String>,
    /// revokeCert URL.
    pub revoke_cert: String,
    /// keyChange URL.
    pub key_change: String,
    /// renewalInfo URL (RFC 9773), if the CA offers ARI.
    #[serde(default)]
    pub renewal_info: Option<String>,
    /// Metadata.
    #[serde(default)]
    pub meta: Meta,
}

/// Directory metadata.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Meta {
    /// The CA's terms of service.
    #[serde(default)]
    pub terms_of_service: Option<String>,
    /// The CA's web site.
    #[serde(default)]
    pub website: Option<String>,
    /// Domains the CA recognises in CAA records.
    #[serde(default)]
    pub caa_identities: Vec<String>,
    /// Whether newAccount needs External Account Binding.
    #[serde(default)]
    pub external_account_required: bool,
    /// Certificate profiles (draft-ietf-acme-profiles): name → description.
    #[serde(default)]
    pub profiles: BTreeMap<String, String>,
}

/// The kinds of identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum IdentifierType {
    /// A DNS name.
    Dns,
    /// An IP address (RFC 8738).
    Ip,
}

/// An identifier on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize, Serialize)]
pub struct Identifier {
    /// dns or ip.
    #[serde(rename = "type")]
    pub kind: IdentifierType,
    /// The name or address.
    pub value: String,
}

impl Identifier {
    /// A DNS identifier.
    pub fn dns(value: impl Into<String>) -> Self {
        Self { kind: IdentifierType::Dns, value: value.into() }
    }

    /// An IP identifier.
    pub fn ip(addr: std::net::IpAddr) -> Self {
        Self { kind: IdentifierType::Ip, value: addr.to_string() }
    }
}

impl fmt::Display for Identifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.value)
    }
}

macro_rules! status_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
        #[serde(rename_all = "lowercase")]
        pub enum $name { $($(#[$vdoc])* $variant),* }
    };
}

status_enum!(
    /// Account status (§7.1.2).
    AccountStatus {
        /// Deactivated by its holder.
        Deactivated,
        /// Revoked by the CA.
        Revoked,
        /// Usable.
        Valid,
    }
);

status_enum!(
    /// Order status (§7.1.3).
    OrderStatus {
        /// Failed; see `error`.
        Invalid,
        /// Authorizations outstanding.
        Pending,
        /// The CA is issuing.
        Processing,
        /// Every authorization is valid; finalize may be called.
        Ready,
        /// The certificate has been issued.
        Valid,
    }
);

status_enum!(
    /// Authorization status (§7.1.4).
    AuthorizationStatus {
        /// Deactivated by the account.
        Deactivated,
        /// Expired.
        Expired,
        /// Failed.
        Invalid,
        /// Waiting for a challenge.
        Pending,
        /// Revoked by the CA.
        Revoked,
        /// Validated.
        Valid,
    }
);

status_enum!(
    /// Challenge status (§7.1.6).
    ChallengeStatus {
        /// Failed; see `error`.
        Invalid,
        /// Not yet answered.
        Pending,
        /// The CA is validating.
        Processing,
        /// Validated.
        Valid,
    }
);

/// An account (§7.1.2).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountResource {
    /// Status.
    pub status: AccountStatus,
    /// Contact URLs (`mailto:`).
    #[serde(default)]
    pub contact: Vec<String>,
    /// Orders list URL.
    #[serde(default)]
    pub orders: Option<String>,
}

/// An order (§7.1.3) with ARI's `replaces` and the profile.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Order {
    /// Status.
    pub status: OrderStatus,
    /// When a pending or valid order expires (RFC 3339).
    #[serde(default)]
    pub expires: Option<String>,
    /// The identifiers.
    pub identifiers: Vec<Identifier>,
    /// Requested notBefore.
    #[serde(default)]
    pub not_before: Option<String>,
    /// Requested notAfter.
    #[serde(default)]
    pub not_after: Option<String>,
    /// Why the order failed.
    #[serde(default)]
    pub error: Option<Problem>,
    /// Authorization URLs.
    #[serde(default)]
    pub authorizations: Vec<String>,
    /// Finalize URL.
    pub finalize: String,
    /// Certificate URL once valid.
    #[serde(default)]
    pub certificate: Option<String>,
    /// The ARI certificate identifier this order replaces.
    #[serde(default)]
    pub replaces: Option<String>,
    /// The profile.
    #[serde(default)]
    pub profile: Option<String>,
}

/// An authorization (§7.1.4).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Authorization {
    /// The identifier (for a wildcard, the base name with `wildcard: true`).
    pub identifier: Identifier,
    /// Status.
    pub status: AuthorizationStatus,
    /// Expiry (RFC 3339).
    #[serde(default)]
    pub expires: Option<String>,
    /// Challenges offered.
    #[serde(default)]
    pub challenges: Vec<Challenge>,
    /// Whether this authorizes a wildcard.
    #[serde(default)]
    pub wildcard: bool,
}

/// Challenge types; unknown ones are kept by name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ChallengeType {
    /// dns-01.
    Dns01,
    /// http-01.
    Http01,
    /// tls-alpn-01.
    TlsAlpn01,
    /// Any other type.
    Unknown(String),
}

impl ChallengeType {
    /// The wire name.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Dns01 => "dns-01",
            Self::Http01 => "http-01",
            Self::TlsAlpn01 => "tls-alpn-01",
            Self::Unknown(s) => s,
        }
    }
}

impl fmt::Display for ChallengeType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ChallengeType {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ChallengeType {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(match s.as_str() {
            "dns-01" => Self::Dns01,
            "http-01" => Self::Http01,
            "tls-alpn-01" => Self::TlsAlpn01,
            _ => Self::Unknown(s),
        })
    }
}

/// A challenge (§7.1.5).
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Challenge {
    /// Type.
    #[serde(rename = "type")]
    pub kind: ChallengeType,
    /// URL to respond to and poll.
    pub url: String,
    /// Status.
    pub status: ChallengeStatus,
    /// Token (http-01, dns-01, tls-alpn-01).
    #[serde(default)]
    pub token: Option<String>,
    /// When it was validated.
    #[serde(default)]
    pub validated: Option<String>,
    /// Why validation failed.
    #[serde(default)]
    pub error: Option<Problem>,
}

/// Revocation reason codes (RFC 5280 §5.3.1) that ACME accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RevocationReason {
    /// 3: the subscriber's affiliation changed.
    AffiliationChanged = 3,
    /// 6: certificate hold.
    CertificateHold = 6,
    /// 5: the operation ceased.
    CessationOfOperation = 5,
    /// 1: the key was compromised.
    KeyCompromise = 1,
    /// 9: privilege withdrawn.
    PrivilegeWithdrawn = 9,
    /// 4: superseded by a new certificate.
    Superseded = 4,
    /// 0: no reason given.
    Unspecified = 0,
}

impl RevocationReason {
    /// Every reason with its command-line name.
    pub const ALL: [(&'static str, RevocationReason); 7] = [
        ("unspecified", Self::Unspecified),
        ("key-compromise", Self::KeyCompromise),
        ("affiliation-changed", Self::AffiliationChanged),
        ("superseded", Self::Superseded),
        ("cessation-of-operation", Self::CessationOfOperation),
        ("certificate-hold", Self::CertificateHold),
        ("privilege-withdrawn", Self::PrivilegeWithdrawn),
    ];

    /// The RFC 5280 code.
    pub fn code(self) -> u8 {
        self as u8
    }
}

impl std::str::FromStr for RevocationReason {
    type Err = String;

    /// Takes a reason by its RFC 5280 name (`keyCompromise`), its command-line name
    /// (`key-compromise`, or with `_`), in any case, or by its code (`1`).
    fn from_str(s: &str) -> Result<Self, String> {
        let squash = |t: &str| -> String {
            t.chars().filter(|c| !matches!(c, '-' | '_')).map(|c| c.to_ascii_lowercase()).collect()
        };
        let norm = squash(s.trim());
        Self::ALL
            .iter()
            .find(|(name, r)| squash(name) == norm || r.code().to_string() == s.trim())
            .map(|(_, r)| *r)
            .ok_or_else(|| {
                let names: Vec<_> = Self::ALL.iter().map(|(n, _)| *n).collect();
                format!(
                    "unknown revocation reason {s:?}; expected one of {} (or RFC 5280's \
                     keyCompromise form, or the code)",
                    names.join(", ")
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::RevocationReason;

    #[test]
    fn revocation_reasons_by_rfc_name_kebab_name_or_code() {
        for text in ["keyCompromise", "key-compromise", "KEY_COMPROMISE", "1", " keycompromise "] {
            assert_eq!(
                text.parse::<RevocationReason>(),
                Ok(RevocationReason::KeyCompromise),
                "{text}"
            );
        }
        assert_eq!("cessationOfOperation".parse(), Ok(RevocationReason::CessationOfOperation));
        assert_eq!("0".parse(), Ok(RevocationReason::Unspecified));
        for bad in ["", "7", "compromised", "key compromise"] {
            let e = bad.parse::<RevocationReason>().unwrap_err();
            assert!(e.contains("key-compromise") && e.contains("keyCompromise"), "{e}");
        }
    }
}
