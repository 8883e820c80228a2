//! `certhub deploy …`: a certificate's deployment tasks, listed, added, removed and run
//! on demand.

use certhub_deploy::Outcome;
use certhub_engine::deploy::{Scope, add_specs, cert_exists, deploy, remove_task, tasks};
use certhub_engine::error::fail;
use certhub_engine::{Actor, Kind, rfc3339};
use certhub_store::Store;
use serde_json::json;

use crate::args::{DeployAdd, DeployCommand, DeployRun};
use crate::output::{print_json, table};

pub async fn run(ctx: &crate::context::Context, cmd: DeployCommand) -> anyhow::Result<()> {
    let store = ctx.store().await?;
    // Changes are written with their audit entries.
    dispatch(&store, cmd).await
}

async fn dispatch(store: &Store, cmd: DeployCommand) -> anyhow::Result<()> {
    let store = store.clone();
    match cmd {
        DeployCommand::Add(args) => add(&store, args).await,
        DeployCommand::List(args) => list(&store, &args.name, args.json).await,
        DeployCommand::Remove(args) => {
            let audit = Actor::cli().entry("deploy.remove", &args.name);
            remove_task(&store, &args.name, &args.task, audit).await?;
            println!("Removed deployment task {} of {}.", args.task, args.name);
            Ok(())
        }
        DeployCommand::Run(args) => run_now(&store, args).await,
    }
}

async fn add(store: &Store, args: DeployAdd) -> anyhow::Result<()> {
    let audit = Actor::cli().entry("deploy.add", &args.name);
    let tasks = add_specs(store, &args.name, &args.specs, audit).await?;
    for t in &tasks {
        println!("Added {} ({}): {}", t.name, t.trigger, t.action.describe());
    }
    println!("Try it with: certhub deploy run {} --dry-run", args.name);
    Ok(())
}

async fn list(store: &Store, name: &str, as_json: bool) -> anyhow::Result<()> {
    cert_exists(store, name).await?;
    let latest = store.latest_issued(name).await?.map(|i| i.id);
    let tasks = tasks(store, name).await?;
    let status = |r: &certhub_store::DeployTaskRecord| match (&r.last_outcome, latest) {
        (None, _) => "never run".to_string(),
        (Some(o), Some(l)) if o == "done" && r.deployed_issued_id == Some(l) => "up to date".into(),
        (Some(o), _) => o.clone(),
    };
    if as_json {
        let out: Vec<_> = tasks
            .iter()
            .map(|(t, r)| {
                json!({
                    "name": t.name,
                    "kind": t.action.kind(),
                    "trigger": t.trigger.as_str(),
                    "timeout": t.timeout.as_secs(),
                    "does": t.action.describe(),
                    "status": status(r),
                    "last_detail": r.last_detail,
                    "last_run": r.last_run_at.map(|ms| rfc3339(ms / 1000)),
                    "failures": r.failures,
                })
            })
            .collect();
        print_json(&json!(out));
        return Ok(());
    }
    let rows: Vec<Vec<String>> = tasks
        .iter()
        .map(|(t, r)| {
            vec![
                t.name.clone(),
                t.trigger.to_string(),
                format!("{}s", t.timeout.as_secs()),
                match status(r) {
                    s if r.failures > 1 => format!("{s} ({} times in a row)", r.failures),
                    s => s,
                },
                t.action.describe(),
            ]
        })
        .collect();
    table(&["TASK", "TRIGGER", "TIMEOUT", "STATUS", "DOES"], &rows);
    Ok(())
}

async fn run_now(store: &Store, args: DeployRun) -> anyhow::Result<()> {
    cert_exists(store, &args.name).await?;
    let targets = store.cert_targets(&args.name).await?;
    if !targets.is_empty() {
        return Err(fail(
            Kind::Conflict,
            format!(
                "certificate {} is deployed by its agents ({}), not by the hub; `certhub agent \
                 list` shows what each one deployed",
                args.name,
                targets.join(", ")
            ),
        ));
    }
    let latest = store.latest_issued(&args.name).await?;
    let scope = if args.pending { Scope::Pending } else { Scope::All };
    let report =
        deploy(store, &args.name, latest.as_ref(), None, scope, args.dry_run, None).await?;
    for (name, outcome) in &report.outcomes {
        let line = match outcome {
            Outcome::Done(d) => format!("ok       {d}"),
            Outcome::DryRun(d) => format!("dry run  {d}"),
            Outcome::Failed(why) => format!("FAILED   {why}"),
            Outcome::NotTriggered => continue,
            Outcome::Skipped => "skipped  (an earlier task failed)".to_string(),
        };
        println!("{name:<14} {line}");
    }
    if report.outcomes.is_empty() {
        println!("Nothing to run.");
    }
    match report.failure() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}
