//! Debian's Chromium, headless, driven through chromedriver (WebDriver) with fantoccini, with a
//! fake microphone that plays a WAV file once: the console tests and `callbot bench browser`.
//! Screenshots go to `target/test-artifacts/<name>/`.

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

#[derive(Debug)]
pub struct Browser {
    pub client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
    shots: std::path::PathBuf,
}

impl Drop for Browser {
    /// Ends chromedriver and every Chromium process it started (they share its process group):
    /// a session nobody closed must not leave a browser running after the test or the bench.
    fn drop(&mut self) {
        let group = format!("-{}", self.driver.id());
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stderr(Stdio::null())
            .status();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Whether Chromium and chromedriver are installed. Without them this is `false` (said on stderr)
/// when `CALLBOT_SKIP_BROWSER=1` skips browser tests knowingly, and a panic otherwise
/// (`scripts/test.sh` installs them).
pub fn available() -> bool {
    let have = std::path::Path::new("/usr/bin/chromium").exists()
        && std::path::Path::new("/usr/bin/chromedriver").exists();
    if !have {
        assert!(
            std::env::var("CALLBOT_SKIP_BROWSER").is_ok_and(|v| v == "1"),
            "chromium and chromedriver are needed (scripts/test.sh installs them); CALLBOT_SKIP_BROWSER=1 skips knowingly"
        );
        eprintln!("CALLBOT_SKIP_BROWSER=1: browser test skipped");
    }
    have
}

impl Browser {
    /// Starts chromedriver and a Chromium whose microphone plays `mic` (a 16-bit WAV) once.
    pub async fn start(name: &str, mic: Option<&std::path::Path>) -> anyhow::Result<Browser> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let driver = Command::new("/usr/bin/chromedriver")
            .arg(format!("--port={port}"))
            // Its own process group, which its Chromium inherits: dropped together.
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| anyhow::anyhow!("starting /usr/bin/chromedriver: {e}"))?;
        let profile = tempfile::tempdir()?;
        let mut args = vec![
            "--headless=new".to_owned(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--disable-dev-shm-usage".into(),
            "--autoplay-policy=no-user-gesture-required".into(),
            "--use-fake-ui-for-media-stream".into(),
            "--use-fake-device-for-media-stream".into(),
            "--window-size=1280,900".into(),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        if let Some(m) = mic {
            args.push(format!(
                "--use-file-for-fake-audio-capture={}%noloop",
                m.display()
            ));
        }
        let caps: serde_json::Map<String, Value> = serde_json::from_value(json!({
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": "/usr/bin/chromium", "args": args},
        }))?;
        let mut client = None;
        for _ in 0..100 {
            let mut builder = ClientBuilder::rustls()?;
            builder.capabilities(caps.clone());
            match builder.connect(&format!("http://127.0.0.1:{port}")).await {
                Ok(c) => {
                    client = Some(c);
                    break;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        let shots = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("target/test-artifacts")
            .join(name);
        std::fs::create_dir_all(&shots)?;
        let mut driver = driver;
        let Some(client) = client else {
            let _ = driver.kill();
            anyhow::bail!("chromedriver did not start a Chromium session");
        };
        Ok(Browser {
            client,
            driver,
            _profile: profile,
            shots,
        })
    }

    /// Saves a screenshot as `<name>.png` among the test's artifacts.
    pub async fn shot(&self, name: &str) -> anyhow::Result<()> {
        let png = self.client.screenshot().await?;
        std::fs::write(self.shots.join(format!("{name}.png")), png)?;
        Ok(())
    }

    /// The element `sel`, waiting up to 20 s for it.
    pub async fn css(&self, sel: &str) -> anyhow::Result<fantoccini::elements::Element> {
        self.client
            .wait()
            .at_most(Duration::from_secs(20))
            .for_element(Locator::Css(sel))
            .await
            .map_err(|e| anyhow::anyhow!("no element {sel}: {e}"))
    }

    /// Clicks the element `sel`, waiting up to 20 s for it.
    pub async fn click(&self, sel: &str) -> anyhow::Result<()> {
        self.css(sel).await?.click().await?;
        Ok(())
    }

    /// Runs `js` (a function body) in the page.
    pub async fn js(&self, js: &str) -> anyhow::Result<Value> {
        Ok(self.client.execute(js, vec![]).await?)
    }

    /// Waits up to `secs` for the page's `js` expression to be truthy, returning its value.
    pub async fn until(&self, js: &str, secs: u64) -> anyhow::Result<Value> {
        for _ in 0..secs * 5 {
            let v = self.js(&format!("return {js};")).await?;
            if !(v.is_null() || v == json!(false) || v == json!(0) || v == json!("")) {
                return Ok(v);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let page = self.js("return document.body.innerText;").await?;
        anyhow::bail!("{js} did not hold within {secs} s; page: {page}")
    }
}
