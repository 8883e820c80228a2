//! `certhub account …`: ACME accounts.

use anyhow::Context as _;
use certhub_acme::ClientConfig;
use certhub_engine::account::{self, load, open};
use certhub_engine::error::invalid;
use certhub_engine::{Actor, NewAccount, Rollover, rfc3339};
use certhub_store::{AccountRecord, Store};
use serde_json::json;

use crate::args::{AccountAdd, AccountCommand, EabAlg};
use crate::context::Context;
use crate::output::{print_json, table};

pub async fn run(ctx: &Context, cmd: AccountCommand) -> anyhow::Result<()> {
    let store = ctx.store().await?;
    // Each change is written with its audit entry.
    dispatch(&store, &ctx.acme, cmd).await
}

async fn dispatch(store: &Store, acme: &ClientConfig, cmd: AccountCommand) -> anyhow::Result<()> {
    let store = store.clone();
    match cmd {
        AccountCommand::Add(args) => add(&store, acme, args).await,
        AccountCommand::List(args) => list(&store, args.json).await,
        AccountCommand::Show(args) => show(&store, acme, &args.name, args.json).await,
        AccountCommand::Rollover(args) => {
            rollover(&store, acme, &args.name, args.key_type.as_deref()).await
        }
        AccountCommand::Update(args) => update(&store, acme, &args.name, args.email).await,
        AccountCommand::Deactivate(args) => {
            if !args.yes {
                return Err(invalid(
                    "yes",
                    format!("deactivating {} cannot be undone; pass --yes to confirm", args.name),
                ));
            }
            deactivate(&store, acme, &args.name).await
        }
    }
}

async fn add(store: &Store, acme: &ClientConfig, args: AccountAdd) -> anyhow::Result<()> {
    let ca_bundle_pem = match &args.ca_bundle {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the CA bundle {}", path.display()))
                .map_err(|e| invalid("ca_bundle_pem", format!("{e:#}")))?,
        ),
        None => None,
    };
    let new = NewAccount {
        name: args.name.clone(),
        directory: args.directory.clone(),
        email: args.email.clone(),
        agree_tos: args.agree_tos,
        eab_kid: args.eab_kid.clone(),
        eab_hmac_key: args.eab_hmac_key.clone(),
        eab_algorithm: Some(match args.eab_algorithm {
            EabAlg::Hs256 => certhub_acme::EabAlgorithm::Hs256,
            EabAlg::Hs384 => certhub_acme::EabAlgorithm::Hs384,
            EabAlg::Hs512 => certhub_acme::EabAlgorithm::Hs512,
        }),
        key_type: Some(args.key_type.clone()),
        ca_bundle_pem,
    };
    let audit = Actor::cli().entry("account.create", &args.name);
    let url = account::register(store, &new, audit, acme).await?;
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

async fn show(store: &Store, acme: &ClientConfig, name: &str, as_json: bool) -> anyhow::Result<()> {
    let rec = load(store, name).await?;
    let mut out = account_json(&rec);
    let remote = match open(&rec, acme).await {
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

async fn rollover(
    store: &Store,
    acme: &ClientConfig,
    name: &str,
    key_type: Option<&str>,
) -> anyhow::Result<()> {
    let audit = Actor::cli().entry("account.rollover", name);
    match account::rollover(store, name, key_type, audit, acme).await? {
        Rollover::Finished => println!("Account {name}: finished an interrupted key rollover"),
        Rollover::RolledOver(key_type) => {
            println!("Account {name}: rolled over to a new {key_type} key")
        }
    }
    Ok(())
}

async fn update(
    store: &Store,
    acme: &ClientConfig,
    name: &str,
    email: Option<String>,
) -> anyhow::Result<()> {
    let audit = Actor::cli().entry("account.update", name);
    account::update(store, name, email.as_deref(), audit, acme).await?;
    match email {
        Some(e) => println!("Account {name}: contact set to {e}"),
        None => {
            println!("Account {name}: contact removed");
            eprintln!("warning: without a contact email the CA cannot send you notices");
        }
    }
    Ok(())
}

async fn deactivate(store: &Store, acme: &ClientConfig, name: &str) -> anyhow::Result<()> {
    let audit = Actor::cli().entry("account.deactivate", name);
    account::deactivate(store, name, audit, acme).await?;
    println!("Account {name} deactivated");
    Ok(())
}
