//! `certhub user`: the hub's users, changed on the hub's machine straight in its database,
//! for recovery (a forgotten admin password, a last admin disabled by mistake) and for
//! scripts. Passwords are read from the terminal without echo, or from standard input (the
//! first line), never from the command line.

use std::io::{BufRead as _, IsTerminal as _};

use anyhow::Context as _;
use certhub_engine::Actor;
use certhub_store::UserChange;

use crate::args::UserCommand;
use crate::context::Context;
use crate::output::{print_json, table};

const ROLES: [&str; 3] = ["admin", "operator", "viewer"];

pub async fn run(ctx: &Context, cmd: UserCommand) -> anyhow::Result<()> {
    let store = ctx.store().await?;
    let (name, change, action, done) = match cmd {
        UserCommand::List(args) => {
            let users = store.users().await?;
            let rows: Vec<serde_json::Value> = users
                .iter()
                .map(|u| {
                    serde_json::json!({
                        "username": u.name, "role": u.role,
                        "created_at": certhub_engine::rfc3339(u.created_at / 1000),
                        "disabled_at": u.disabled_at.map(|d| certhub_engine::rfc3339(d / 1000)),
                        "identity_provider": u.oidc_issuer,
                    })
                })
                .collect();
            if args.json {
                print_json(&rows);
            } else {
                let rows: Vec<Vec<String>> = users
                    .iter()
                    .map(|u| {
                        let state = u.disabled_at.map_or("enabled".to_string(), |d| {
                            format!("disabled {}", certhub_engine::rfc3339(d / 1000))
                        });
                        let sign_in = u.oidc_issuer.clone().unwrap_or_else(|| "password".into());
                        vec![u.name.clone(), u.role.clone(), state, sign_in]
                    })
                    .collect();
                table(&["USER", "ROLE", "STATE", "SIGN-IN"], &rows);
            }
            return Ok(());
        }
        UserCommand::Add(args) => {
            role(&args.role)?;
            let hash = new_password(&args.name)?;
            let audit = Actor::cli().entry("user.create", &args.name).with_detail(&args.role);
            store.insert_user(&args.name, &hash, &args.role, Some(&audit)).await?;
            println!("User {} ({}) added.", args.name, args.role);
            return Ok(());
        }
        UserCommand::Password(args) => {
            let hash = new_password(&args.name)?;
            (args.name, UserChange::Password(hash), "user.password", "has a new password")
        }
        UserCommand::Role(args) => {
            role(&args.role)?;
            let done = "has a new role";
            (args.name, UserChange::Role(args.role), "user.role", done)
        }
        UserCommand::Disable(args) => {
            let done = "is disabled: their sessions and tokens no longer work";
            (args.name, UserChange::Disabled(true), "user.disable", done)
        }
        UserCommand::Enable(args) => {
            (args.name, UserChange::Disabled(false), "user.enable", "is enabled")
        }
        UserCommand::Remove(args) => {
            (args.name, UserChange::Remove, "user.remove", "is removed, with their tokens")
        }
    };
    let audit = Actor::cli().entry(action, &name);
    let audit = match &change {
        UserChange::Role(r) => audit.with_detail(r),
        _ => audit,
    };
    store.change_user(&name, &change, Some(&audit)).await.map_err(|e| match e {
        certhub_store::Error::Invalid { reason, .. } => certhub_engine::Error::new(
            certhub_engine::Kind::Conflict,
            format!("user {name}: {reason}"),
        )
        .into(),
        other => anyhow::Error::from(certhub_engine::Error::from(other)),
    })?;
    println!("User {name} {done}.");
    Ok(())
}

fn role(role: &str) -> anyhow::Result<()> {
    if ROLES.contains(&role) {
        return Ok(());
    }
    Err(certhub_engine::Error::invalid(
        "role",
        format!("{role:?} is not admin, operator or viewer"),
    )
    .into())
}

/// A new password for `user` (asked twice on a terminal, else the first line of standard
/// input), hashed.
fn new_password(user: &str) -> anyhow::Result<String> {
    let password = if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password(format!("New password for {user}: "))
            .context("reading the password from the terminal")?;
        let again = rpassword::prompt_password("Again: ")
            .context("reading the password from the terminal")?;
        if first != again {
            return Err(certhub_engine::Error::invalid("password", "the two differ").into());
        }
        first
    } else {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).context("reading standard input")?;
        line.trim_end_matches(['\r', '\n']).to_string()
    };
    if password.chars().count() < 12 {
        return Err(certhub_engine::Error::invalid("password", "use at least 12 characters").into());
    }
    certhub_server::hash_password(&password)
        .map_err(|_| anyhow::anyhow!("cannot hash the password"))
}
