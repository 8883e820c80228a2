//! The CAA pre-check: before an order, and in `cert test`, what each identifier's CAA
//! records say of the account's CA (its directory's `caaIdentities`), the account (RFC 8657
//! `accounturi`) and the validation method (`validationmethods`).

use certhub_acme::Account;
use certhub_challenge::dns::PropagationChecker;
use certhub_core::caa::{CaaQuestion, CaaVerdict, evaluate};
use certhub_core::{ChallengeKind, Identifier};

/// Each identifier of `assignment` with the kind of challenge that validates it.
pub(crate) fn kinds(
    assignment: &[(Identifier, usize)],
    specs: &[certhub_core::ChallengeSpec],
) -> Vec<(Identifier, ChallengeKind)> {
    assignment.iter().map(|(id, i)| (id.clone(), specs[*i].config.kind())).collect()
}

/// What CAA says of each DNS identifier (IP addresses have no CAA), validated with the kind
/// beside it, for `account`'s CA: a verdict, or why the records could not be read.
pub(crate) async fn check(
    checker: &PropagationChecker,
    account: &Account,
    ids: &[(Identifier, ChallengeKind)],
) -> Vec<(Identifier, Result<CaaVerdict, String>)> {
    let ca_domains = &account.client().directory().meta.caa_identities;
    let mut out = Vec::new();
    for (id, kind) in ids {
        let Identifier::Dns(name) = id else { continue };
        let verdict = checker.relevant_caa(name).await.map(|(owner, records)| {
            let q = CaaQuestion {
                ca_domains,
                account_uri: Some(account.url()),
                method: Some(kind.as_str()),
                wildcard: name.starts_with("*."),
            };
            evaluate(&owner, &records, &q)
        });
        out.push((id.clone(), verdict));
    }
    out
}
