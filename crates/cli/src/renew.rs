//! `certhub renew`: renew what is due, or the named certificates now (see
//! [`certhub_engine::renew`]).

use std::sync::Arc;
use std::time::Duration;

use certhub_engine::{Actor, RenewRun};

use crate::args::Renew;
use crate::cert::Reporter;
use crate::context::Context;

pub async fn run(ctx: &Context, args: Renew) -> anyhow::Result<()> {
    let store = ctx.store().await?;
    let engine = ctx.engine(store);
    let run = RenewRun {
        names: args.names.clone(),
        due: args.due,
        policy: args.policy.clone(),
        jobs: args.jobs,
        timeout: Duration::from_secs(args.timeout),
        rate_limits: args.rate_limit.clone(),
    };
    let reporter = Arc::new(Reporter::new(&[]));
    let summary = engine.renew(&run, &Actor::cli(), reporter.clone()).await?;
    if summary.looked == 0 {
        println!("Nothing is due now.");
        return Ok(());
    }
    println!("{}", summary.line());
    if summary.failed.is_empty() {
        return Ok(());
    }
    let code = crate::exit::code_for_all(summary.failed.iter().map(|(_, e)| e));
    let names: Vec<&str> = summary.failed.iter().map(|(n, _)| n.as_str()).collect();
    Err(crate::exit::fail(code, format!("renewal failed for {}", names.join(", "))))
}
