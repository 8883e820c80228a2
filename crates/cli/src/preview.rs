//! `certhub cert preview`: the plan of a request in plain language (see
//! [`certhub_engine::preview`]).

use crate::args::CertPreview;
use crate::output::print_json;
use certhub_store::Store;

pub async fn run(store: &Store, args: CertPreview) -> anyhow::Result<()> {
    let plan = certhub_engine::preview::plan(store, &args.name, &args.policy).await?;
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
