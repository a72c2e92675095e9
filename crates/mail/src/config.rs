//! The mail service's section of the config (`[mail]`).

use std::path::PathBuf;

use platform::config::Section;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MailConfig {
    /// An SMTP server, `smtp://host:port` (plain SMTP to a relay; no TLS in this build). Unset:
    /// mail is written as `.eml` files to `dir`.
    pub smtp_url: Option<String>,
    /// The sender of every message.
    pub from: String,
    /// Where `.eml` files go without an SMTP server; unset: `<data_dir>/mail`.
    pub dir: Option<PathBuf>,
}

impl Default for MailConfig {
    fn default() -> Self {
        Self {
            smtp_url: None,
            from: "Rickshaw <receipts@rickshaw.example>".to_owned(),
            dir: None,
        }
    }
}

impl Section for MailConfig {
    const NAME: &'static str = "mail";

    fn validate(&self) -> Result<(), String> {
        if let Some(url) = &self.smtp_url {
            smtp_address(url)?;
        }
        self.from
            .parse::<lettre::message::Mailbox>()
            .map_err(|e| format!("mail.from = {:?} is not an address: {e}", self.from))?;
        Ok(())
    }
}

/// `smtp://host:port` → (host, port); port 25 by default.
pub fn smtp_address(url: &str) -> Result<(String, u16), String> {
    let rest = url
        .strip_prefix("smtp://")
        .ok_or_else(|| format!("mail.smtp_url = {url:?} must be smtp://host:port"))?;
    let (host, port) = match rest.rsplit_once(':') {
        Some((host, port)) => (
            host,
            port.parse::<u16>()
                .map_err(|_| format!("mail.smtp_url = {url:?}: {port:?} is not a port"))?,
        ),
        None => (rest, 25),
    };
    if host.is_empty() || host.contains('/') {
        return Err(format!("mail.smtp_url = {url:?} must be smtp://host:port"));
    }
    Ok((host.to_owned(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smtp_urls_name_a_host_and_a_port() {
        assert_eq!(
            smtp_address("smtp://127.0.0.1:2525"),
            Ok(("127.0.0.1".into(), 2525))
        );
        assert_eq!(
            smtp_address("smtp://mail.example"),
            Ok(("mail.example".into(), 25))
        );
        assert!(smtp_address("http://x:1").is_err());
        assert!(smtp_address("smtp://:25").is_err());
        assert!(smtp_address("smtp://x:port").is_err());
        assert!(MailConfig::default().validate().is_ok());
        let bad = MailConfig {
            from: "not an address".into(),
            ..MailConfig::default()
        };
        assert!(bad.validate().is_err());
    }
}
