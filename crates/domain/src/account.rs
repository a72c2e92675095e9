//! Accounts of the product API: who someone is (an email), what they may do (a role) and, for
//! drivers, the vehicle they drive. Passwords and tokens belong to the identity service.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::pricing::Package;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Rider,
    Driver,
    /// Operations: refunds, later the audit log and the operations map. Never granted by
    /// sign-up: `rickshaw admin create` makes one.
    Admin,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Self::Rider => "rider",
            Self::Driver => "driver",
            Self::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "rider" => Ok(Self::Rider),
            "driver" => Ok(Self::Driver),
            "admin" => Ok(Self::Admin),
            other => Err(format!(
                "unknown role {other:?}; expected \"rider\" or \"driver\""
            )),
        }
    }
}

pub const MAX_EMAIL_CHARS: usize = 254;

/// An email address, trimmed and lower-cased (one account per address, whatever the case).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let email = raw.trim().to_lowercase();
        if email.is_empty() {
            return Err("email must not be empty".into());
        }
        if email.chars().count() > MAX_EMAIL_CHARS {
            return Err(format!("email is longer than {MAX_EMAIL_CHARS} characters"));
        }
        let valid = match email.split_once('@') {
            Some((local, domain)) => {
                !local.is_empty()
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
                    && !domain.contains('@')
                    && !email.chars().any(|c| c.is_whitespace() || c.is_control())
            }
            None => false,
        };
        if !valid {
            return Err(format!("{raw:?} is not an email address"));
        }
        Ok(Self(email))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Email {
    type Error = String;

    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Self::parse(&raw)
    }
}

impl From<Email> for String {
    fn from(email: Email) -> Self {
        email.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A driver's vehicle: which package it serves, its plate and its model.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vehicle {
    pub package: Package,
    pub plate: String,
    pub model: String,
}

pub const MAX_PLATE_CHARS: usize = 16;
pub const MAX_MODEL_CHARS: usize = 64;

impl Vehicle {
    /// Validates and normalises (trims) a vehicle; the error names the field.
    pub fn new(package: Package, plate: &str, model: &str) -> Result<Self, (&'static str, String)> {
        let plate = plate.trim();
        if plate.is_empty() || plate.chars().count() > MAX_PLATE_CHARS {
            return Err((
                "plate",
                format!("plate must be 1 to {MAX_PLATE_CHARS} characters"),
            ));
        }
        if !plate
            .chars()
            .all(|c| c.is_alphanumeric() || c == '-' || c == ' ')
        {
            return Err((
                "plate",
                "plate may hold only letters, digits, spaces and '-'".into(),
            ));
        }
        let model = model.trim();
        if model.is_empty() || model.chars().count() > MAX_MODEL_CHARS {
            return Err((
                "model",
                format!("model must be 1 to {MAX_MODEL_CHARS} characters"),
            ));
        }
        if model.chars().any(char::is_control) {
            return Err(("model", "model must not contain control characters".into()));
        }
        Ok(Self {
            package,
            plate: plate.to_owned(),
            model: model.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(
            Email::parse("  Ana@Example.COM ").expect("valid").as_str(),
            "ana@example.com"
        );
        for bad in [
            "",
            "ana",
            "ana@",
            "@x.com",
            "ana@com",
            "a b@x.com",
            "a@@x.com",
            "a@x.com.",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} accepted");
        }
        let long = format!("{}@x.com", "a".repeat(250));
        assert!(Email::parse(&long).is_err());
    }

    #[test]
    fn roles_and_vehicles_validate() {
        assert_eq!("driver".parse::<Role>(), Ok(Role::Driver));
        assert_eq!(
            "admin".parse::<Role>(),
            Ok(Role::Admin),
            "stored; sign-up refuses it"
        );
        assert!("owner".parse::<Role>().is_err());
        let v = Vehicle::new(Package::Car, " DHA-KA 11 ", " Toyota Axio ").expect("valid");
        assert_eq!(
            (v.plate.as_str(), v.model.as_str()),
            ("DHA-KA 11", "Toyota Axio")
        );
        assert_eq!(
            Vehicle::new(Package::Car, "", "x").expect_err("empty").0,
            "plate"
        );
        assert_eq!(
            Vehicle::new(Package::Car, "A;1", "x").expect_err("chars").0,
            "plate"
        );
        assert_eq!(
            Vehicle::new(Package::Car, "A1", "").expect_err("empty").0,
            "model"
        );
    }
}
