//! The audit log: an append-only record of every domain event — what happened, who did it, when,
//! which trip and which accounts it concerns, and the event's id — kept by its own service in its
//! own database. It follows the services' events as a durable consumer of each audited subject
//! (`audit.subjects`; every instance shares the groups, each event is recorded once, by its id),
//! records them in batches, and answers `GET /v1/admin/audit` for admins: filtered by account,
//! trip, kind and time, in the order things happened, a page at a time.

pub mod config;
pub mod module;
pub mod record;
pub mod remote;
pub mod store;

use std::collections::BTreeMap;

use async_trait::async_trait;
use domain::{AccountId, EventId, Role, Timestamp, TripId};
use platform::auth::Caller;
use platform::{ApiError, ErrorCode};
use serde::{Deserialize, Serialize};

pub use config::AuditConfig;
pub use module::Module;
pub use record::{Actor, ActorKind, Recorded};
pub use store::AuditStore;

/// One recorded event as an admin reads it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub event_id: EventId,
    /// The bus subject it came on (`trip.notice.v1`, …).
    pub subject: String,
    /// What happened (`trip.offered`, `payment.captured`, `rating.trip_rated`, `mail.receipt`, …).
    pub kind: String,
    pub occurred_at: Timestamp,
    pub actor: Actor,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trip_id: Option<TripId>,
    /// Every account the event concerns.
    pub accounts: Vec<AccountId>,
    /// The event as it was published.
    pub data: serde_json::Value,
}

/// Most entries a page holds, and the default.
pub const MAX_LIMIT: u32 = 500;
pub const DEFAULT_LIMIT: u32 = 100;

/// What an admin asks for: all filters optional; `since` inclusive, `until` exclusive.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditQuery {
    pub account: Option<AccountId>,
    pub trip: Option<TripId>,
    /// A kind (`trip.offered`) or a family of kinds (`trip`, `payment`).
    pub kind: Option<String>,
    pub since: Option<Timestamp>,
    pub until: Option<Timestamp>,
    /// Where the previous page ended (its `next`).
    pub after: Option<Cursor>,
    pub limit: u32,
}

/// A position in the log: the last entry's time and its sequence number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    pub occurred_at: i64,
    pub seq: i64,
}

impl std::fmt::Display for Cursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.occurred_at, self.seq)
    }
}

impl std::str::FromStr for Cursor {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (at, seq) = s.split_once('-').ok_or(())?;
        Ok(Self {
            occurred_at: at.parse().map_err(|_| ())?,
            seq: seq.parse().map_err(|_| ())?,
        })
    }
}

impl AuditQuery {
    /// The query of `GET /v1/admin/audit`'s parameters: every value checked, an unknown parameter
    /// refused, each error naming its field.
    pub fn from_params(params: &BTreeMap<String, String>) -> Result<Self, AuditError> {
        let invalid = |field: &str, message: String| AuditError::Invalid {
            field: field.to_owned(),
            message,
        };
        let mut query = Self {
            limit: DEFAULT_LIMIT,
            ..Self::default()
        };
        for (name, value) in params {
            match name.as_str() {
                "account" => {
                    query.account = Some(value.parse().map_err(|_| {
                        invalid("account", format!("{value:?} is not an account id"))
                    })?);
                }
                "trip" => {
                    query.trip = Some(
                        value
                            .parse()
                            .map_err(|_| invalid("trip", format!("{value:?} is not a trip id")))?,
                    );
                }
                "kind" => {
                    let valid = !value.is_empty()
                        && value.len() <= 64
                        && value
                            .chars()
                            .all(|c| c.is_ascii_lowercase() || c == '_' || c == '.')
                        && !value.starts_with('.')
                        && !value.ends_with('.');
                    if !valid {
                        return Err(invalid(
                            "kind",
                            format!(
                                "{value:?} is not a kind: lowercase words joined by dots, as trip.offered, or a family, as payment"
                            ),
                        ));
                    }
                    query.kind = Some(value.clone());
                }
                "since" => query.since = Some(instant("since", value)?),
                "until" => query.until = Some(instant("until", value)?),
                "after" => {
                    query.after = Some(value.parse().map_err(|()| {
                        invalid(
                            "after",
                            format!(
                                "{value:?} is not a cursor: pass the `next` of the previous page"
                            ),
                        )
                    })?);
                }
                "limit" => {
                    query.limit = value
                        .parse::<u32>()
                        .ok()
                        .filter(|l| (1..=MAX_LIMIT).contains(l))
                        .ok_or_else(|| {
                            invalid("limit", format!("limit must be 1 to {MAX_LIMIT}"))
                        })?;
                }
                other => {
                    return Err(invalid(
                        other,
                        format!(
                            "unknown parameter {other:?}; expected account, trip, kind, since, until, after or limit"
                        ),
                    ));
                }
            }
        }
        if let (Some(since), Some(until)) = (query.since, query.until)
            && since >= until
        {
            return Err(invalid("until", "until must be later than since".into()));
        }
        Ok(query)
    }
}

/// `value` as a time: milliseconds since the epoch, or RFC 3339 (`2026-11-29T14:00:00Z`).
fn instant(field: &str, value: &str) -> Result<Timestamp, AuditError> {
    if let Ok(millis) = value.parse::<i64>()
        && millis >= 0
    {
        return Ok(Timestamp::from_millis(millis));
    }
    humantime::parse_rfc3339_weak(value)
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .and_then(|d| i64::try_from(d.as_millis()).ok())
        .map(Timestamp::from_millis)
        .ok_or_else(|| AuditError::Invalid {
            field: field.to_owned(),
            message: format!(
                "{value:?} is not a time: milliseconds since the epoch, or RFC 3339 as 2026-11-29T14:00:00Z"
            ),
        })
}

/// A page of entries, oldest first, and where the next page starts (`None` at the end).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditPage {
    pub entries: Vec<AuditEntry>,
    pub next: Option<String>,
}

#[derive(Clone, Debug, PartialEq, thiserror::Error, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditError {
    #[error("only an admin reads the audit log")]
    Forbidden,
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    #[error("the audit log cannot be read now: {0}")]
    Unavailable(String),
}

impl From<AuditError> for ApiError {
    fn from(e: AuditError) -> Self {
        let message = e.to_string();
        match e {
            AuditError::Forbidden => ApiError::new(ErrorCode::Forbidden, message),
            AuditError::Invalid { field, message } => ApiError::invalid_field(field, message),
            AuditError::Unavailable(_) => ApiError::unavailable(message).with_retry_after(1),
        }
    }
}

impl From<ApiError> for AuditError {
    fn from(e: ApiError) -> Self {
        match e.code {
            ErrorCode::Forbidden | ErrorCode::Unauthorized => Self::Forbidden,
            _ => Self::Unavailable(e.message),
        }
    }
}

#[async_trait]
pub trait AuditApi: Send + Sync + 'static {
    /// The entries matching `query`, for an admin `caller`.
    async fn query(&self, caller: &Caller, query: AuditQuery) -> Result<AuditPage, AuditError>;
}

/// The audit log read from its store.
pub struct AuditService {
    store: AuditStore,
}

impl AuditService {
    pub fn new(store: AuditStore) -> Self {
        Self { store }
    }

    pub fn store(&self) -> &AuditStore {
        &self.store
    }
}

#[async_trait]
impl AuditApi for AuditService {
    async fn query(&self, caller: &Caller, query: AuditQuery) -> Result<AuditPage, AuditError> {
        if caller.role != Role::Admin {
            return Err(AuditError::Forbidden);
        }
        let limit = query.limit.clamp(1, MAX_LIMIT);
        let rows = self
            .store
            .query(&query, limit)
            .await
            .map_err(|e| AuditError::Unavailable(e.to_string()))?;
        let next = (rows.len() == limit as usize)
            .then(|| rows.last().map(|(cursor, _)| cursor.to_string()))
            .flatten();
        Ok(AuditPage {
            entries: rows.into_iter().map(|(_, entry)| entry).collect(),
            next,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    mod fuzzing {
        use std::collections::BTreeMap;

        use proptest::prelude::*;

        use super::super::{AuditError, AuditQuery, MAX_LIMIT};

        fn param() -> impl Strategy<Value = String> {
            prop_oneof![
                prop::sample::select(
                    &[
                        "account", "trip", "kind", "since", "until", "after", "limit"
                    ][..]
                )
                .prop_map(str::to_owned),
                ".{0,10}",
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(3000))]

            /// Any query string is a valid query or names the parameter that is wrong.
            #[test]
            fn any_query_is_read_or_named(params in prop::collection::btree_map(param(), ".{0,40}", 0..6)) {
                let params: BTreeMap<String, String> = params;
                match AuditQuery::from_params(&params) {
                    Ok(q) => prop_assert!((1..=MAX_LIMIT).contains(&q.limit)),
                    Err(AuditError::Invalid { field, message }) => {
                        prop_assert!(!message.is_empty());
                        prop_assert!(params.contains_key(&field), "{field} is one of {params:?}");
                    }
                    Err(other) => prop_assert!(false, "{other:?}"),
                }
            }
        }
    }

    fn params(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn field_of(e: AuditError) -> String {
        match e {
            AuditError::Invalid { field, .. } => field,
            other => panic!("not a field error: {other:?}"),
        }
    }

    #[test]
    fn parameters_are_checked_and_named() {
        let q = AuditQuery::from_params(&params(&[
            ("trip", "0190f1d2-7c3a-7b6e-8a1f-2b3c4d5e6f70"),
            ("kind", "payment"),
            ("since", "2026-11-29T14:00:00Z"),
            ("until", "1795970000000"),
            ("after", "1764420000000-7"),
            ("limit", "20"),
        ]))
        .expect("valid");
        assert_eq!(q.kind.as_deref(), Some("payment"));
        assert_eq!(q.since, Some(Timestamp::from_millis(1_795_960_800_000)));
        assert_eq!(q.until, Some(Timestamp::from_millis(1_795_970_000_000)));
        assert_eq!(
            q.after,
            Some(Cursor {
                occurred_at: 1_764_420_000_000,
                seq: 7
            })
        );
        assert_eq!(q.limit, 20);
        assert_eq!(
            AuditQuery::from_params(&params(&[])).expect("empty").limit,
            DEFAULT_LIMIT
        );
        for (pair, field) in [
            (("account", "nobody"), "account"),
            (("trip", "7"), "trip"),
            (("kind", "Trip.Offered"), "kind"),
            (("kind", "trip.%"), "kind"),
            (("since", "yesterday"), "since"),
            (("after", "12"), "after"),
            (("limit", "0"), "limit"),
            (("limit", "501"), "limit"),
            (("page", "2"), "page"),
        ] {
            let e = AuditQuery::from_params(&params(&[pair])).expect_err(pair.1);
            assert_eq!(field_of(e), field, "{pair:?}");
        }
        let e = AuditQuery::from_params(&params(&[("since", "2000"), ("until", "1000")]))
            .expect_err("an empty window");
        assert_eq!(field_of(e), "until");
    }
}
