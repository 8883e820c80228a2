//! `certhub account …`: ACME accounts.

use anyhow::Context as _;
use certhub_acme::{
    Client, ClientConfig, EabAlgorithm, ExternalAccountKey, KeyAlgorithm, NewAccount, SigningKey,
};
use certhub_core::KeyType;
use certhub_store::{AccountRecord, AuditEntry, Store};
use serde_json::json;
use zeroize::Zeroizing;

use crate::Context;
use crate::args::{AccountAdd, AccountCommand, EabAlg};
use crate::exit::{CA_REFUSED, INVALID_INPUT, fail};
use crate::output::{Actor, now_secs, print_json, rfc3339, table};

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

pub async fn run(ctx: &Context, cmd: AccountCommand) -> anyhow::Result<()> {
    let store = ctx.store().await?;
    // Each change is written with its audit entry.
    dispatch(&store, cmd).await
}

async fn dispatch(store: &Store, cmd: AccountCommand) -> anyhow::Result<()> {
    let store = store.clone();
    match cmd {
        AccountCommand::Add(args) => add(&store, args).await,
        AccountCommand::List(args) => list(&store, args.json).await,
        AccountCommand::Show(args) => show(&store, &args.name, args.json).await,
        AccountCommand::Rollover(args) => {
            rollover(&store, &args.name, args.key_type.as_deref()).await
        }
        AccountCommand::Update(args) => update(&store, &args.name, args.email).await,
        AccountCommand::Deactivate(args) => {
            if !args.yes {
                return Err(fail(
                    INVALID_INPUT,
                    format!("deactivating {} cannot be undone; pass --yes to confirm", args.name),
                ));
            }
            deactivate(&store, &args.name).await
        }
    }
}

/// Names of accounts and certificates (see [`certhub_core::name`]).
pub fn check_name(what: &str, name: &str) -> anyhow::Result<()> {
    if certhub_core::name::is_valid(name) {
        Ok(())
    } else {
        Err(fail(
            INVALID_INPUT,
            format!("{what} name {name:?} must be {}", certhub_core::name::RULE),
        ))
    }
}

pub fn parse_key_type(s: &str) -> anyhow::Result<KeyType> {
    s.parse::<KeyType>().map_err(|e| fail(INVALID_INPUT, e))
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

/// A connection to the account's CA.
pub async fn connect(rec: &AccountRecord) -> anyhow::Result<Client> {
    let config =
        ClientConfig { ca_bundle_pem: rec.ca_bundle_pem.clone(), ..ClientConfig::default() };
    Client::new(&rec.directory_url, config).await.with_context(|| {
        format!("cannot reach the CA of account {} at {}", rec.name, rec.directory_url)
    })
}

/// The registered account, ready to sign.
pub async fn open(rec: &AccountRecord) -> anyhow::Result<certhub_acme::Account> {
    let url = rec.account_url.clone().ok_or_else(|| {
        fail(
            INVALID_INPUT,
            format!(
                "account {} is not registered yet; run `certhub account add {}` again",
                rec.name, rec.name
            ),
        )
    })?;
    if rec.status != "valid" {
        return Err(fail(CA_REFUSED, format!("account {} is {}", rec.name, rec.status)));
    }
    let client = connect(rec).await?;
    let key =
        SigningKey::from_pkcs8(&rec.key_pkcs8).context("the stored account key is unusable")?;
    Ok(client.account(key, url))
}

pub async fn load(store: &Store, name: &str) -> anyhow::Result<AccountRecord> {
    store.account(name).await?.ok_or_else(|| {
        fail(
            crate::exit::NOT_FOUND,
            format!("no account named {name:?} (see `certhub account list`)"),
        )
    })
}

async fn add(store: &Store, args: AccountAdd) -> anyhow::Result<()> {
    let ca_bundle_pem = match &args.ca_bundle {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the CA bundle {}", path.display()))
                .map_err(|e| fail(INVALID_INPUT, format!("{e:#}")))?,
        ),
        None => None,
    };
    let audit = Actor::cli().entry("account.create", &args.name);
    let url = register(store, &args, ca_bundle_pem, audit).await?;
    if args.json {
        print_json(&json!({ "name": args.name, "account_url": url, "status": "valid" }));
    } else {
        println!("Account {} registered: {url}", args.name);
    }
    if args.email.as_deref().map(str::trim).is_none_or(str::is_empty) {
        eprintln!(
            "warning: account {} has no contact email, so the CA cannot send you notices",
            args.name
        );
    }
    Ok(())
}

/// Registers the account `args` describes with its CA (or adopts the one the CA has for a
/// key an interrupted earlier attempt stored), recorded with `audit`'s entry; returns the
/// account's URL.
pub(crate) async fn register(
    store: &Store,
    args: &AccountAdd,
    ca_bundle_pem: Option<String>,
    audit: AuditEntry,
) -> anyhow::Result<String> {
    check_name("account", &args.name)?;
    let key_type = parse_key_type(&args.key_type)?;
    let directory_url = DIRECTORY_ALIASES
        .iter()
        .find(|(alias, _)| *alias == args.directory)
        .map(|(_, url)| url.to_string())
        .unwrap_or_else(|| args.directory.clone());
    if !directory_url.starts_with("https://") && !directory_url.starts_with("http://") {
        return Err(fail(
            INVALID_INPUT,
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
            let alg = match args.eab_algorithm {
                EabAlg::Hs256 => EabAlgorithm::Hs256,
                EabAlg::Hs384 => EabAlgorithm::Hs384,
                EabAlg::Hs512 => EabAlgorithm::Hs512,
            };
            Some(
                ExternalAccountKey::new(kid.clone(), hmac, alg)
                    .map_err(|e| fail(INVALID_INPUT, e))?,
            )
        }
        _ => None,
    };

    // An earlier attempt may have stored a key and crashed before the CA answered: reuse it.
    let existing = store.account(&args.name).await?;
    if let Some(rec) = &existing {
        if rec.account_url.is_some() {
            return Err(fail(
                INVALID_INPUT,
                format!("an account named {:?} already exists", args.name),
            ));
        }
        if rec.directory_url != directory_url {
            return Err(fail(
                INVALID_INPUT,
                format!(
                    "an unfinished account {:?} exists for another CA ({})",
                    args.name, rec.directory_url
                ),
            ));
        }
    }

    let client = Client::new(
        &directory_url,
        ClientConfig { ca_bundle_pem: ca_bundle_pem.clone(), ..ClientConfig::default() },
    )
    .await
    .with_context(|| format!("cannot fetch the ACME directory {directory_url}"))?;
    let meta = &client.directory().meta;
    if !args.agree_tos {
        let tos = meta.terms_of_service.as_deref().unwrap_or("see the CA's web site");
        return Err(fail(
            INVALID_INPUT,
            format!(
                "registering needs your agreement to the CA's terms of service ({tos}); pass --agree-tos"
            ),
        ));
    }
    if meta.external_account_required && eab.is_none() {
        return Err(fail(
            INVALID_INPUT,
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
    let req = NewAccount {
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

fn check_email(e: &str) -> anyhow::Result<()> {
    let ok = e
        .split_once('@')
        .is_some_and(|(l, d)| !l.is_empty() && d.contains('.') && !d.starts_with('.'))
        && !e.contains(char::is_whitespace)
        && !e.contains(',');
    if ok {
        Ok(())
    } else {
        Err(fail(INVALID_INPUT, format!("--email {e:?} is not an email address")))
    }
}

async fn list(store: &Store, as_json: bool) -> anyhow::Result<()> {
    let accounts: Vec<AccountRecord> =
        store.accounts().await?.into_iter().filter(|a| !a.name.starts_with('~')).collect();
    if as_json {
        print_json(&json!(accounts.iter().map(account_json).collect::<Vec<_>>()));
        return Ok(());
    }
    let rows: Vec<Vec<String>> = accounts
        .iter()
        .map(|a| {
            vec![
                a.name.clone(),
                a.status.clone(),
                a.key_type.clone(),
                a.email.clone().unwrap_or_else(|| "-".into()),
                a.directory_url.clone(),
            ]
        })
        .collect();
    table(&["NAME", "STATUS", "KEY", "EMAIL", "DIRECTORY"], &rows);
    Ok(())
}

fn account_json(a: &AccountRecord) -> serde_json::Value {
    json!({
        "name": a.name,
        "directory": a.directory_url,
        "account_url": a.account_url,
        "status": a.status,
        "email": a.email,
        "key_type": a.key_type,
        "eab_kid": a.eab_kid,
        "created_at": rfc3339(a.created_at / 1000),
    })
}

async fn show(store: &Store, name: &str, as_json: bool) -> anyhow::Result<()> {
    let rec = load(store, name).await?;
    let mut out = account_json(&rec);
    let remote = match open(&rec).await {
        Ok(acct) => acct.state().await.map_err(anyhow::Error::from),
        Err(e) => Err(e),
    };
    match &remote {
        Ok(state) => out["ca"] = json!({ "status": state.status, "contact": state.contact }),
        Err(e) => out["ca_error"] = json!(format!("{e:#}")),
    }
    if as_json {
        print_json(&out);
        return Ok(());
    }
    println!("Account:     {}", rec.name);
    println!("Directory:   {}", rec.directory_url);
    println!("Account URL: {}", rec.account_url.as_deref().unwrap_or("(not registered)"));
    println!("Status:      {}", rec.status);
    println!("Key type:    {}", rec.key_type);
    println!("Email:       {}", rec.email.as_deref().unwrap_or("(none)"));
    if let Some(kid) = &rec.eab_kid {
        println!("EAB key id:  {kid}");
    }
    match remote {
        Ok(state) => println!("At the CA:   {:?}, contact {:?}", state.status, state.contact),
        Err(e) => println!("At the CA:   unknown ({e:#})"),
    }
    Ok(())
}

async fn rollover(store: &Store, name: &str, key_type: Option<&str>) -> anyhow::Result<()> {
    let rec = load(store, name).await?;
    let account = open(&rec).await?;
    let pending = rollover_name(name);
    // A crash after the CA accepted a new key but before it was saved left it here.
    if let Some(p) = store.account(&pending).await? {
        let new_key = SigningKey::from_pkcs8(&p.key_pkcs8)?;
        let found = account
            .client()
            .new_account(new_key, &NewAccount { only_return_existing: true, ..Default::default() })
            .await;
        if let Ok((acct, _)) = found
            && acct.url() == account.url()
        {
            let audit = Actor::cli().entry("account.rollover", name).with_detail(&p.key_type);
            store.set_account_key(name, &p.key_type, &p.key_pkcs8, Some(&audit)).await?;
            store.delete_account(&pending).await?;
            println!("Account {name}: finished an interrupted key rollover");
            return Ok(());
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
        store.delete_account(&pending).await?;
        return Err(
            anyhow::Error::new(e).context(format!("the CA refused the key rollover of {name}"))
        );
    }
    let audit = Actor::cli().entry("account.rollover", name).with_detail(key_type.to_string());
    store.set_account_key(name, &key_type.to_string(), &new_pkcs8, Some(&audit)).await?;
    store.delete_account(&pending).await?;
    println!("Account {name}: rolled over to a new {key_type} key");
    Ok(())
}

async fn update(store: &Store, name: &str, email: Option<String>) -> anyhow::Result<()> {
    let rec = load(store, name).await?;
    if let Some(e) = &email {
        check_email(e)?;
    }
    let account = open(&rec).await?;
    let contact: Vec<String> = email.iter().map(|e| format!("mailto:{e}")).collect();
    account.update_contacts(&contact).await.context("the CA refused the contact update")?;
    let audit = Actor::cli().entry("account.update", name);
    store.set_account_email(name, email.clone(), Some(&audit)).await?;
    match email {
        Some(e) => println!("Account {name}: contact set to {e}"),
        None => {
            println!("Account {name}: contact removed");
            eprintln!("warning: without a contact email the CA cannot send you notices");
        }
    }
    Ok(())
}

async fn deactivate(store: &Store, name: &str) -> anyhow::Result<()> {
    let rec = load(store, name).await?;
    let account = open(&rec).await?;
    account.deactivate().await.context("the CA refused the deactivation")?;
    let audit = Actor::cli().entry("account.deactivate", name);
    store.set_account_status(name, "deactivated", Some(&audit)).await?;
    println!("Account {name} deactivated");
    Ok(())
}
