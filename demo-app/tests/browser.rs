//! Headless Chromium (Debian's `chromium` + `chromium-driver`, installed by
//! `.ci/run`) opens the page served by a three-node cluster, clicks increment,
//! log in and log out, and checks what the page shows after each. A
//! screenshot is kept in `target/tmp/browser-*.png`.
//!
//! The WebDriver protocol is plain HTTP + JSON, so the test speaks it with
//! reqwest rather than pulling in a WebDriver client crate.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::{free_ports, ProcessCluster};
use serde_json::{json, Value};

const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

struct Driver {
    process: Child,
    http: reqwest::Client,
    base: String,
    session: String,
    _profile: tempfile::TempDir,
}

impl Driver {
    async fn start() -> Self {
        let port = free_ports(1)[0];
        let process = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let http = reqwest::Client::new();
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        while http.get(format!("{base}/status")).send().await.is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let profile = tempfile::tempdir().unwrap();
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                         "--no-first-run", "--disable-background-networking",
                         "--disable-component-update", "--disable-sync",
                         "--window-size=1000,900",
                         format!("--user-data-dir={}", profile.path().display())]
            }
        }}});
        let v: Value = http
            .post(format!("{base}/session"))
            .json(&caps)
            .send()
            .await
            .expect("new WebDriver session")
            .json()
            .await
            .unwrap();
        let session = v["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {v}"))
            .to_owned();
        Self {
            process,
            http,
            base,
            session,
            _profile: profile,
        }
    }

    async fn call(&self, method: &str, path: &str, body: Value) -> Value {
        let url = format!("{}/session/{}{}", self.base, self.session, path);
        let request = match method {
            "GET" => self.http.get(url),
            _ => self.http.post(url).json(&body),
        };
        let v: Value = request.send().await.unwrap().json().await.unwrap();
        assert!(v["value"].get("error").is_none(), "{method} {path}: {v}");
        v["value"].clone()
    }

    async fn goto(&self, url: &str) {
        self.call("POST", "/url", json!({ "url": url })).await;
    }

    async fn element(&self, css: &str) -> String {
        let v = self
            .call(
                "POST",
                "/element",
                json!({"using": "css selector", "value": css}),
            )
            .await;
        v[ELEMENT_KEY]
            .as_str()
            .unwrap_or_else(|| panic!("find {css}: {v}"))
            .to_owned()
    }

    async fn click(&self, css: &str) {
        let id = self.element(css).await;
        self.call("POST", &format!("/element/{id}/click"), json!({}))
            .await;
    }

    async fn type_into(&self, css: &str, text: &str) {
        let id = self.element(css).await;
        self.call("POST", &format!("/element/{id}/clear"), json!({}))
            .await;
        self.call(
            "POST",
            &format!("/element/{id}/value"),
            json!({ "text": text }),
        )
        .await;
    }

    async fn text(&self, css: &str) -> String {
        let id = self.element(css).await;
        self.call("GET", &format!("/element/{id}/text"), Value::Null)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Waits until the element's text is `expected` (the page updates itself
    /// after fetches, so a check right after a click would race).
    async fn wait_text(&self, css: &str, expected: &str) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let got = self.text(css).await;
            if got == expected {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{css}: expected {expected:?}, page shows {got:?} (error line: {:?})",
                self.text("#error").await
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn screenshot(&self, path: &Path) {
        let v = self.call("GET", "/screenshot", Value::Null).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap())
            .unwrap();
        std::fs::write(path, png).unwrap();
    }
}

impl Drop for Driver {
    /// Ends the WebDriver session first (that is what stops Chromium; killing
    /// chromedriver alone would orphan the browser), then chromedriver. Plain
    /// blocking TCP because `Drop` cannot await, and it runs on panics too.
    fn drop(&mut self) {
        use std::io::{Read, Write};
        let addr = self.base.trim_start_matches("http://").to_owned();
        if let Ok(mut stream) = std::net::TcpStream::connect(&addr) {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
            let request = format!(
                "DELETE /session/{} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                self.session
            );
            if stream.write_all(request.as_bytes()).is_ok() {
                let mut answer = Vec::new();
                let _ = stream.read_to_end(&mut answer);
            }
        }
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_increments_logs_in_and_out() {
    if !Path::new("/usr/bin/chromium").exists() || which("chromedriver").is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "chromium/chromedriver missing under CI"
        );
        eprintln!("SKIPPED: apt-get install chromium chromium-driver to run the browser test");
        return;
    }
    let cluster = ProcessCluster::start(3).await;
    let driver = Driver::start().await;
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR"));

    driver.goto(&format!("{}/", cluster.nodes[0].url())).await;
    driver.wait_text("#count", "0").await;
    driver.wait_text("#node", "node-1").await;
    // The cluster view fills itself in: three members, one leader.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let rows = driver.text("#members").await;
        if rows.lines().count() == 3 && rows.contains("leader") {
            break;
        }
        assert!(Instant::now() < deadline, "members table: {rows:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    driver.click("#increment").await;
    driver.wait_text("#count", "1").await;
    driver.click("#increment").await;
    driver.wait_text("#count", "2").await;
    driver
        .screenshot(&shots.join("browser-after-increment.png"))
        .await;

    driver.type_into("#username", "alice").await;
    driver.click("#login").await;
    driver.wait_text("#user", "alice").await;
    // Login rotates the id but keeps the data.
    driver.wait_text("#count", "2").await;
    driver.click("#increment").await;
    driver.wait_text("#count", "3").await;
    driver
        .screenshot(&shots.join("browser-logged-in.png"))
        .await;

    driver.click("#logout").await;
    driver.wait_text("#user", "not logged in").await;
    driver.wait_text("#count", "0").await;
    driver
        .screenshot(&shots.join("browser-logged-out.png"))
        .await;
}

fn which(name: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.exists())
    })
}
