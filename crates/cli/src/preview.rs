//! `certhub cert preview`: the plan of a request in plain language (see
//! [`certhub_engine::preview`]).

use certhub_store::Store;
use serde_json::Value;

use crate::args::CertPreview;
use crate::output::print_json;

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
fn print(plan: &Value) {
    for line in plan["summary"].as_array().into_iter().flatten() {
        println!("{}", line.as_str().unwrap_or_default());
    }
}
