//! Several hubs as one: three hubs on one PostgreSQL database share 200 due certificates
//! under one CA rate limit, and one is killed in the middle.

use std::time::Duration;

use futures::StreamExt as _;

use crate::support::{Env, assert_issued_once_each, call, hostile, issued_at_ca, job_done};

/// Certificates due at once.
const CERTS: usize = 200;

/// The rate limit every hub keeps to: 120 orders a minute for the account (paced: a burst of
/// 30, then two a second), so that the hubs must share one budget.
const LIMIT: usize = 120;
const WINDOW_MS: i64 = 60_000;

#[tokio::test(flavor = "multi_thread")]
async fn three_hubs_renew_each_certificate_once_within_the_limit_when_one_is_killed() {
    let mut env = Env::start(hostile()).await;
    env.database = Some(certhub_testkit::postgres::TestDatabase::create().await);
    env.account("le", &[]).await;
    let dns = env.rfc2136();
    futures::stream::iter(0..CERTS)
        .for_each_concurrent(8, |i| {
            let (env, dns) = (&env, &dns);
            async move { env.add_cert(&format!("c{i}"), "le", &format!("c{i}.test"), dns).await }
        })
        .await;
    // A request made by hand that is still running when its hub dies: its dns-01 hook
    // takes a while to publish the first time. Backing off, the renewal services leave it to the job.
    let dir = tempfile::TempDir::new().unwrap();
    let started = dir.path().join("hook-started");
    let first = format!("if [ ! -e {0} ]; then touch {0}; sleep 30; fi", started.display());
    let hook = crate::support::nsupdate_hook(&env, dir.path(), &first);
    // Of an account of its own: a request made by hand is not held to the budget (the CA
    // has the last word), so the renewals' account counts renewals only.
    env.account("by-hand", &[]).await;
    env.add_cert("job", "by-hand", "job.test", &format!("dns-01:exec={}", hook.display())).await;
    env.back_off("job").await;

    // Every hub has its own data directory, with the one master key.
    let key = env.data_dir().join(certhub_store::crypto::MASTER_KEY_FILE);
    let dirs: Vec<tempfile::TempDir> = (0..2).map(|_| tempfile::TempDir::new().unwrap()).collect();
    for d in &dirs {
        std::fs::copy(&key, d.path().join(certhub_store::crypto::MASTER_KEY_FILE)).unwrap();
    }
    let rate = format!("{}=orders={LIMIT}/1m", env.pebble.directory_url);
    let args = ["-v", "--check-interval", "3600", "--rate-limit", &rate];
    let mut first = env.serve(&args, true).await;
    let token = first.admin_token().await;
    let rsp = call(&first, &token, "POST", "/api/v1/certificates/job/request", None).await;
    let job = rsp["job"]["id"].as_str().unwrap_or_else(|| panic!("{rsp}")).to_string();
    let second = env.serve_from(dirs[0].path(), &args, false).await;
    let third = env.serve_from(dirs[1].path(), &args, false).await;

    // The first hub is killed once the work is well under way, its job in its hook.
    certhub_testkit::wait_until("40 certificates issued", Duration::from_secs(120), || async {
        (started.exists() && issued_at_ca(&env.pebble.log()).len() >= 40).then_some(())
    })
    .await;
    first.child.start_kill().unwrap();
    first.child.wait().await.unwrap();

    let store = env.store().await;
    let all: Vec<String> = (0..CERTS).map(|i| format!("c{i}")).chain(["job".into()]).collect();
    certhub_testkit::wait_until("every certificate issued", Duration::from_secs(300), || async {
        for name in &all {
            store.latest_issued(name).await.unwrap()?;
        }
        Some(())
    })
    .await;
    // The job was taken over by a hub still running, and ended.
    let ended = job_done(&second, &token, &job).await;
    assert_eq!(ended["status"], "succeeded", "{ended}");
    assert!(ended["steps"].to_string().contains("taken over by another hub"), "{ended}");

    // Each certificate was issued once, counted at the CA: the serials the CA issued are
    // exactly those the hubs stored, one for each certificate.
    let at_ca = assert_issued_once_each(&store, &env.pebble.log(), &all).await;

    // No window of the limit held more orders than it allows, and the limit was reached.
    let placed = store.orders_since(0).await.unwrap();
    let orders: Vec<i64> = placed.iter().filter(|o| o.account_name == "le").map(|o| o.at).collect();
    let most = orders
        .iter()
        .map(|start| orders.iter().filter(|t| **t >= *start && **t < start + WINDOW_MS).count())
        .max()
        .unwrap();
    let first_at = orders[0];
    let seconds: Vec<i64> = orders.iter().map(|t| (t - first_at) / 1000).collect();
    assert!(
        most <= LIMIT,
        "{most} orders in one minute, over the limit of {LIMIT}; {} orders placed, at these \
         seconds: {seconds:?}",
        orders.len()
    );
    let logs = [second.logged(), third.logged()];
    assert!(
        logs.iter().any(|l| l.contains("waiting until")),
        "no hub waited for the rate limit: it never bound"
    );
    // The work was spread: the hubs that lived each renewed some.
    let renewed: Vec<usize> = logs.iter().map(|l| l.matches("renewed: serial").count()).collect();
    println!(
        "{} certificates issued at the CA, at most {most} orders in a minute (limit {LIMIT}); \
         renewed by the second hub {}, by the third {}, the rest by the first before it was \
         killed",
        at_ca, renewed[0], renewed[1]
    );
    for (hub, n) in ["second", "third"].iter().zip(&renewed) {
        assert!(*n >= 10, "the {hub} hub renewed only {n}");
    }
    store.close().await;
}
