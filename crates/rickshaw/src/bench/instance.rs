//! A `rickshaw up` started for a bench run as a child process (this binary, SQLite in a temporary
//! directory): `bench edge` loads one, `bench dispatch --provider-apart` runs the card provider in
//! one so that its CPU is counted apart from the platform's.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context;

/// The instance, stopped (and its directory removed) on drop.
pub struct Instance {
    child: tokio::process::Child,
    dir: PathBuf,
    url: String,
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A loopback port free now (the OS's choice), for a listener started a moment later.
fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

impl Instance {
    /// Starts `rickshaw up` on a free loopback port with `env` (config overrides such as
    /// `RICKSHAW_PROVIDER__WEBHOOK_URL`) and waits until it is ready (at most 60 s).
    pub async fn start(
        name: &str,
        env: &[(&str, String)],
        progress: &impl Fn(&str),
    ) -> anyhow::Result<Self> {
        let port = free_port()?;
        let dir =
            std::env::temp_dir().join(format!("rickshaw-bench-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let log = std::fs::File::create(dir.join("instance.log"))?;
        let child = tokio::process::Command::new(std::env::current_exe()?)
            .arg("up")
            .arg("--data-dir")
            .arg(dir.join("data"))
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .env("RUST_LOG", "warn")
            .envs(env.iter().map(|(key, value)| (key, value)))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .context("starting `rickshaw up`")?;
        let mut instance = Self {
            child,
            dir,
            url: format!("http://127.0.0.1:{port}"),
        };
        progress(&format!("started `rickshaw up` on {}", instance.url));
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(answer) = client.get(format!("{}/readyz", instance.url)).send().await
                && answer.status().is_success()
            {
                return Ok(instance);
            }
            // The directory (and its log) goes with the instance: what it said is in the error.
            if let Some(status) = instance.child.try_wait()? {
                anyhow::bail!(
                    "`rickshaw up` exited ({status}) before it was ready; its log ends:\n{}",
                    log_tail(&instance.dir)
                );
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "the instance was not ready within 60 s; its log ends:\n{}",
                log_tail(&instance.dir)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The child's process id (while it runs).
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }
}

/// The last lines of the instance's log.
fn log_tail(dir: &Path) -> String {
    let log = std::fs::read_to_string(dir.join("instance.log")).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}
