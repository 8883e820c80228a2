//! `certhub cert preview`: the plan of a request in plain language (see
//! [`certhub_engine::preview`]).

use crate::args::CertPreview;
use crate::context::Context;
use crate::output::print_json;
use certhub_store::Store;

pub async fn run(ctx: &Context, store: &Store, args: CertPreview) -> anyhow::Result<()> {
    let engine = ctx.engine(store.clone());
    let plan = engine.preview(&args.name, Some(&args.policy)).await?;
    if args.json {
        print_json(&plan);
    } else {
        print(&plan);
    }
    Ok(())
}

/// The plan in plain language.
fn print(plan: &certhub_engine::Preview) {
    for line in &plan.summary {
        println!("{line}");
    }
}
