//! The mail service's section of the config (`[mail]`).

use std::path::PathBuf;

use platform::config::Section;
use serde::{Deserialize, Serialize};

use crate::mailer::{SmtpTls, parse_smtp_url};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MailConfig {
    /// An SMTP server: `smtp://host:port` (plain, to a relay on a trusted network),
    /// `smtp://user:password@host:587?tls=required` (STARTTLS, or no mail; `opportunistic`: when
    /// offered) or `smtps://user:password@host:465` (TLS from the first byte). Unset: mail is
    /// written as `.eml` files to `dir`.
    pub smtp_url: Option<String>,
    /// A PEM file of the certificate authority the SMTP server's certificate must chain to,
    /// instead of the public ones (a private CA). Only with TLS.
    pub ca_file: Option<PathBuf>,
    /// The sender of every message.
    pub from: String,
    /// Where `.eml` files go without an SMTP server; unset: `<data_dir>/mail`.
    pub dir: Option<PathBuf>,
}

impl Default for MailConfig {
    fn default() -> Self {
        Self {
            smtp_url: None,
            ca_file: None,
            from: "Rickshaw <receipts@rickshaw.example>".to_owned(),
            dir: None,
        }
    }
}

impl Section for MailConfig {
    const NAME: &'static str = "mail";

    fn validate(&self) -> Result<(), String> {
        match (&self.smtp_url, &self.ca_file) {
            (Some(url), ca) => {
                let (_, tls) = parse_smtp_url(url)?;
                if ca.is_some() && tls == SmtpTls::None {
                    return Err(
                        "mail.ca_file is for TLS: add ?tls=required to mail.smtp_url, or use smtps://"
                            .into(),
                    );
                }
            }
            (None, Some(_)) => return Err("mail.ca_file needs mail.smtp_url".into()),
            (None, None) => {}
        }
        self.from
            .parse::<lettre::message::Mailbox>()
            .map_err(|e| format!("mail.from = {:?} is not an address: {e}", self.from))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_is_checked() {
        assert!(MailConfig::default().validate().is_ok());
        let bad = MailConfig {
            from: "not an address".into(),
            ..MailConfig::default()
        };
        assert!(bad.validate().is_err());
        let plain_with_ca = MailConfig {
            smtp_url: Some("smtp://127.0.0.1:25".into()),
            ca_file: Some("ca.pem".into()),
            ..MailConfig::default()
        };
        assert!(plain_with_ca.validate().is_err());
        let tls_with_ca = MailConfig {
            smtp_url: Some("smtp://127.0.0.1:25?tls=required".into()),
            ..plain_with_ca
        };
        assert!(tls_with_ca.validate().is_ok());
    }
}
