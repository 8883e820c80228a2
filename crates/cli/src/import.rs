//! `certhub cert import`: certificates obtained elsewhere become managed certificates whose
//! expiry is watched and whose deployment tasks run; ACME renews them only when they have an
//! account. The files are read here; the engine checks and stores what they hold.

use anyhow::Context as _;
use certhub_core::cert::split_pem_chain;
use certhub_engine::error::invalid;
use certhub_engine::import::{Bundle, Import, bundle_from_pem, bundle_from_pkcs12, import};
use certhub_store::Store;

use crate::args::CertImport;

pub async fn run(store: &Store, args: CertImport) -> anyhow::Result<()> {
    let bundle = read_bundle(&args)?;
    let audit = certhub_engine::Actor::cli().entry("cert.import", &args.name);
    let what = Import {
        name: args.name.clone(),
        account: args.account.clone(),
        challenges: args.challenges.clone(),
        deploy: args.deploy.clone(),
        ..Import::default()
    };
    let imported = import(store, &what, bundle, audit).await;
    if let Ok(i) | Err((_, Some(i))) = &imported {
        if i.expired {
            eprintln!("warning: this certificate has expired");
        }
        let Some(detail) = &i.detail else {
            println!("Certificate {} already holds this serial; nothing imported.", args.name);
            return Ok(());
        };
        println!("Imported {} ({}): {detail}", args.name, i.names.join(", "));
        if i.keyless {
            println!("  without its private key: tasks that write the key will fail");
        }
        match &i.account {
            Some(a) => println!("  renewed by ACME with account {a}"),
            None => println!("  not renewed by ACME (import the next one, or add --account)"),
        }
        for (task, done) in &i.deployed {
            println!("  {task}: {done}");
        }
    }
    imported.map(|_| ()).map_err(|(e, _)| e)
}

/// Reads the certificate chain and key from --cert/--key or --pkcs12.
fn read_bundle(args: &CertImport) -> anyhow::Result<Bundle> {
    let read = |p: &std::path::Path| {
        std::fs::read(p)
            .with_context(|| format!("cannot read {}", p.display()))
            .map_err(|e| invalid("cert", format!("{e:#}")))
    };
    let named =
        |p: &std::path::Path, e: anyhow::Error| invalid("cert", format!("{}: {e:#}", p.display()));
    if let Some(path) = &args.pkcs12 {
        let password = args.password.as_deref().unwrap_or_default();
        return bundle_from_pkcs12(&read(path)?, password).map_err(|e| named(path, e));
    }
    let cert_path = args.cert.as_ref().context("--cert or --pkcs12 is required")?;
    let text = String::from_utf8(read(cert_path)?)
        .map_err(|_| invalid("cert", format!("{} is not PEM text", cert_path.display())))?;
    let key = match &args.key {
        Some(p) => Some(String::from_utf8_lossy(&read(p)?).into_owned()),
        None => None,
    };
    if split_pem_chain(&text).ok().is_none_or(|c| c.is_empty()) {
        return Err(invalid("cert", format!("{} holds no PEM certificate", cert_path.display())));
    }
    // What can still fail is the key, from its own file or after the certificates.
    let key_file = args.key.as_deref().unwrap_or(cert_path);
    bundle_from_pem(&text, key.as_deref()).map_err(|e| named(key_file, e))
}
