//! `certhub agent`: joining this machine to a hub and running it as an agent, and on the hub,
//! join tokens and the agents that joined.

use certhub_engine::Actor;

use crate::args::{AgentCommand, AgentTokenCommand};
use crate::context::Context;
use crate::output::{print_json, table};

pub async fn run(ctx: &Context, cmd: AgentCommand) -> anyhow::Result<()> {
    match cmd {
        AgentCommand::Join(args) => {
            let options = certhub_agent::JoinOptions {
                hub_url: args.hub_url,
                token: args.token,
                name: args.name,
                ca_bundle: args.ca_bundle,
            };
            let id = certhub_agent::join(&ctx.data_dir, &options).await?;
            println!("Joined the hub as agent {} (id {}).", id.name, id.id);
            if !id.labels.is_empty() {
                println!("  labels: {}", id.labels.join(", "));
            }
            println!("  identity kept in {}", ctx.data_dir.display());
            println!("Start it with: certhub agent run --allow-dir DIR [--allow-commands]");
            Ok(())
        }
        AgentCommand::Run(args) => {
            let options = certhub_agent::RunOptions {
                safety: certhub_agent::Safety {
                    all_commands: args.allow_commands,
                    commands: args.allow_command,
                    dirs: args.allow_dirs,
                },
                web_servers: args
                    .discover
                    .into_iter()
                    .map(|(server, config)| certhub_agent::WebConfig {
                        server: crate::discover::web_server(server),
                        config,
                    })
                    .collect(),
                renew_before: std::time::Duration::from_secs(
                    u64::from(args.renew_identity_days) * 86_400,
                ),
            };
            certhub_agent::run(&ctx.data_dir, options, crate::serve::shutdown()).await
        }
        AgentCommand::Token(AgentTokenCommand::Create(args)) => {
            let engine = ctx.engine(ctx.store().await?);
            let audit = Actor::cli().entry("agent.token", "join token");
            let t = engine.create_join_token(&args.labels, args.expires, audit).await?;
            let expires = certhub_engine::rfc3339(t.expires_at / 1000);
            if args.json {
                print_json(&serde_json::json!({
                    "id": t.id, "token": t.token, "labels": t.labels, "expires_at": expires,
                }));
            } else {
                println!("{}", t.token);
                eprintln!(
                    "Join token {} (one use, until {expires}{}). On the target machine:",
                    t.id,
                    if t.labels.is_empty() {
                        String::new()
                    } else {
                        format!("; labels {}", t.labels.join(", "))
                    }
                );
                eprintln!("  certhub agent join HUB_URL --token {}", t.token);
            }
            Ok(())
        }
        AgentCommand::List(args) => {
            let store = ctx.store().await?;
            let agents = ctx.engine(store.clone()).agents().await?;
            let deployments = store.agent_deployments(None, None).await?;
            if args.json {
                let items: Vec<_> = agents
                    .iter()
                    .map(|a| {
                        let mine: Vec<_> =
                            deployments.iter().filter(|d| d.agent_id == a.id).collect();
                        agent_json(a, &mine)
                    })
                    .collect();
                print_json(&items);
                return Ok(());
            }
            let rows: Vec<Vec<String>> = agents
                .iter()
                .map(|a| {
                    let n = deployments.iter().filter(|d| d.agent_id == a.id).count();
                    vec![
                        a.name.clone(),
                        a.hostname.clone().unwrap_or_default(),
                        a.labels.join(","),
                        a.last_seen_at
                            .map(|t| certhub_engine::rfc3339(t / 1000))
                            .unwrap_or_default(),
                        n.to_string(),
                    ]
                })
                .collect();
            table(&["NAME", "HOST", "LABELS", "LAST SEEN", "CERTS"], &rows);
            Ok(())
        }
        AgentCommand::Show(args) => {
            let store = ctx.store().await?;
            let a = ctx.engine(store.clone()).agent(&args.name).await?;
            let deployments = store.agent_deployments(None, Some(&a.id)).await?;
            if args.json {
                print_json(&agent_json(&a, &deployments.iter().collect::<Vec<_>>()));
                return Ok(());
            }
            println!("Agent {} (id {})", a.name, a.id);
            println!("  host:      {}", a.hostname.as_deref().unwrap_or("-"));
            println!("  os:        {}", a.os.as_deref().unwrap_or("-"));
            println!("  version:   {}", a.version.as_deref().unwrap_or("-"));
            println!("  labels:    {}", a.labels.join(", "));
            println!("  joined:    {}", certhub_engine::rfc3339(a.joined_at / 1000));
            if let Some(t) = a.last_seen_at {
                println!("  last seen: {}", certhub_engine::rfc3339(t / 1000));
            }
            let rows: Vec<Vec<String>> = deployments
                .iter()
                .map(|d| {
                    vec![
                        d.cert_name.clone(),
                        d.state.clone(),
                        d.serial_hex.clone().unwrap_or_default(),
                        d.deployed_at
                            .map(|t| certhub_engine::rfc3339(t / 1000))
                            .unwrap_or_default(),
                        d.error.clone().unwrap_or_default(),
                    ]
                })
                .collect();
            if !rows.is_empty() {
                println!();
                table(&["CERTIFICATE", "STATE", "SERIAL", "DEPLOYED", "ERROR"], &rows);
            }
            Ok(())
        }
        AgentCommand::Label(args) => {
            let engine = ctx.engine(ctx.store().await?);
            let audit = Actor::cli().entry("agent.labels", &args.name);
            let a = engine.set_agent_labels(&args.name, &args.labels, audit).await?;
            println!("Agent {} now has labels: {}", a.name, a.labels.join(", "));
            Ok(())
        }
        AgentCommand::Remove(args) => {
            let engine = ctx.engine(ctx.store().await?);
            let audit = Actor::cli().entry("agent.remove", &args.name);
            engine.remove_agent(&args.name, audit).await?;
            println!("Agent {} removed: its identity is refused from now on.", args.name);
            Ok(())
        }
    }
}

fn agent_json(
    a: &certhub_store::AgentRecord,
    deployments: &[&certhub_store::AgentDeploymentRecord],
) -> serde_json::Value {
    let ms = |t: Option<i64>| t.map(|t| certhub_engine::rfc3339(t / 1000));
    serde_json::json!({
        "name": a.name,
        "id": a.id,
        "labels": a.labels,
        "hostname": a.hostname,
        "os": a.os,
        "version": a.version,
        "joined_at": certhub_engine::rfc3339(a.joined_at / 1000),
        "last_seen_at": ms(a.last_seen_at),
        "discovered": a.discovered,
        "certificates": deployments.iter().map(|d| serde_json::json!({
            "certificate": d.cert_name,
            "state": d.state,
            "serial": d.serial_hex,
            "deployed_at": ms(d.deployed_at),
            "error": d.error,
        })).collect::<Vec<_>>(),
    })
}
