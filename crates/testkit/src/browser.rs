//! A real headless Chromium driven through ChromeDriver over the W3C WebDriver protocol
//! (plain JSON over HTTP): open pages, fill forms, click, wait for text, take screenshots,
//! and read the browser's console for JavaScript errors.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

use crate::{free_port, require_tool, wait_until};

const INSTALL: &str = "install Debian's chromium and chromium-driver: \
                       sudo apt-get install chromium chromium-driver (scripts/test does)";

/// The W3C name of an element reference in JSON.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A browser session; ChromeDriver and Chromium stop when it is dropped.
pub struct Browser {
    driver: tokio::process::Child,
    http: reqwest::Client,
    session: String,
    base: String,
    _profile: tempfile::TempDir,
    /// Where downloads land.
    pub downloads: tempfile::TempDir,
}

impl Browser {
    /// Starts ChromeDriver on a free port and a headless Chromium session `width`×`height`.
    pub async fn start(width: u32, height: u32) -> Browser {
        let chromium = require_tool("chromium", INSTALL);
        let chromedriver = require_tool("chromedriver", INSTALL);
        let port = free_port();
        let driver = tokio::process::Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("chromedriver starts");
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("an HTTP client");
        let base = format!("http://127.0.0.1:{port}");
        wait_until("chromedriver to answer", Duration::from_secs(30), || {
            let http = http.clone();
            let url = format!("{base}/status");
            async move { http.get(url).send().await.ok().filter(|r| r.status().is_success()) }
        })
        .await;
        let profile = tempfile::TempDir::new().expect("a profile directory");
        let downloads = tempfile::TempDir::new().expect("a download directory");
        let caps = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:loggingPrefs": { "browser": "ALL" },
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                    "--no-proxy-server",
                    format!("--user-data-dir={}", profile.path().display()),
                    format!("--window-size={width},{height}"),
                ],
                "prefs": {
                    "download.default_directory": downloads.path(),
                    "download.prompt_for_download": false,
                },
            },
        }}});
        let rsp: Value = http
            .post(format!("{base}/session"))
            .json(&caps)
            .send()
            .await
            .expect("chromedriver answers")
            .json()
            .await
            .expect("chromedriver answers JSON");
        let session = rsp["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("chromedriver started no session: {rsp}"))
            .to_string();
        let browser = Browser { driver, http, session, base, _profile: profile, downloads };
        // Downloads in headless Chromium go where the DevTools protocol says.
        let dir = browser.downloads.path().display().to_string();
        browser
            .cmd(
                "POST",
                "goog/cdp/execute",
                json!({ "cmd": "Browser.setDownloadBehavior",
                        "params": { "behavior": "allow", "downloadPath": dir } }),
            )
            .await;
        browser
    }

    async fn cmd(&self, method: &str, path: &str, body: Value) -> Value {
        let url = format!("{}/session/{}/{path}", self.base, self.session);
        let req = match method {
            "GET" => self.http.get(&url),
            "DELETE" => self.http.delete(&url),
            _ => self.http.post(&url).json(&body),
        };
        let rsp: Value = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("WebDriver {path}: {e}"))
            .json()
            .await
            .unwrap_or_else(|e| panic!("WebDriver {path}: {e}"));
        rsp["value"].clone()
    }

    async fn try_cmd(&self, method: &str, path: &str, body: Value) -> Result<Value, String> {
        let v = self.cmd(method, path, body).await;
        match v.get("error") {
            Some(e) => Err(format!("{e}: {}", v["message"].as_str().unwrap_or_default())),
            None => Ok(v),
        }
    }

    /// Opens `url` and waits for it to load.
    pub async fn goto(&self, url: &str) {
        self.try_cmd("POST", "url", json!({ "url": url }))
            .await
            .unwrap_or_else(|e| panic!("opening {url}: {e}"));
    }

    /// The current URL.
    pub async fn url(&self) -> String {
        self.cmd("GET", "url", json!({})).await.as_str().unwrap_or_default().to_string()
    }

    /// Resizes the window.
    pub async fn resize(&self, width: u32, height: u32) {
        self.try_cmd("POST", "window/rect", json!({ "width": width, "height": height }))
            .await
            .expect("the window resizes");
    }

    async fn find_now(&self, css: &str) -> Option<String> {
        let v = self
            .try_cmd("POST", "element", json!({ "using": "css selector", "value": css }))
            .await
            .ok()?;
        v[ELEMENT].as_str().map(str::to_string)
    }

    /// The element matching `css`, waiting up to 20 s for it to appear.
    pub async fn find(&self, css: &str) -> String {
        wait_until(&format!("an element {css}"), Duration::from_secs(20), || self.find_now(css))
            .await
    }

    /// Whether an element matches `css` now.
    pub async fn exists(&self, css: &str) -> bool {
        self.find_now(css).await.is_some()
    }

    /// Clicks the element matching `css`.
    pub async fn click(&self, css: &str) {
        let id = self.find(css).await;
        self.try_cmd("POST", &format!("element/{id}/click"), json!({}))
            .await
            .unwrap_or_else(|e| panic!("clicking {css}: {e}"));
    }

    /// Clears the field matching `css` and types `text` into it.
    pub async fn fill(&self, css: &str, text: &str) {
        let id = self.find(css).await;
        self.try_cmd("POST", &format!("element/{id}/clear"), json!({})).await.ok();
        self.try_cmd("POST", &format!("element/{id}/value"), json!({ "text": text }))
            .await
            .unwrap_or_else(|e| panic!("typing into {css}: {e}"));
    }

    /// Sets the value of the field matching `css` directly (for long text, e.g. a PEM).
    pub async fn set_value(&self, css: &str, text: &str) {
        self.script(
            "const e = document.querySelector(arguments[0]); e.value = arguments[1]; \
             e.dispatchEvent(new Event('input', {bubbles: true}));",
            json!([css, text]),
        )
        .await;
    }

    /// Chooses the option with `value` in the select matching `css`.
    pub async fn select(&self, css: &str, value: &str) {
        self.click(&format!("{css} option[value=\"{value}\"]")).await;
    }

    /// Accepts the open `confirm()` dialog, waiting up to 10 s for it.
    pub async fn accept_dialog(&self) {
        wait_until("a dialog to accept", Duration::from_secs(10), || async {
            self.try_cmd("POST", "alert/accept", json!({})).await.ok()
        })
        .await;
    }

    /// The visible text of the element matching `css`.
    pub async fn text(&self, css: &str) -> String {
        let id = self.find(css).await;
        self.cmd("GET", &format!("element/{id}/text"), json!({}))
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Waits up to `limit` until the element matching `css` shows `needle`; its text.
    pub async fn wait_for_text(&self, css: &str, needle: &str, limit: Duration) -> String {
        let what = format!("{css} to show {needle:?}");
        wait_until(&what, limit, || async {
            let id = self.find_now(css).await?;
            let text = self.cmd("GET", &format!("element/{id}/text"), json!({})).await;
            text.as_str().filter(|t| t.contains(needle)).map(str::to_string)
        })
        .await
    }

    /// Runs `js` (a function body; `arguments` are `args`) and returns its value.
    pub async fn script(&self, js: &str, args: Value) -> Value {
        self.try_cmd("POST", "execute/sync", json!({ "script": js, "args": args }))
            .await
            .unwrap_or_else(|e| panic!("script failed: {e}"))
    }

    /// Saves a PNG of the window to `path`.
    pub async fn screenshot(&self, path: &Path) {
        use base64::Engine as _;
        let png = self.cmd("GET", "screenshot", json!({})).await;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().expect("a screenshot"))
            .expect("a base64 PNG");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("the screenshot directory");
        }
        std::fs::write(path, bytes).expect("the screenshot is written");
    }

    /// The console messages logged at level SEVERE (JavaScript errors, failed loads) since
    /// the last call.
    pub async fn severe_logs(&self) -> Vec<String> {
        let logs = self.cmd("POST", "se/log", json!({ "type": "browser" })).await;
        logs.as_array()
            .into_iter()
            .flatten()
            .filter(|l| l["level"] == "SEVERE")
            .map(|l| l["message"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    /// Waits for a finished download named `file`; its path.
    pub async fn downloaded(&self, file: &str) -> PathBuf {
        let path = self.downloads.path().join(file);
        wait_until(&format!("the download {file}"), Duration::from_secs(20), || {
            let path = path.clone();
            async move { path.is_file().then_some(path) }
        })
        .await
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Ending the session closes Chromium; then the driver goes.
        use std::io::{Read as _, Write as _};
        let addr = self.base.trim_start_matches("http://");
        if let Ok(mut s) = std::net::TcpStream::connect(addr) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
            let _ = write!(
                s,
                "DELETE /session/{} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n",
                self.session
            );
            let _ = s.read_to_end(&mut Vec::new());
        }
        let _ = self.driver.start_kill();
    }
}
