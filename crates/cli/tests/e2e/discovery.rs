//! `discover`: names read from nginx and Apache configuration, and a certificate made of them.

use serde_json::{Value, json};

use crate::common::{names, set};
use crate::support::{Env, hostile};

#[tokio::test(flavor = "multi_thread")]
async fn discover_reads_web_server_configuration_and_creates_a_certificate() {
    let env = Env::start(hostile()).await;
    env.account("le", &[]).await;
    let etc = tempfile::TempDir::new().unwrap();
    let nginx = etc.path().join("nginx");
    std::fs::create_dir_all(nginx.join("sites-enabled")).unwrap();
    std::fs::write(
        nginx.join("nginx.conf"),
        "events {}\nhttp {\n  include mime.types;\n  include sites-enabled/*;\n}\n",
    )
    .unwrap();
    std::fs::write(nginx.join("mime.types"), "types { text/html html; }\n").unwrap();
    std::fs::write(
        nginx.join("sites-enabled/shop.conf"),
        "server {\n  listen 443 ssl;\n  server_name shop.test www.shop.test;\n}\n\
         server {\n  listen 80 default_server;\n  server_name _;\n}\n",
    )
    .unwrap();
    std::fs::write(
        nginx.join("sites-enabled/blog.conf"),
        "server { listen 80; server_name Blog.Test. ~^(?<sub>.+)\\.blog\\.test$; }\n",
    )
    .unwrap();
    let conf = nginx.join("nginx.conf");
    let conf = conf.to_str().unwrap();

    let out = env.ok(&["discover", "nginx", "--config", conf]).await;
    assert!(out.contains("Read 4 file(s), 3 site(s)."), "{out}");
    assert!(out.contains("shop.conf:1") && out.contains("www.shop.test"), "{out}");
    assert!(out.contains("skipped _:") && out.contains("skipped ~^(?<sub>"), "{out}");
    assert!(out.contains("Names to certify: blog.test, shop.test, www.shop.test"), "{out}");

    let json: Value = serde_json::from_str(
        &env.ok(&["discover", "nginx", "--config", conf, "--tls-only", "--json"]).await,
    )
    .unwrap();
    assert_eq!(json["identifiers"], json!(["shop.test", "www.shop.test"]));
    assert_eq!(json["sites"].as_array().unwrap().len(), 1);

    let missing = env.fails(6, &["discover", "nginx", "--config", "/nonexistent/nginx.conf"]).await;
    assert!(missing.contains("/nonexistent/nginx.conf"), "{missing}");
    std::fs::write(nginx.join("sites-enabled/broken.conf"), "server { server_name x.test;\n")
        .unwrap();
    let broken = env.fails(3, &["discover", "nginx", "--config", conf]).await;
    assert!(broken.contains("broken.conf"), "{broken}");
    std::fs::remove_file(nginx.join("sites-enabled/broken.conf")).unwrap();

    env.ok(&[
        "discover",
        "nginx",
        "--config",
        conf,
        "--match",
        "*.shop.test,shop.test",
        "--create",
        "shop",
        "--account",
        "le",
        "--challenge",
        &env.http01(),
    ])
    .await;
    env.ok(&["cert", "request", "shop"]).await;
    env.verify_issued("shop", &["shop.test", "www.shop.test"]).await;
    assert_eq!(names(&env.show("shop").await["sans"]), set(&["shop.test", "www.shop.test"]));

    // Apache: virtual hosts, aliases, IncludeOptional.
    let apache = etc.path().join("apache2");
    std::fs::create_dir_all(apache.join("sites-enabled")).unwrap();
    std::fs::write(
        apache.join("apache2.conf"),
        "ServerRoot \"{root}\"\nIncludeOptional sites-enabled/*.conf\nIncludeOptional conf.d/*.conf\n"
            .replace("{root}", apache.to_str().unwrap()),
    )
    .unwrap();
    std::fs::write(
        apache.join("sites-enabled/app.conf"),
        "<VirtualHost *:443>\n  ServerName app.test\n  ServerAlias api.app.test \\\n    admin.app.test\n  SSLEngine on\n</VirtualHost>\n",
    )
    .unwrap();
    let out = env
        .ok(&["discover", "apache", "--config", apache.join("apache2.conf").to_str().unwrap()])
        .await;
    assert!(out.contains("Names to certify: app.test, api.app.test, admin.app.test"), "{out}");
}
