//! ACME accounts: registration (or adoption of an interrupted one), key rollover, contact
//! update and deactivation, each change stored with its audit entry.

use anyhow::Context as _;
use certhub_acme::{
    Client, ClientConfig, EabAlgorithm, ExternalAccountKey, KeyAlgorithm, SigningKey,
};
use certhub_core::KeyType;
use certhub_store::{AccountRecord, AuditEntry, Store};
use zeroize::Zeroizing;

use crate::clock::now_secs;
use crate::error::{Kind, at_field, fail, invalid};

/// A CA account to register (`POST /api/v1/accounts`, `certhub account add`).
#[derive(Debug, Clone, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAccount {
    /// Its name.
    pub name: String,
    /// The CA's directory URL, or `letsencrypt`, `letsencrypt-staging`.
    pub directory: String,
    /// Contact email.
    #[serde(default)]
    pub email: Option<String>,
    /// Agreement to the CA's terms of service (required).
    #[serde(default)]
    pub agree_tos: bool,
    /// External Account Binding key id.
    #[serde(default)]
    pub eab_kid: Option<String>,
    /// External Account Binding HMAC key (base64url).
    #[serde(default)]
    pub eab_hmac_key: Option<String>,
    /// The External Account Binding MAC algorithm (HS256 unless the CA says otherwise).
    #[serde(skip)]
    #[schemars(skip)]
    pub eab_algorithm: Option<EabAlgorithm>,
    /// Account key type (default ec-p256).
    #[serde(default)]
    pub key_type: Option<String>,
    /// PEM roots to trust for this CA (a private or test CA).
    #[serde(default)]
    pub ca_bundle_pem: Option<String>,
}

/// What a key rollover did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rollover {
    /// An interrupted rollover, which the CA had accepted, was finished.
    Finished,
    /// The account now has a new key of this type.
    RolledOver(KeyType),
}

/// Well-known directories that `--directory` accepts by name.
const DIRECTORY_ALIASES: &[(&str, &str)] = &[
    ("letsencrypt", "https://acme-v02.api.letsencrypt.org/directory"),
    ("letsencrypt-staging", "https://acme-staging-v02.api.letsencrypt.org/directory"),
];

/// Rollover keeps the new key under this name until the CA has accepted it, so a crash in
/// between never loses the only key the CA knows. Names can't contain `~`.
fn rollover_name(name: &str) -> String {
    format!("~rollover:{name}")
}

/// Names of accounts and certificates (see [`certhub_core::name`]).
pub fn check_name(what: &str, name: &str) -> anyhow::Result<()> {
    if certhub_core::name::is_valid(name) {
        Ok(())
    } else {
        Err(invalid("name", format!("{what} name {name:?} must be {}", certhub_core::name::RULE)))
    }
}

pub fn parse_key_type(s: &str) -> anyhow::Result<KeyType> {
    s.parse::<KeyType>().map_err(|e| invalid("key_type", e))
}

pub fn acme_algorithm(kt: KeyType) -> KeyAlgorithm {
    match kt {
        KeyType::EcP256 => KeyAlgorithm::EcP256,
        KeyType::EcP384 => KeyAlgorithm::EcP384,
        KeyType::Rsa2048 => KeyAlgorithm::Rsa2048,
        KeyType::Rsa3072 => KeyAlgorithm::Rsa3072,
        KeyType::Rsa4096 => KeyAlgorithm::Rsa4096,
    }
}

/// A connection to the account's CA, talked to as `acme` says (its CA bundle is the
/// account's).
pub async fn connect(rec: &AccountRecord, acme: &ClientConfig) -> anyhow::Result<Client> {
    let config = ClientConfig { ca_bundle_pem: rec.ca_bundle_pem.clone(), ..acme.clone() };
    Client::new(&rec.directory_url, config).await.with_context(|| {
        format!("cannot reach the CA of account {} at {}", rec.name, rec.directory_url)
    })
}

/// The registered account, ready to sign.
pub async fn open(
    rec: &AccountRecord,
    acme: &ClientConfig,
) -> anyhow::Result<certhub_acme::Account> {
    let url = rec.account_url.clone().ok_or_else(|| {
        fail(
            Kind::Invalid,
            format!(
                "account {} is not registered yet; run `certhub account add {}` again",
                rec.name, rec.name
            ),
        )
    })?;
    if rec.status != "valid" {
        return Err(fail(Kind::CaRefused, format!("account {} is {}", rec.name, rec.status)));
    }
    let client = connect(rec, acme).await?;
    let key =
        SigningKey::from_pkcs8(&rec.key_pkcs8).context("the stored account key is unusable")?;
    Ok(client.account(key, url))
}

pub async fn load(store: &Store, name: &str) -> anyhow::Result<AccountRecord> {
    store.account(name).await?.ok_or_else(|| {
        fail(Kind::NotFound, format!("no account named {name:?} (see `certhub account list`)"))
    })
}

/// Registers the account `args` describes with its CA (or adopts the one the CA has for a
/// key an interrupted earlier attempt stored), recorded with `audit`'s entry; returns the
/// account's URL.
pub async fn register(
    store: &Store,
    args: &NewAccount,
    audit: AuditEntry,
    acme: &ClientConfig,
) -> anyhow::Result<String> {
    check_name("account", &args.name)?;
    let key_type = parse_key_type(args.key_type.as_deref().unwrap_or("ec-p256"))?;
    let ca_bundle_pem = args.ca_bundle_pem.clone();
    let directory_url = DIRECTORY_ALIASES
        .iter()
        .find(|(alias, _)| *alias == args.directory)
        .map(|(_, url)| url.to_string())
        .unwrap_or_else(|| args.directory.clone());
    if !directory_url.starts_with("https://") && !directory_url.starts_with("http://") {
        return Err(invalid(
            "directory",
            format!(
                "--directory {directory_url:?} is not a URL nor one of letsencrypt, letsencrypt-staging"
            ),
        ));
    }
    let email = args.email.as_deref().map(str::trim).filter(|e| !e.is_empty());
    if let Some(e) = email {
        check_email(e)?;
    }
    let eab = match (&args.eab_kid, &args.eab_hmac_key) {
        (Some(kid), Some(hmac)) => {
            let alg = args.eab_algorithm.unwrap_or(EabAlgorithm::Hs256);
            Some(
                ExternalAccountKey::new(kid.clone(), hmac, alg)
                    .map_err(|e| invalid("eab_hmac_key", e))?,
            )
        }
        _ => None,
    };

    // An earlier attempt may have stored a key and crashed before the CA answered: reuse it.
    let existing = store.account(&args.name).await?;
    if let Some(rec) = &existing {
        if rec.account_url.is_some() {
            return Err(fail(
                Kind::Conflict,
                format!("an account named {:?} already exists", args.name),
            ));
        }
        if rec.directory_url != directory_url {
            return Err(fail(
                Kind::Conflict,
                format!(
                    "an unfinished account {:?} exists for another CA ({})",
                    args.name, rec.directory_url
                ),
            ));
        }
    }

    let config = ClientConfig { ca_bundle_pem: ca_bundle_pem.clone(), ..acme.clone() };
    let client = match Client::new(&directory_url, config).await {
        Ok(client) => client,
        // A CA bundle that is not one is the input's fault.
        Err(certhub_acme::Error::Key(reason)) => {
            return Err(invalid("ca_bundle_pem", format!("--ca-bundle: {reason}")));
        }
        Err(e) => {
            // An untrusted CA wants a CA bundle; anything else is about the directory URL.
            let field = match e {
                certhub_acme::Error::Untrusted { .. } => "ca_bundle_pem",
                _ => "directory",
            };
            let e = anyhow::Error::new(e)
                .context(format!("cannot fetch the ACME directory {directory_url}"));
            return Err(at_field(e, field));
        }
    };
    let meta = &client.directory().meta;
    if !args.agree_tos {
        let tos = meta.terms_of_service.as_deref().unwrap_or("see the CA's web site");
        return Err(invalid(
            "agree_tos",
            format!(
                "registering needs your agreement to the CA's terms of service ({tos}); pass --agree-tos"
            ),
        ));
    }
    if meta.external_account_required && eab.is_none() {
        return Err(invalid(
            "eab_kid",
            "this CA requires External Account Binding: pass --eab-kid and --eab-hmac-key from your account at the CA",
        ));
    }

    let key = match &existing {
        Some(rec) => {
            SigningKey::from_pkcs8(&rec.key_pkcs8).context("the stored account key is unusable")?
        }
        None => {
            let key = SigningKey::generate(acme_algorithm(key_type))?;
            let now = now_secs() * 1000;
            store
                .insert_account(&AccountRecord {
                    name: args.name.clone(),
                    directory_url: directory_url.clone(),
                    ca_bundle_pem,
                    email: email.map(str::to_string),
                    key_type: key_type.to_string(),
                    key_pkcs8: Zeroizing::new(key.pkcs8_der().to_vec()),
                    account_url: None,
                    status: "pending".into(),
                    eab_kid: args.eab_kid.clone(),
                    created_at: now,
                    updated_at: now,
                })
                .await?;
            key
        }
    };
    let contact: Vec<String> = email.map(|e| vec![format!("mailto:{e}")]).unwrap_or_default();
    let req = certhub_acme::NewAccount {
        contact: &contact,
        terms_of_service_agreed: true,
        only_return_existing: false,
        external_account: eab.as_ref(),
    };
    let (account, _) = match client.new_account(key, &req).await {
        Ok(v) => v,
        Err(e) => {
            if !e.is_retryable() {
                // The CA refused for good: leave nothing half-made behind.
                store.delete_account(&args.name).await?;
            }
            // A CA that wants a contact says so in words of its own.
            let wants_contact = email.is_none()
                && e.problem().is_some_and(|p| {
                    p.is("invalidContact")
                        || p.detail.as_deref().is_some_and(|d| d.to_lowercase().contains("contact"))
                });
            let e = anyhow::Error::new(e)
                .context(format!("the CA did not register account {}", args.name));
            return Err(if wants_contact {
                e.context("this CA requires a contact email: pass --email ADDR")
            } else {
                e
            });
        }
    };
    store.set_account_registered(&args.name, account.url(), Some(&audit)).await?;
    Ok(account.url().to_string())
}

pub fn check_email(e: &str) -> anyhow::Result<()> {
    let ok = e
        .split_once('@')
        .is_some_and(|(l, d)| !l.is_empty() && d.contains('.') && !d.starts_with('.'))
        && !e.contains(char::is_whitespace)
        && !e.contains(',');
    if ok {
        Ok(())
    } else {
        Err(invalid("email", format!("--email {e:?} is not an email address")))
    }
}

/// Rolls the account `name` over to a new key (of `key_type`, or the type it has), or
/// finishes a rollover a crash interrupted; stored with `audit`'s entry (the key type as
/// its detail).
pub async fn rollover(
    store: &Store,
    name: &str,
    key_type: Option<&str>,
    audit: AuditEntry,
    acme: &ClientConfig,
) -> anyhow::Result<Rollover> {
    let rec = load(store, name).await?;
    let account = open(&rec, acme).await?;
    let pending = rollover_name(name);
    // A crash after the CA accepted a new key but before it was saved left it here.
    if let Some(p) = store.account(&pending).await? {
        let new_key = SigningKey::from_pkcs8(&p.key_pkcs8)?;
        let only_existing =
            certhub_acme::NewAccount { only_return_existing: true, ..Default::default() };
        let found = account.client().new_account(new_key, &only_existing).await;
        if let Ok((acct, _)) = found
            && acct.url() == account.url()
        {
            let audit = audit.with_detail(&p.key_type);
            store.set_account_key(name, &p.key_type, &p.key_pkcs8, Some(&audit)).await?;
            store.delete_account(&pending).await?;
            return Ok(Rollover::Finished);
        }
        store.delete_account(&pending).await?;
    }
    let key_type = match key_type {
        Some(k) => parse_key_type(k)?,
        None => parse_key_type(&rec.key_type)?,
    };
    let new_key = SigningKey::generate(acme_algorithm(key_type))?;
    let now = now_secs() * 1000;
    store
        .insert_account(&AccountRecord {
            name: pending.clone(),
            key_type: key_type.to_string(),
            key_pkcs8: Zeroizing::new(new_key.pkcs8_der().to_vec()),
            account_url: None,
            status: "pending".into(),
            created_at: now,
            updated_at: now,
            ..rec.clone()
        })
        .await?;
    let new_pkcs8 = Zeroizing::new(new_key.pkcs8_der().to_vec());
    if let Err(e) = account.change_key(new_key).await {
        if e.is_retryable() {
            // The CA may have taken the new key before the answer was lost: it is kept, and
            // the next rollover finds out and finishes.
            return Err(anyhow::Error::new(e).context(format!(
                "the key rollover of {name} got no answer from the CA; run it again to finish it"
            )));
        }
        store.delete_account(&pending).await?;
        return Err(
            anyhow::Error::new(e).context(format!("the CA refused the key rollover of {name}"))
        );
    }
    let audit = audit.with_detail(key_type.to_string());
    store.set_account_key(name, &key_type.to_string(), &new_pkcs8, Some(&audit)).await?;
    store.delete_account(&pending).await?;
    Ok(Rollover::RolledOver(key_type))
}

/// Sets (or with `None`, removes) the contact email of account `name` at its CA, then in
/// the store with `audit`'s entry.
pub async fn update(
    store: &Store,
    name: &str,
    email: Option<&str>,
    audit: AuditEntry,
    acme: &ClientConfig,
) -> anyhow::Result<()> {
    let rec = load(store, name).await?;
    if let Some(e) = email {
        check_email(e)?;
    }
    let account = open(&rec, acme).await?;
    let contact: Vec<String> = email.iter().map(|e| format!("mailto:{e}")).collect();
    account.update_contacts(&contact).await.context("the CA refused the contact update")?;
    store.set_account_email(name, email.map(str::to_string), Some(&audit)).await?;
    Ok(())
}

/// Deactivates account `name` at its CA (for good), then in the store with `audit`'s entry.
pub async fn deactivate(
    store: &Store,
    name: &str,
    audit: AuditEntry,
    acme: &ClientConfig,
) -> anyhow::Result<()> {
    let rec = load(store, name).await?;
    let account = open(&rec, acme).await?;
    account.deactivate().await.context("the CA refused the deactivation")?;
    store.set_account_status(name, "deactivated", Some(&audit)).await?;
    Ok(())
}
