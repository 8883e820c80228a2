//! Import: certificates obtained elsewhere become managed certificates whose expiry is
//! watched and whose deployment tasks run; ACME renews them only when they have an account.

use certhub_core::cert::{CertInfo, key_matches_cert, split_pem_chain};
use certhub_core::identifier::{RequestRules, assign_challenges, normalize};
use certhub_core::{Identifier, PrivateKey};
use certhub_store::{AuditEntry, CertRecord, IssuedRecord, Store};
use zeroize::Zeroizing;

use crate::account::{self, check_name};
use crate::cert::parse_challenges;
use crate::clock::{now_secs, rfc3339};
use crate::deploy::Scope;
use crate::error::invalid;
use crate::error::violations;

/// A certificate obtained elsewhere (`POST /api/v1/certificates/import`, `certhub cert
/// import`): PEM, or PKCS#12.
#[derive(Clone, Default, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Import {
    /// Its name.
    pub name: String,
    /// The certificate and its chain, PEM, leaf first (the key may follow).
    #[serde(default)]
    pub cert_pem: Option<String>,
    /// The private key, PEM.
    #[serde(default)]
    pub key_pem: Option<String>,
    /// A PKCS#12 file, base64, instead of PEM.
    #[serde(default)]
    pub pkcs12_base64: Option<String>,
    /// The PKCS#12 file's password.
    #[serde(default)]
    pub password: Option<String>,
    /// Have ACME renew it with this account (needs `challenges`).
    #[serde(default)]
    pub account: Option<String>,
    /// Challenge SPECs for ACME renewals.
    #[serde(default)]
    pub challenges: Vec<String>,
    /// Deployment SPECs.
    #[serde(default)]
    pub deploy: Vec<String>,
}

impl std::fmt::Debug for Import {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Import").field("name", &self.name).finish_non_exhaustive()
    }
}

impl Import {
    /// The certificate and key it carries: PEM text, or a base64 PKCS#12 file.
    pub fn bundle(&self) -> anyhow::Result<Bundle> {
        match (&self.cert_pem, &self.pkcs12_base64) {
            (Some(pem), None) => bundle_from_pem(pem, self.key_pem.as_deref()),
            (None, Some(b64)) => {
                use base64::Engine as _;
                let der =
                    base64::engine::general_purpose::STANDARD.decode(b64.trim()).map_err(|e| {
                        invalid("pkcs12_base64", format!("pkcs12_base64 is not base64: {e}"))
                    })?;
                bundle_from_pkcs12(&der, self.password.as_deref().unwrap_or_default())
            }
            _ => Err(invalid("cert_pem", "give cert_pem (and key_pem), or pkcs12_base64")),
        }
    }
}

/// A certificate's chain (leaf first) and its key, if any, as read.
pub struct Bundle {
    chain: Vec<Vec<u8>>,
    key: Option<PrivateKey>,
}

/// What an import did.
#[derive(Debug, Clone)]
pub struct Imported {
    /// The serial, issuer and expiry, in words; `None` when the certificate already held it.
    pub detail: Option<String>,
    /// The names the certificate is for.
    pub names: Vec<String>,
    /// Whether it came without its private key.
    pub keyless: bool,
    /// The ACME account that renews it, if any.
    pub account: Option<String>,
    /// What each deployment task did.
    pub deployed: Vec<(String, String)>,
    /// Whether it had expired already.
    pub expired: bool,
}

/// Imports `bundle` as certificate `args.name` (the files of `args` are not read) and runs
/// its deployment tasks. A failed deployment is an error that still carries what was
/// imported.
pub async fn import(
    store: &Store,
    args: &Import,
    bundle: Bundle,
    audit: AuditEntry,
) -> Result<Imported, (anyhow::Error, Option<Imported>)> {
    import_inner(store, args, bundle, audit).await.map_err(|e| (e, None)).and_then(
        |(i, failure)| match failure {
            None => Ok(i),
            Some(e) => Err((e, Some(i))),
        },
    )
}

async fn import_inner(
    store: &Store,
    args: &Import,
    bundle: Bundle,
    audit: AuditEntry,
) -> anyhow::Result<(Imported, Option<anyhow::Error>)> {
    check_name("certificate", &args.name)?;
    let leaf = CertInfo::from_der(&bundle.chain[0])
        .map_err(|e| invalid("cert_pem", format!("the certificate does not parse: {e}")))?;
    if let Some(key) = &bundle.key
        && !key_matches_cert(key, &bundle.chain[0])
    {
        return Err(invalid("key_pem", "the private key does not belong to the certificate"));
    }
    if leaf.sans.is_empty() {
        return Err(invalid(
            "cert_pem",
            "the certificate names no DNS name or IP address (subjectAltName); certhub manages \
             TLS server certificates",
        ));
    }
    let expired = leaf.not_after <= now_secs();
    let names: Vec<String> = leaf.sans.iter().map(Identifier::to_string).collect();
    let existing = store.cert(&args.name).await?;
    if let Some(latest) = store.latest_issued(&args.name).await?
        && latest.serial_hex == leaf.serial_hex
    {
        let account = existing.and_then(|c| c.account_name);
        let i =
            Imported { detail: None, names, keyless: false, account, deployed: vec![], expired };
        return Ok((i, None));
    }

    // With an account, the names must be ones ACME can validate, each with a challenge.
    let acme = match &args.account {
        Some(acct) => {
            account::load(store, acct).await.map_err(|e| crate::error::at_field(e, "account"))?;
            let inputs: Vec<String> = leaf.sans.iter().map(ToString::to_string).collect();
            let ids = normalize(&inputs, &RequestRules { public_ca: true })
                .map_err(|v| violations(&args.name, &v))?
                .identifiers;
            let specs = parse_challenges(&args.challenges)?;
            crate::credentials::check_specs(store, &specs).await?;
            assign_challenges(&ids, &specs).map_err(|v| violations(&args.name, &v))?;
            Some((acct.clone(), ids, specs))
        }
        None => None,
    };
    let existing_tasks: Vec<String> =
        store.deploy_tasks(&args.name).await?.into_iter().map(|t| t.name).collect();
    let tasks = crate::deploy::parse_specs(&args.deploy, &existing_tasks)?;
    crate::credentials::check_tasks(store, &tasks).await?;

    let key_type = bundle.key.as_ref().map(|k| k.key_type().to_string());
    let new = existing.is_none();
    let record = match (existing, acme) {
        (Some(mut c), acme) => {
            if let Some((acct, ids, specs)) = acme {
                c.account_name = Some(acct);
                c.identifiers = ids.clone();
                c.challenges = specs.clone();
            } else if c.account_name.is_none() {
                c.identifiers = leaf.sans.clone();
            }
            c.state = certhub_store::CertState::Valid;
            c.last_error = None;
            // A fresh certificate ends any backoff after failed requests.
            c.failures = 0;
            c.next_attempt_at = None;
            c
        }
        (None, acme) => {
            let (account_name, ids, specs) = match acme {
                Some((a, ids, specs)) => (Some(a), ids, specs),
                None => (None, leaf.sans.clone(), Vec::new()),
            };
            CertRecord {
                name: args.name.clone(),
                account_name,
                identifiers: ids.clone(),
                // A renewal by ACME keeps the kind of key the certificate had.
                key_type: key_type.clone().unwrap_or_else(|| "ec-p256".into()),
                challenges: specs.clone(),
                state: certhub_store::CertState::Valid,
                ..CertRecord::default()
            }
        }
    };

    let chain_pem: String =
        bundle.chain.iter().map(|d| certhub_core::pem_block("CERTIFICATE", d)).collect();
    let mut issued = IssuedRecord {
        id: 0,
        cert_name: args.name.clone(),
        order_id: None,
        serial_hex: leaf.serial_hex.clone(),
        issuer: leaf.issuer_cn.clone().unwrap_or_else(|| leaf.issuer_dn.clone()),
        sans: leaf.sans.clone(),
        // X.509 gives seconds; the store keeps milliseconds.
        not_before: leaf.not_before * 1000,
        not_after: leaf.not_after * 1000,
        chain_pem,
        key_type: key_type.unwrap_or_default(),
        key_pkcs8: bundle
            .key
            .as_ref()
            .map(|k| Zeroizing::new(k.pkcs8_der().to_vec()))
            .unwrap_or_default(),
        revoked_at: None,
        revocation_reason: None,
        created_at: 0,
    };
    // The certificate, its tasks, what it brings, its event and the audit entry: all or none.
    let detail = format!(
        "serial {} from {}, expires {}",
        issued.serial_hex,
        issued.issuer,
        rfc3339(issued.not_after / 1000)
    );
    let audit = audit.with_detail(detail.clone());
    issued.id = store.import_issued(&record, new, &tasks, &issued, &detail, Some(&audit)).await?;
    let report =
        crate::deploy::deploy(store, &args.name, Some(&issued), None, Scope::All, false, None)
            .await?;
    let deployed = report
        .outcomes
        .iter()
        .filter_map(|(task, outcome)| match outcome {
            certhub_deploy::Outcome::Done(d) => Some((task.clone(), d.clone())),
            _ => None,
        })
        .collect();
    let failure = report.failure().map(|e| {
        e.context(format!(
            "certificate {} was imported, but deploying it failed; `certhub renew --due` \
             retries the deployment",
            args.name
        ))
    });
    let imported = Imported {
        detail: Some(detail),
        names,
        keyless: bundle.key.is_none(),
        account: record.account_name.clone(),
        deployed,
        expired,
    };
    Ok((imported, failure))
}

/// A bundle from PEM text: the chain, and the key from `key_pem` or after the certificates.
pub fn bundle_from_pem(cert_pem: &str, key_pem: Option<&str>) -> anyhow::Result<Bundle> {
    let chain = split_pem_chain(cert_pem)
        .ok()
        .filter(|c| !c.is_empty())
        .ok_or_else(|| invalid("cert_pem", "no PEM certificate found"))?;
    let key_pem = key_pem.or(cert_pem.contains("PRIVATE KEY-----").then_some(cert_pem));
    let key = key_pem
        .map(|pem| {
            PrivateKey::from_pem(pem)
                .map_err(|e| invalid("key_pem", format!("no usable private key: {e}")))
        })
        .transpose()?;
    Ok(Bundle { chain, key })
}

/// A bundle from a PKCS#12 file's bytes.
pub fn bundle_from_pkcs12(der: &[u8], password: &str) -> anyhow::Result<Bundle> {
    let contents = certhub_deploy::pkcs12::read(der, password)
        .map_err(|e| invalid("pkcs12_base64", format!("PKCS#12: {e}")))?;
    let key = PrivateKey::from_pkcs8_der(contents.key_pkcs8.to_vec())
        .map_err(|e| invalid("pkcs12_base64", format!("the private key is not usable: {e}")))?;
    if contents.chain_der.is_empty() {
        return Err(invalid("pkcs12_base64", "the PKCS#12 file holds no certificate"));
    }
    Ok(Bundle { chain: contents.chain_der, key: Some(key) })
}
