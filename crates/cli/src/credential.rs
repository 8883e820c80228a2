//! `certhub credential`: named secrets that challenge SPECs refer to (`credential=NAME`),
//! read from files, the environment or standard input, never from the command line (where
//! `ps` and the shell's history would show them).

use std::collections::BTreeMap;
use std::io::{BufRead as _, IsTerminal as _};

use anyhow::Context as _;
use certhub_core::credential::{Kind, kind};
use certhub_core::secret::Secret;
use certhub_engine::Actor;
use certhub_engine::credentials::CredentialView;

use crate::args::{CredentialCommand, CredentialInput};
use crate::context::Context;
use crate::output::{print_json, table};

pub async fn run(ctx: &Context, cmd: CredentialCommand) -> anyhow::Result<()> {
    match cmd {
        CredentialCommand::Add(args) => {
            let k = kind(&args.kind).map_err(|e| invalid("kind", e))?;
            let fields = read_fields(k, &args.input)?;
            let engine = ctx.engine(ctx.store().await?);
            let audit = Actor::cli().entry("credential.add", &args.name);
            let c = engine.add_credential(&args.name, k.name, fields, audit).await?;
            said(&c, args.input.json, "kept");
            Ok(())
        }
        CredentialCommand::Rotate(args) => {
            let engine = ctx.engine(ctx.store().await?);
            let kept = engine.credential(&args.name).await?;
            let k = kind(&kept.kind).map_err(|e| invalid("kind", e))?;
            let fields = read_fields(k, &args.input)?;
            let audit = Actor::cli().entry("credential.rotate", &args.name);
            let c = engine.rotate_credential(&args.name, fields, audit).await?;
            said(&c, args.input.json, "rotated: certificates using it order with it from now on");
            Ok(())
        }
        CredentialCommand::List(args) => {
            let list = ctx.engine(ctx.store().await?).credentials().await?;
            if args.json {
                print_json(&list);
                return Ok(());
            }
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|c| {
                    vec![
                        c.name.clone(),
                        c.kind.clone(),
                        c.fields.keys().cloned().collect::<Vec<_>>().join(","),
                        c.used_by.join(","),
                        certhub_engine::rfc3339(c.updated_at / 1000),
                    ]
                })
                .collect();
            table(&["NAME", "KIND", "FIELDS", "USED BY", "UPDATED"], &rows);
            Ok(())
        }
        CredentialCommand::Show(args) => {
            let c = ctx.engine(ctx.store().await?).credential(&args.name).await?;
            if args.json {
                print_json(&c);
            } else {
                show(&c);
            }
            Ok(())
        }
        CredentialCommand::Remove(args) => {
            let engine = ctx.engine(ctx.store().await?);
            let audit = Actor::cli().entry("credential.remove", &args.name);
            engine.remove_credential(&args.name, audit).await?;
            println!("Credential {} removed.", args.name);
            Ok(())
        }
        CredentialCommand::Kinds(args) => {
            print_kinds(certhub_core::credential::kinds(), args.json, false);
            Ok(())
        }
    }
}

fn invalid(field: &'static str, message: String) -> anyhow::Error {
    certhub_engine::Error::invalid(field, message).into()
}

fn said(c: &CredentialView, json: bool, what: &str) {
    if json {
        print_json(c);
    } else {
        println!("Credential {} ({}) {what}.", c.name, c.kind);
        if !c.used_by.is_empty() {
            println!("  used by: {}", c.used_by.join(", "));
        }
    }
}

fn show(c: &CredentialView) {
    println!("Credential {} ({})", c.name, c.kind);
    for (k, v) in &c.fields {
        println!("  {k:<12} {v}");
    }
    println!("  updated      {}", certhub_engine::rfc3339(c.updated_at / 1000));
    if c.used_by.is_empty() {
        println!("  used by      no certificate");
    } else {
        println!("  used by      {}", c.used_by.join(", "));
    }
}

/// The environment variable a field may come from: `CERTHUB_CREDENTIAL_KEY_SECRET`.
fn env_name(field: &str) -> String {
    format!("CERTHUB_CREDENTIAL_{}", field.to_ascii_uppercase().replace('-', "_"))
}

/// The fields of a credential of kind `k`: from the files named, the environment, then
/// standard input for those still missing.
fn read_fields(k: &Kind, input: &CredentialInput) -> anyhow::Result<BTreeMap<String, Secret>> {
    let mut fields = BTreeMap::new();
    for (field, path) in &input.from_file {
        if k.field(field).is_none() {
            let names: Vec<&str> = k.fields.iter().map(|f| f.name).collect();
            return Err(invalid(
                "fields",
                format!(
                    "--from-file {field}=…: a {} credential has no field {field}; its fields are {}",
                    k.name,
                    names.join(", ")
                ),
            ));
        }
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {} for {field}", path.display()))?;
        fields.insert(field.clone(), Secret::new(text.trim_end_matches(['\r', '\n'])));
    }
    for f in k.fields {
        if fields.contains_key(f.name) {
            continue;
        }
        if let Ok(v) = std::env::var(env_name(f.name)) {
            fields.insert(f.name.to_string(), Secret::new(v));
        }
    }
    let missing: Vec<_> = k.fields.iter().filter(|f| !fields.contains_key(f.name)).collect();
    if missing.iter().all(|f| !f.required) {
        return Ok(fields);
    }
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        for f in missing {
            let optional = if f.required { "" } else { ", optional: Enter to leave out" };
            let prompt = format!("{} ({}{optional}): ", f.name, f.about);
            let value = if f.secret {
                rpassword::prompt_password(&prompt).context("reading a secret from the terminal")?
            } else {
                eprint!("{prompt}");
                let mut line = String::new();
                stdin.lock().read_line(&mut line)?;
                line.trim_end_matches(['\r', '\n']).to_string()
            };
            fields.insert(f.name.to_string(), Secret::new(value));
        }
        return Ok(fields);
    }
    // A kind with one required field takes its value alone on a line.
    let required: Vec<_> = k.fields.iter().filter(|f| f.required).collect();
    for line in stdin.lock().lines() {
        let line = line.context("reading standard input")?;
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        match line.split_once('=') {
            Some((field, value)) if k.field(field.trim()).is_some() => {
                fields.insert(field.trim().to_string(), Secret::new(value));
            }
            _ if required.len() == 1 => {
                fields.insert(required[0].name.to_string(), Secret::new(line));
            }
            _ => {
                let names: Vec<&str> = k.fields.iter().map(|f| f.name).collect();
                return Err(invalid(
                    "fields",
                    format!(
                        "standard input: a line is not FIELD=VALUE with FIELD one of {}",
                        names.join(", ")
                    ),
                ));
            }
        }
    }
    Ok(fields)
}

/// Prints `kinds` with their fields, as JSON or text; `providers` adds each one's SPEC.
pub fn print_kinds<'a>(kinds: impl Iterator<Item = &'a Kind>, json: bool, providers: bool) {
    let kinds: Vec<&Kind> = kinds.collect();
    if json {
        let kinds: Vec<_> = kinds
            .iter()
            .map(|k| {
                let mut v = serde_json::json!({
                    "kind": k.name,
                    "about": k.about,
                    "fields": k.fields.iter().map(|f| serde_json::json!({
                        "name": f.name, "secret": f.secret, "required": f.required,
                        "about": f.about,
                    })).collect::<Vec<_>>(),
                });
                if providers {
                    v["provider"] = v["kind"].take();
                    v["spec"] = format!("dns-01:provider={},credential=NAME", k.name).into();
                }
                v
            })
            .collect();
        print_json(&kinds);
        return;
    }
    for k in kinds {
        println!("{}: {}", k.name, k.about);
        if providers {
            println!("  dns-01:provider={},credential=NAME[,zone=ZONE]", k.name);
        }
        for f in k.fields {
            let how = match (f.required, f.secret) {
                (true, true) => "required, secret",
                (true, false) => "required",
                (false, true) => "optional, secret",
                (false, false) => "optional",
            };
            println!("  {:<18} {} ({how})", f.name, f.about);
        }
    }
}
