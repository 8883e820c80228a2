//! Reading a managed certificate's record: the record itself, and the account that orders
//! it (its own, or the fallback after enough failures).

use certhub_store::{CertRecord, Store};

use crate::error::{Kind, fail, invalid};

/// The certificate `name`.
pub async fn load(store: &Store, name: &str) -> anyhow::Result<CertRecord> {
    store.cert(name).await?.ok_or_else(|| {
        fail(Kind::NotFound, format!("no certificate named {name:?} (see `certhub cert list`)"))
    })
}

/// The ACME account that orders `c`: an imported certificate without one is watched and
/// deployed, but not ordered, renewed or revoked through ACME.
pub fn acme_account(c: &CertRecord) -> anyhow::Result<&str> {
    c.account_name.as_deref().ok_or_else(|| {
        invalid(
            "account",
            format!(
                "certificate {} was imported and has no ACME account: certhub watches its expiry \
                 and runs its deployment tasks, but cannot order or revoke it (import it again \
                 with --account and --challenge to have it renewed by ACME)",
                c.name
            ),
        )
    })
}

/// The account the next request of `c` orders with, and whether it is the fallback: the
/// fallback once `fallback_after` requests in a row have failed, else its own.
pub fn ordering_account(c: &CertRecord) -> anyhow::Result<(&str, bool)> {
    match (&c.fallback_account, c.failures >= c.fallback_after) {
        (Some(fallback), true) => Ok((fallback.as_str(), true)),
        _ => Ok((acme_account(c)?, false)),
    }
}
