//! Where messages go: an SMTP server (plain, STARTTLS or implicit TLS, as its URL says), or `.eml`
//! files in a directory.

use std::path::Path;
use std::time::Duration;

use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

/// How long one conversation with the SMTP server may take.
const SMTP_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone)]
pub enum Mailer {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    Files(AsyncFileTransport<Tokio1Executor>),
}

/// The TLS an SMTP URL asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmtpTls {
    /// `smtp://host` — plain SMTP (a relay on a trusted network).
    None,
    /// `smtp://host?tls=opportunistic` — STARTTLS when the server offers it.
    Opportunistic,
    /// `smtp://host?tls=required` — STARTTLS, or no mail.
    Required,
    /// `smtps://host` — TLS from the first byte.
    Wrapper,
}

/// The host and the TLS of an SMTP URL (lettre's forms: `smtp://[user:pass@]host[:port]`, with
/// `?tls=required|opportunistic`, or `smtps://…`); an error a person can act on if it is not one.
pub fn parse_smtp_url(url: &str) -> Result<(String, SmtpTls), String> {
    let usage = "must be smtp://[user:password@]host[:port][?tls=required|opportunistic] or smtps://[user:password@]host[:port]";
    let parsed =
        url::Url::parse(url).map_err(|e| format!("mail.smtp_url {url:?}: {e}; it {usage}"))?;
    let host = parsed
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| format!("mail.smtp_url {url:?} names no host; it {usage}"))?
        .to_owned();
    let tls = parsed
        .query_pairs()
        .find(|(k, _)| k == "tls")
        .map(|(_, v)| v.into_owned());
    let mode = match (parsed.scheme(), tls.as_deref()) {
        ("smtp", None) => SmtpTls::None,
        ("smtp", Some("opportunistic")) => SmtpTls::Opportunistic,
        ("smtp", Some("required")) => SmtpTls::Required,
        ("smtps", None) => SmtpTls::Wrapper,
        _ => return Err(format!("mail.smtp_url {url:?} {usage}")),
    };
    // Whatever lettre would refuse is refused here, when the config loads.
    AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
        .map_err(|e| format!("mail.smtp_url {url:?}: {e}"))?;
    Ok((host.trim_matches(['[', ']']).to_owned(), mode))
}

impl Mailer {
    /// SMTP as `url` says (`parse_smtp_url`); with `ca_pem`, the server's certificate is checked
    /// against that authority instead of the public ones (a private or test CA).
    pub fn smtp(url: &str, ca_pem: Option<&[u8]>) -> Result<Self, String> {
        let (host, mode) = parse_smtp_url(url)?;
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|e| format!("mail.smtp_url {url:?}: {e}"))?;
        if let Some(pem) = ca_pem {
            let certificate =
                Certificate::from_pem(pem).map_err(|e| format!("mail.ca_file: {e}"))?;
            let parameters = TlsParameters::builder(host)
                .add_root_certificate(certificate)
                .build()
                .map_err(|e| format!("mail.ca_file: {e}"))?;
            builder = builder.tls(match mode {
                SmtpTls::None => {
                    return Err(
                        "mail.ca_file is for TLS: add ?tls=required to mail.smtp_url, or use smtps://"
                            .into(),
                    );
                }
                SmtpTls::Opportunistic => Tls::Opportunistic(parameters),
                SmtpTls::Required => Tls::Required(parameters),
                SmtpTls::Wrapper => Tls::Wrapper(parameters),
            });
        }
        Ok(Self::Smtp(builder.timeout(Some(SMTP_TIMEOUT)).build()))
    }

    /// `.eml` files under `dir` (created if missing).
    pub fn files(dir: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        Ok(Self::Files(AsyncFileTransport::<Tokio1Executor>::new(dir)))
    }

    pub async fn send(&self, message: Message) -> Result<(), String> {
        match self {
            Self::Smtp(smtp) => smtp
                .send(message)
                .await
                .map(drop)
                .map_err(|e| e.to_string()),
            Self::Files(files) => files
                .send(message)
                .await
                .map(drop)
                .map_err(|e| e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smtp_urls_say_their_tls() {
        for (url, host, mode) in [
            ("smtp://127.0.0.1:2525", "127.0.0.1", SmtpTls::None),
            ("smtp://mail.example", "mail.example", SmtpTls::None),
            (
                "smtp://user:secret@mail.example:587?tls=required",
                "mail.example",
                SmtpTls::Required,
            ),
            (
                "smtp://mail.example?tls=opportunistic",
                "mail.example",
                SmtpTls::Opportunistic,
            ),
            ("smtps://mail.example", "mail.example", SmtpTls::Wrapper),
        ] {
            assert_eq!(parse_smtp_url(url), Ok((host.to_owned(), mode)), "{url}");
        }
        for bad in [
            "http://x:1",
            "smtp://:25",
            "smtp://x:port",
            "smtp://x?tls=sometimes",
            "smtps://x?tls=required",
            "mail.example",
        ] {
            assert!(parse_smtp_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_ca_file_needs_tls() {
        let pem = b"-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n";
        assert!(Mailer::smtp("smtp://127.0.0.1:2525", Some(pem)).is_err());
    }
}
