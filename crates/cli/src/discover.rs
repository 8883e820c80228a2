//! `certhub discover nginx|apache`: the server names in a web server's configuration, read
//! from disk with its includes, and optionally a managed certificate for them.

use certhub_core::Identifier;
use certhub_core::discover::{Discovery, Site, WebServer};
use certhub_core::identifier::RequestRules;
use serde_json::json;

use crate::args::{CertAdd, Discover, DiscoverServer};
use crate::output::print_json;
use certhub_engine::Kind;
use certhub_engine::error::fail;

/// The web server a flag names.
pub fn web_server(server: DiscoverServer) -> WebServer {
    match server {
        DiscoverServer::Nginx => WebServer::Nginx,
        DiscoverServer::Apache => WebServer::Apache,
    }
}

pub async fn run(ctx: &crate::context::Context, args: Discover) -> anyhow::Result<()> {
    let server = web_server(args.server);
    // Names are judged as a request to a public CA would judge them; `--create` applies the
    // account's own rules again.
    let rules = RequestRules { public_ca: !args.allow_single_label };
    let found = certhub_engine::discover::read_config(server, args.config.as_deref(), &rules)?;
    let sites: Vec<&Site> = found.sites.iter().filter(|s| s.tls || !args.tls_only).collect();
    let selected = certhub_engine::discover::selected(&found, &sites, &args.patterns);

    match &args.create {
        Some(name) => create(ctx, &args, name, &selected).await,
        None if args.json => {
            print_json(&report_json(&found, &sites, &selected));
            Ok(())
        }
        None => {
            print_report(&found, &sites, &selected, &args);
            Ok(())
        }
    }
}

async fn create(
    ctx: &crate::context::Context,
    args: &Discover,
    name: &str,
    ids: &[Identifier],
) -> anyhow::Result<()> {
    if ids.is_empty() {
        return Err(fail(
            Kind::Invalid,
            "no names to certify were found (see `certhub discover` without --create)",
        ));
    }
    let (Some(account), false) = (&args.account, args.challenges.is_empty()) else {
        return Err(fail(Kind::Invalid, "--create needs --account and at least one --challenge"));
    };
    let (mut domains, mut ips) = (Vec::new(), Vec::new());
    for id in ids {
        match id {
            Identifier::Ip(ip) => ips.push(*ip),
            other => domains.push(other.to_string()),
        }
    }
    let add = CertAdd {
        name: name.to_string(),
        account: account.clone(),
        domains,
        ips,
        key_type: args.key_type.clone(),
        reuse_key: args.reuse_key,
        csr: None,
        profile: None,
        preferred_chain: None,
        challenges: args.challenges.clone(),
        allow_single_label: args.allow_single_label,
        deploy: args.deploy.clone(),
        targets: Vec::new(),
        from_agent: None,
        key_on: "hub".into(),
        renewal: Default::default(),
    };
    let store = ctx.store().await?;
    crate::cert::add(&store, add).await
}

fn report_json(found: &Discovery, sites: &[&Site], selected: &[Identifier]) -> serde_json::Value {
    json!({
        "server": match found.server { WebServer::Nginx => "nginx", WebServer::Apache => "apache" },
        "files": found.files,
        "sites": sites.iter().map(|s| json!({
            "kind": s.kind.label(),
            "at": s.at.to_string(),
            "listen": s.listen,
            "tls": s.tls,
            "names": s.names.iter().map(|n| json!({
                "identifier": n.identifier.to_string(),
                "written": n.written,
                "at": n.at.to_string(),
            })).collect::<Vec<_>>(),
            "skipped": s.skipped.iter().map(|k| json!({
                "name": k.name,
                "reason": k.reason,
                "at": k.at.to_string(),
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "identifiers": selected.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "warnings": found.warnings,
    })
}

fn print_report(found: &Discovery, sites: &[&Site], selected: &[Identifier], args: &Discover) {
    println!("Read {} file(s), {} site(s).", found.files.len(), sites.len());
    for site in sites {
        let listen = if site.listen.is_empty() { "-".into() } else { site.listen.join(", ") };
        let tls = if site.tls { " tls" } else { "" };
        println!("\n{} at {} (listen {listen}){tls}", site.kind.label(), site.at);
        for n in &site.names {
            let id = n.identifier.to_string();
            let written = if n.written == id { String::new() } else { format!(" ({})", n.written) };
            println!("  {id}{written}");
        }
        for k in &site.skipped {
            println!("  skipped {}: {} ({})", k.name, k.reason, k.at);
        }
    }
    for w in &found.warnings {
        eprintln!("warning: {w}");
    }
    if selected.is_empty() {
        println!("\nNo names to certify.");
        return;
    }
    let names: Vec<String> = selected.iter().map(ToString::to_string).collect();
    println!("\nNames to certify: {}", names.join(", "));
    let server = match args.server {
        DiscoverServer::Nginx => "nginx",
        DiscoverServer::Apache => "apache",
    };
    println!(
        "Create a certificate for them with:\n  certhub discover {server}{} --create NAME --account ACCOUNT --challenge SPEC",
        args.config.as_ref().map(|c| format!(" --config {}", c.display())).unwrap_or_default()
    );
}
