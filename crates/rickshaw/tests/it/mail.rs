//! Receipts end to end: a completed, paid trip sends its rider a receipt, through a real SMTP
//! server (aiosmtpd from PyPI, writing a Maildir) or, with none configured, as an `.eml` file
//! under the data directory.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use reqwest::Method;

use crate::product_flow::{act, go_online, offered, preview_and_book, rider_and_driver};

/// Every message file under `dir` (recursively), as text.
fn messages(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(messages(&path));
        } else if let Ok(text) = std::fs::read_to_string(&path) {
            found.push(text);
        }
    }
    found
}

/// Waits (up to 15 s) for a message under `dir` containing `needle`.
pub(crate) async fn message_with(dir: &Path, needle: &str) -> String {
    for _ in 0..150 {
        if let Some(found) = messages(dir).into_iter().find(|m| m.contains(needle)) {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "no message with {needle:?} under {}: {:?}",
        dir.display(),
        messages(dir)
    );
}

/// Books and completes a trip; its fare (minor units) and the rider's email.
async fn a_paid_trip(app: &testkit::TestApp) -> (u64, String) {
    let ((rider, _), (driver, _)) = rider_and_driver(app).await;
    go_online(app, &driver).await;
    let trip = preview_and_book(app, &rider).await;
    let id = trip["id"].as_str().expect("id").to_owned();
    offered(app, &driver, &id).await;
    for action in ["accept", "arrive", "start", "complete"] {
        act(app, &driver, &id, action).await;
    }
    let (_, me) = app.call(Method::GET, "/v1/me", &rider, None).await;
    (
        trip["fare"]["amount"].as_u64().expect("fare"),
        me["email"].as_str().expect("email").to_owned(),
    )
}

pub(crate) fn taka(minor: u64) -> String {
    format!("BDT {}.{:02}", minor / 100, minor % 100)
}

/// A real SMTP server (aiosmtpd from PyPI) on a free port, writing what it receives to a Maildir;
/// stopped when dropped.
pub(crate) struct Smtp {
    pub url: String,
    pub maildir: std::path::PathBuf,
    _server: tokio::process::Child,
    _scratch: tempfile::TempDir,
}

impl Smtp {
    pub(crate) async fn start() -> Self {
        Self::start_with(&[]).await
    }

    /// As `start`, with more of aiosmtpd's arguments (`--tlscert`, …).
    pub(crate) async fn start_with(args: &[&std::ffi::OsStr]) -> Self {
        let python = tokio::task::spawn_blocking(testkit::test_python)
            .await
            .expect("python");
        let scratch = tempfile::tempdir().expect("scratch");
        // aiosmtpd's Mailbox makes the Maildir (tmp/, new/, cur/) only where none exists yet.
        let maildir = scratch.path().join("maildir");
        let port = testkit::free_port();
        let server = tokio::process::Command::new(python)
            .args(["-m", "aiosmtpd", "-n", "-l"])
            .arg(format!("127.0.0.1:{port}"))
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(&maildir)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("aiosmtpd starts");
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Self {
            url: format!("smtp://127.0.0.1:{port}"),
            maildir,
            _server: server,
            _scratch: scratch,
        }
    }

    /// Sends the system's mail here.
    pub(crate) fn configure(&self, config: &mut platform::Config) {
        let url = self.url.clone();
        config.edit_section(|m: &mut mail::MailConfig| m.smtp_url = Some(url));
    }
}

#[tokio::test]
async fn a_paid_trip_sends_a_receipt_over_smtp() {
    let smtp = Smtp::start().await;
    let app = testkit::spawn_app_with(|c| smtp.configure(c)).await;
    let maildir = smtp.maildir.clone();
    let (fare, email) = a_paid_trip(&app).await;
    let receipt = message_with(&maildir, &email).await;
    assert!(
        receipt.contains(&format!("Subject: Your Rickshaw receipt: {}", taka(fare))),
        "{receipt}"
    );
    assert!(
        receipt.contains(&format!("Fare:     {}", taka(fare))),
        "{receipt}"
    );
    assert!(
        receipt.contains("From: Rickshaw <receipts@rickshaw.example>"),
        "{receipt}"
    );
    app.stop().await;
}

#[tokio::test]
async fn without_a_server_the_receipt_is_an_eml_file() {
    let app = testkit::spawn_app().await;
    let (fare, email) = a_paid_trip(&app).await;
    let receipt = message_with(&app.config.data_dir.join("mail"), &email).await;
    assert!(receipt.contains(&taka(fare)), "{receipt}");
    app.stop().await;
}

/// STARTTLS to a server that refuses mail without it (aiosmtpd's `require_starttls`), its
/// certificate checked against the CA of `mail.ca_file`.
#[tokio::test]
async fn a_receipt_goes_over_starttls_to_a_server_that_requires_it() {
    let keys = tempfile::tempdir().expect("scratch");
    let certified =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).expect("a certificate");
    let (cert, key) = (keys.path().join("cert.pem"), keys.path().join("key.pem"));
    std::fs::write(&cert, certified.cert.pem()).expect("written");
    std::fs::write(&key, certified.signing_key.serialize_pem()).expect("written");
    let smtp = Smtp::start_with(&[
        "--tlscert".as_ref(),
        cert.as_os_str(),
        "--tlskey".as_ref(),
        key.as_os_str(),
    ])
    .await;
    let url = format!("{}?tls=required", smtp.url);
    let app = testkit::spawn_app_with(|c| {
        c.edit_section(|m: &mut mail::MailConfig| {
            m.smtp_url = Some(url);
            m.ca_file = Some(cert.clone());
        });
    })
    .await;
    let (fare, email) = a_paid_trip(&app).await;
    let receipt = message_with(&smtp.maildir, &email).await;
    assert!(receipt.contains(&taka(fare)), "{receipt}");
    app.stop().await;
}
