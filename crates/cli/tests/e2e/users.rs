//! `certhub user`: the hub's users changed on its machine, for recovery: the last enabled
//! admin stays one, passwords come from standard input, every change is audited (the API
//! test reads the entries).

use crate::credentials::with_input;
use crate::support::{Env, hostile};

#[tokio::test(flavor = "multi_thread")]
async fn users_are_added_disabled_promoted_and_removed_and_the_last_admin_stays() {
    let env = Env::start(hostile()).await;
    let pw = "a long enough password\n";
    with_input(&env, &["user", "add", "root", "--role", "admin"], pw, &[]).await;
    with_input(&env, &["user", "add", "ann", "--role", "operator"], pw, &[]).await;
    let said = env.fails(3, &["user", "add", "bob", "--role", "viewer"]).await;
    assert!(said.contains("at least 12 characters"), "{said}");
    let said = env.fails(3, &["user", "add", "bob", "--role", "root"]).await;
    assert!(said.contains("is not admin, operator or viewer"), "{said}");

    let said = env.fails(3, &["user", "disable", "root"]).await;
    assert!(said.contains("last enabled admin"), "{said}");
    env.ok(&["user", "role", "ann", "--role", "admin"]).await;
    env.ok(&["user", "disable", "root"]).await;
    let listed = env.ok(&["user", "list"]).await;
    assert!(listed.contains("root") && listed.contains("disabled"), "{listed}");
    let json: serde_json::Value =
        serde_json::from_str(&env.ok(&["user", "list", "--json"]).await).unwrap();
    assert!(json[1]["disabled_at"].is_string() && json[0]["role"] == "admin", "{json}");
    env.ok(&["user", "enable", "root"]).await;
    with_input(&env, &["user", "password", "root"], "another long password\n", &[]).await;
    env.ok(&["user", "remove", "ann"]).await;
    let said = env.fails(6, &["user", "remove", "ann"]).await;
    assert!(said.contains("ann"), "{said}");
    // Each change went into the audit log, whose chain still holds.
    env.ok(&["audit", "verify"]).await;
}
