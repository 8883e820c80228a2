//! Stored credentials: secrets given through standard input, a file or the environment
//! (never the command line), named by challenge SPECs, rotated for every certificate that
//! uses them, kept sealed, and kept while used.

use tokio::io::AsyncWriteExt as _;

use crate::support::{Env, hostile};

/// Runs `certhub ARGS` with `input` on standard input and `vars` in the environment.
pub(crate) async fn with_input(
    env: &Env,
    args: &[&str],
    input: &str,
    vars: &[(&str, &str)],
) -> String {
    let mut cmd = env.command(args);
    cmd.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    for (k, v) in vars {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    child.stdin.take().unwrap().write_all(input.as_bytes()).await.unwrap();
    let out = child.wait_with_output().await.unwrap();
    let (stdout, stderr) =
        (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "certhub {}: {stdout}\n{stderr}", args.join(" "));
    stdout.to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stored_tsig_key_orders_is_rotated_for_every_certificate_and_stays_while_used() {
    let env = Env::start(hostile()).await;
    env.account("le", &[]).await;
    let bind = &env.bind;
    // A wrong key first: its name on standard input, its algorithm from the environment.
    let wrong = "d3Jvbmcgc2VjcmV0IGtleQ==";
    let input = format!("key-name={}\nkey-secret={wrong}\n", bind.tsig_key_name);
    let algorithm = [("CERTHUB_CREDENTIAL_ALGORITHM", bind.algorithm)];
    with_input(&env, &["credential", "add", "dns", "--kind", "tsig"], &input, &algorithm).await;
    let shown = env.ok(&["credential", "show", "dns"]).await;
    assert!(shown.contains(&bind.tsig_key_name) && shown.contains("(secret)"), "{shown}");
    assert!(!shown.contains(wrong), "{shown}");

    // SPECs name it; one that names no credential, or one of the wrong kind, is refused.
    let spec = format!("dns-01:rfc2136={},credential=dns", bind.addr);
    let add = ["cert", "add", "web", "--account", "le", "-d", "*.cred.test", "-d", "cred.test"];
    let missing = format!("dns-01:rfc2136={},credential=nope", bind.addr);
    let said = env.fails(3, &[&add[..], &["--challenge", &missing]].concat()).await;
    assert!(said.contains("certhub credential add nope --kind tsig"), "{said}");
    with_input(&env, &["credential", "add", "hook", "--kind", "callback"], "s3cret\n", &[]).await;
    let of_callback = format!("dns-01:rfc2136={},credential=hook", bind.addr);
    let said = env.fails(3, &[&add[..], &["--challenge", &of_callback]].concat()).await;
    assert!(said.contains("hook is a callback credential"), "{said}");
    env.ok(&[&add[..], &["--challenge", &spec]].concat()).await;
    let preview = env.ok(&["cert", "preview", "web"]).await;
    assert!(preview.contains("TSIG key of credential dns"), "{preview}");

    // With the wrong key, the update is refused; rotated (the secret from a file, the name
    // from the environment), the same certificate orders with the new one.
    let failed = env.run(&["renew", "web"]).await;
    assert!(!failed.status.success());
    let dir = tempfile::TempDir::new().unwrap();
    let file = dir.path().join("tsig.secret");
    std::fs::write(&file, format!("{}\n", bind.tsig_secret)).unwrap();
    let from_file = format!("key-secret={}", file.display());
    let vars = [
        ("CERTHUB_CREDENTIAL_KEY_NAME", bind.tsig_key_name.as_str()),
        ("CERTHUB_CREDENTIAL_ALGORITHM", bind.algorithm),
    ];
    with_input(&env, &["credential", "rotate", "dns", "--from-file", &from_file], "", &vars).await;
    env.ok(&["renew", "web"]).await;
    env.verify_issued("web", &["a.cred.test", "cred.test"]).await;

    // In use: not removed, and the refusal names the certificate.
    let said = env.fails(3, &["credential", "remove", "dns"]).await;
    assert!(said.contains("used by web"), "{said}");
    let listed = env.ok(&["credential", "list"]).await;
    assert!(listed.contains("dns") && listed.contains("hook"), "{listed}");
    // The secrets are sealed: no file of the data directory holds one.
    for f in crate::common::walk(env.data_dir()) {
        let text = String::from_utf8_lossy(&std::fs::read(&f).unwrap()).into_owned();
        for secret in [bind.tsig_secret.as_str(), "s3cret", wrong] {
            assert!(!text.contains(secret), "{} holds a secret", f.display());
        }
    }
    // Once nothing uses it, it goes.
    env.ok(&["credential", "remove", "hook"]).await;
    let said = env.fails(6, &["credential", "show", "hook"]).await;
    assert!(said.contains("no credential hook"), "{said}");
}
