//! The product's real-time channel, `GET /v1/ws`: an authenticated WebSocket per rider or driver
//! (token in `Authorization: Bearer …` or `?token=`). Every trip notice for the account is pushed
//! as `{"id": "17", "type": "trip.offered", "trip": {…}, "at": …}`; a rider also gets the assigned
//! driver's position (`driver.position`) until the trip ends, and a driver may send positions
//! (`{"type": "location", "lat": …, "lng": …}`).
//!
//! Ids: a trip notice's id is its number in the trip service's log; a position's id is
//! `"<last notice id>.<n>"`. A client that reconnects with `?last_event_id=<the last id it saw>`
//! (either kind) is first sent every notice it missed, from the log, then the live stream —
//! deduplicated, so nothing is lost or doubled across the switch. Positions are never replayed:
//! the next one supersedes them.
//!
//! Every instance gets every notice and position from the bus and delivers to the sessions it
//! holds, so a client may reconnect to any instance.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use axum::Router;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade, close_code};
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use domain::events::{DriverLocated, Event};
use domain::{AccountId, LatLng, Role};
use futures_util::{SinkExt, StreamExt};
use identity::TokenVerifier;
use platform::auth::Caller;
use platform::bus::{self, BusError, Handled, SharedBus, SubscribeOptions, Subscription};
use platform::{ApiError, ErrorCode, Shutdown, clock};
use serde::Deserialize;
use serde_json::{Value, json};
use supply::SupplyApi;
use tokio::sync::mpsc;
use trip::{NoticeKind, TripApi, TripNotice};

use crate::limits::{Beat, SocketLimits, close};

/// Messages queued per session; a session that falls this far behind is closed (it reconnects
/// with its last id and catches up from the log).
const SESSION_QUEUE: usize = 1024;
/// How many sent notice ids a session remembers to recognise late live copies.
const SENT_MEMORY: usize = 4096;

/// How far below a reconnecting client's `last_event_id` its notices are sent again (flagged
/// `"resent": true`). Notices are published after their commits by several trip instances, and
/// an outbox may relay one seconds late (a restart), so a client can have seen id N and not yet
/// N − k; without the resend it would never get it. 100,000 ids is minutes of a busy city's
/// notices; clients drop the ids they already have.
pub const RESEND_WINDOW: i64 = 100_000;

/// What one session has sent: which notices (recent ids), the highest, and how many positions
/// since it, for position ids `"<highest>.<n>"`. Notices are published after their commits by
/// different tasks, so a lower id can arrive after a higher one: it is sent, not dropped; only an
/// id already sent, or one below the resend window of the client's `last_event_id`, is skipped.
#[derive(Debug, Default)]
struct Sent {
    /// Everything up to this id came before this session (the client's `last_event_id` less
    /// the resend window).
    before: Option<i64>,
    ids: BTreeSet<i64>,
    highest: i64,
    positions: u64,
}

impl Sent {
    fn after(last_event_id: Option<i64>) -> Self {
        Self {
            before: last_event_id.map(|last| last.saturating_sub(RESEND_WINDOW).max(0)),
            highest: last_event_id.unwrap_or(0),
            ..Self::default()
        }
    }

    /// Whether notice `id` should be sent now (and, if so, it counts as sent).
    fn admit(&mut self, id: i64) -> bool {
        if self.before.is_some_and(|before| id <= before) || !self.ids.insert(id) {
            return false;
        }
        if self.ids.len() > SENT_MEMORY {
            self.ids.pop_first();
        }
        if id > self.highest {
            self.highest = id;
            self.positions = 0;
        }
        true
    }

    /// The id of the next position message.
    fn position_id(&mut self) -> String {
        self.positions += 1;
        format!("{}.{}", self.highest, self.positions)
    }
}
/// Notices fetched per page while replaying.
const REPLAY_PAGE: u32 = 200;

/// What the real-time channel needs from other services.
#[derive(Clone)]
pub struct RealtimeDeps {
    pub trips: Arc<dyn TripApi>,
    pub supply: Arc<dyn SupplyApi>,
    /// For the driver's average shown to the rider with the assignment.
    pub ratings: Arc<dyn rating::TripRatingApi>,
    pub verifier: TokenVerifier,
}

/// A notice as delivered live, serialised once for every session it goes to: `frame` for all,
/// `rider_frame` (with the assigned driver's average, for `trip.driver_assigned`) for the rider.
struct LiveNotice {
    notice: TripNotice,
    frame: Utf8Bytes,
    rider_frame: Option<Utf8Bytes>,
}

impl LiveNotice {
    fn new(notice: TripNotice, driver_rating: Option<&rating::AccountRating>) -> Self {
        Self {
            frame: notice_text(&notice, None, false),
            rider_frame: driver_rating.map(|rating| notice_text(&notice, Some(rating), false)),
            notice,
        }
    }

    /// The frame for `account`.
    fn frame_for(&self, account: AccountId) -> Message {
        match &self.rider_frame {
            Some(frame) if account == self.notice.trip.rider_id => Message::Text(frame.clone()),
            _ => Message::Text(self.frame.clone()),
        }
    }
}

enum Live {
    Notice(Arc<LiveNotice>),
    Position(Arc<DriverLocated>),
}

/// How long delivering an assignment waits for the driver's average before sending it without.
const RATING_WAIT: std::time::Duration = std::time::Duration::from_millis(500);

/// Drivers' averages as last read, kept a minute: most assignments of a driver cost no lookup, so
/// a slow rating service rarely holds up the notices behind one (they are delivered in order).
#[derive(Default)]
struct DriverRatings {
    seen: Mutex<HashMap<AccountId, (std::time::Instant, rating::AccountRating)>>,
}

impl DriverRatings {
    const FRESH: std::time::Duration = std::time::Duration::from_secs(60);
    /// Most averages kept; when full, the table starts over.
    const MAX: usize = 50_000;

    async fn of(
        &self,
        driver: AccountId,
        ratings: &dyn rating::TripRatingApi,
    ) -> Option<rating::AccountRating> {
        let now = std::time::Instant::now();
        if let Some((at, rating)) = self.lock().get(&driver)
            && now.duration_since(*at) < Self::FRESH
        {
            return Some(rating.clone());
        }
        let rating = tokio::time::timeout(RATING_WAIT, ratings.account_rating(driver))
            .await
            .ok()
            .and_then(Result::ok)?;
        let mut seen = self.lock();
        if seen.len() >= Self::MAX {
            seen.clear();
        }
        seen.insert(driver, (now, rating.clone()));
        Some(rating)
    }

    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<AccountId, (std::time::Instant, rating::AccountRating)>>
    {
        self.seen.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[derive(Default)]
struct Sessions {
    by_account: HashMap<AccountId, Vec<(u64, mpsc::Sender<Live>)>>,
    /// driver → riders whose trip they drive.
    watchers: HashMap<AccountId, HashSet<AccountId>>,
}

/// The `/v1/ws` sessions of this process, by account, and the riders watching each driver.
#[derive(Clone)]
struct SessionHub {
    deps: RealtimeDeps,
    sessions: Arc<Mutex<Sessions>>,
    next_session: Arc<AtomicU64>,
    shutdown: Shutdown,
    limits: SocketLimits,
}

/// A session's place in the hub, given back when dropped: when the session ends, or when the
/// upgrade it was taken for fails.
struct Registration {
    hub: SessionHub,
    account: AccountId,
    id: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.hub.unregister(self.account, self.id);
    }
}

pub struct Realtime {
    hub: SessionHub,
    notices: Subscription,
    positions: Subscription,
}

impl Realtime {
    /// Subscribes to trip notices and driver positions (fan-out: every instance sees all).
    pub async fn build(
        bus: &SharedBus,
        deps: RealtimeDeps,
        shutdown: &Shutdown,
        limits: SocketLimits,
    ) -> Result<Self, BusError> {
        let notices = bus
            .subscribe(SubscribeOptions::ephemeral(TripNotice::SUBJECT))
            .await?;
        let positions = bus
            .subscribe(SubscribeOptions::ephemeral(DriverLocated::SUBJECT))
            .await?;
        Ok(Self {
            hub: SessionHub {
                deps,
                sessions: Arc::default(),
                next_session: Arc::default(),
                shutdown: shutdown.clone(),
                limits,
            },
            notices,
            positions,
        })
    }

    pub fn routes(&self) -> Router {
        Router::new()
            .route("/v1/ws", get(upgrade))
            .with_state(self.hub.clone())
    }

    pub fn run(self, shutdown: &Shutdown) {
        let hub = self.hub.clone();
        let driver_ratings = Arc::new(DriverRatings::default());
        shutdown.spawn(bus::consume(
            self.notices,
            shutdown.token(),
            "communication.trip_notices",
            move |notice: TripNotice, _| {
                let (hub, driver_ratings) = (hub.clone(), driver_ratings.clone());
                async move {
                    // Looked up only where the rider has a session (every instance sees every
                    // notice).
                    let driver_rating = match (notice.kind, notice.trip.driver_id) {
                        (NoticeKind::DriverAssigned, Some(driver))
                            if hub.has_session(&notice.recipients) =>
                        {
                            driver_ratings.of(driver, &*hub.deps.ratings).await
                        }
                        _ => None,
                    };
                    hub.deliver_notice(notice, driver_rating.as_ref());
                    Handled::Done
                }
            },
        ));
        let hub = self.hub;
        shutdown.spawn(bus::consume(
            self.positions,
            shutdown.token(),
            "communication.driver_positions",
            move |position: DriverLocated, _| {
                hub.deliver_position(Arc::new(position));
                async { Handled::Done }
            },
        ));
    }
}

fn lock(sessions: &Mutex<Sessions>) -> std::sync::MutexGuard<'_, Sessions> {
    sessions.lock().unwrap_or_else(PoisonError::into_inner)
}

impl SessionHub {
    /// Whether any of `accounts` has a session on this instance.
    fn has_session(&self, accounts: &[AccountId]) -> bool {
        let sessions = lock(&self.sessions);
        accounts.iter().any(|a| sessions.by_account.contains_key(a))
    }

    fn send(&self, account: &AccountId, live: impl Fn() -> Live) {
        let mut sessions = lock(&self.sessions);
        if let Some(list) = sessions.by_account.get_mut(account) {
            // A full queue drops the session; its client reconnects and replays.
            list.retain(|(_, tx)| tx.try_send(live()).is_ok());
        }
    }

    fn deliver_notice(&self, notice: TripNotice, driver_rating: Option<&rating::AccountRating>) {
        let here = {
            let mut sessions = lock(&self.sessions);
            let (rider, driver) = (notice.trip.rider_id, notice.trip.driver_id);
            match notice.kind {
                // A driver drives one trip at a time: its rider replaces any earlier one.
                NoticeKind::DriverAssigned | NoticeKind::DriverArrived | NoticeKind::Started => {
                    if let Some(driver) = driver {
                        sessions.watchers.insert(driver, HashSet::from([rider]));
                    }
                }
                NoticeKind::Completed | NoticeKind::Cancelled | NoticeKind::Redispatched => {
                    for driver in driver.into_iter().chain(notice.recipients.iter().copied()) {
                        sessions.watchers.remove(&driver);
                    }
                    for riders in sessions.watchers.values_mut() {
                        riders.remove(&rider);
                    }
                    sessions.watchers.retain(|_, riders| !riders.is_empty());
                }
                _ => {}
            }
            notice
                .recipients
                .iter()
                .any(|a| sessions.by_account.contains_key(a))
        };
        // Serialised only where it is delivered (every instance sees every notice).
        if !here {
            return;
        }
        let live = Arc::new(LiveNotice::new(notice, driver_rating));
        for account in &live.notice.recipients {
            self.send(account, || Live::Notice(live.clone()));
        }
    }

    fn deliver_position(&self, position: Arc<DriverLocated>) {
        let riders: Vec<AccountId> = lock(&self.sessions)
            .watchers
            .get(&position.driver)
            .map(|r| r.iter().copied().collect())
            .unwrap_or_default();
        for rider in riders {
            self.send(&rider, || Live::Position(position.clone()));
        }
    }

    /// A place for one more session of `account`, unless it holds `per_account` already.
    fn register(&self, account: AccountId) -> Option<(Registration, mpsc::Receiver<Live>)> {
        let id = self.next_session.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(SESSION_QUEUE);
        let mut sessions = lock(&self.sessions);
        let list = sessions.by_account.entry(account).or_default();
        if list.len() >= self.limits.per_account {
            return None;
        }
        list.push((id, tx));
        drop(sessions);
        let registration = Registration {
            hub: self.clone(),
            account,
            id,
        };
        Some((registration, rx))
    }

    fn unregister(&self, account: AccountId, id: u64) {
        let mut sessions = lock(&self.sessions);
        if let Some(list) = sessions.by_account.get_mut(&account) {
            list.retain(|(session, _)| *session != id);
            if list.is_empty() {
                sessions.by_account.remove(&account);
            }
        }
    }

    fn watch(&self, driver: AccountId, rider: AccountId) {
        lock(&self.sessions)
            .watchers
            .insert(driver, HashSet::from([rider]));
    }

    fn unwatch(&self, driver: AccountId, rider: AccountId) {
        let mut sessions = lock(&self.sessions);
        if sessions
            .watchers
            .get(&driver)
            .is_some_and(|riders| riders.contains(&rider))
        {
            sessions.watchers.remove(&driver);
        }
    }
}

#[derive(Debug, Deserialize)]
struct WsQuery {
    token: Option<String>,
    last_event_id: Option<String>,
}

/// `N` or `N.k` (a position's id) → N.
fn parse_last_event_id(raw: &str) -> Result<i64, ApiError> {
    let notice = raw.split_once('.').map_or(raw, |(n, _)| n);
    notice
        .parse::<i64>()
        .ok()
        .filter(|n| *n >= 0)
        .ok_or_else(|| {
            ApiError::invalid_field(
                "last_event_id",
                format!("{raw:?} is not an event id; send the id of the last message you received"),
            )
        })
}

async fn upgrade(
    State(hub): State<SessionHub>,
    headers: HeaderMap,
    query: Result<Query<WsQuery>, axum::extract::rejection::QueryRejection>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let query = match query {
        Ok(Query(query)) => query,
        Err(e) => return ApiError::new(ErrorCode::InvalidInput, e.body_text()).into_response(),
    };
    let header_token = platform::auth::bearer(&headers).map(str::to_owned);
    let Some(token) = header_token.or(query.token) else {
        return ApiError::new(
            ErrorCode::Unauthorized,
            "send an access token: Authorization: Bearer <token>, or ?token=<token>",
        )
        .into_response();
    };
    let (caller, expires_at) = match hub.deps.verifier.caller(&token, clock::now()) {
        Ok(proven) => proven,
        Err(e) => return ApiError::from(e).into_response(),
    };
    let last_event_id = match query.last_event_id.as_deref().map(parse_last_event_id) {
        None => None,
        Some(Ok(id)) => Some(id),
        Some(Err(e)) => return e.into_response(),
    };
    // An id beyond the log's head names nothing ever sent: replaying after it would silence the
    // session until the log caught up.
    if let Some(after) = last_event_id {
        match hub.deps.trips.notice_head().await {
            Ok(head) if after > head => {
                let mut error = ApiError::new(
                    ErrorCode::BadRequest,
                    format!(
                        "last_event_id {after} is beyond the newest notice ({head}); reconnect with the last id you received, or without one"
                    ),
                );
                error.field = Some("last_event_id".to_owned());
                return error.into_response();
            }
            Ok(_) => {}
            Err(e) => return ApiError::from(e).into_response(),
        }
    }
    let upgrade = match crate::limits::websocket(upgrade, "/v1/ws") {
        Ok(upgrade) => upgrade,
        Err(refused) => return refused.into_response(),
    };
    // Registered before the replay is read, so nothing published meanwhile is missed; the live
    // copies of replayed notices are skipped by id.
    let Some((registration, live)) = hub.register(caller.account) else {
        metrics::counter!("communication_sessions_refused_total", "why" => "per_account")
            .increment(1);
        return ApiError::new(
            ErrorCode::RateLimited,
            format!(
                "this account has {} sessions open already (sockets.per_account); close one first",
                hub.limits.per_account
            ),
        )
        .with_retry_after(1)
        .into_response();
    };
    hub.limits
        .apply(upgrade, 16 * 1024)
        .on_upgrade(move |socket| {
            session(
                socket,
                hub,
                caller,
                expires_at,
                last_event_id,
                registration,
                live,
            )
        })
}

fn frame(value: &Value) -> Message {
    Message::Text(value.to_string().into())
}

/// A notice as sent on `/v1/ws`.
#[derive(serde::Serialize)]
struct NoticeFrame<'a> {
    id: String,
    #[serde(rename = "type")]
    kind: NoticeKind,
    trip: &'a trip::TripView,
    at: domain::Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    driver_rating: Option<&'a rating::AccountRating>,
    /// Sent again after a reconnect: the client may have it.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    resent: bool,
}

/// A notice's frame text; `resent`: sent again after a reconnect, the client may have it.
fn notice_text(
    notice: &TripNotice,
    driver_rating: Option<&rating::AccountRating>,
    resent: bool,
) -> Utf8Bytes {
    let body = NoticeFrame {
        id: notice.id.to_string(),
        kind: notice.kind,
        trip: &notice.trip,
        at: notice.at,
        driver_rating,
        resent,
    };
    serde_json::to_string(&body).unwrap_or_default().into()
}

fn error_frame(e: &ApiError) -> Message {
    let mut body = json!({"type": "error", "code": e.code, "message": e.message});
    if let Some(field) = &e.field {
        body["field"] = json!(field);
    }
    frame(&body)
}

async fn session(
    socket: WebSocket,
    hub: SessionHub,
    caller: Caller,
    expires_at: domain::Timestamp,
    last_event_id: Option<i64>,
    _registration: Registration,
    mut live: mpsc::Receiver<Live>,
) {
    let _running = hub.shutdown.hold();
    // The session lives as long as its token: then the client reconnects with a fresh one (and
    // its last id), so a revoked account stops hearing within one access-token lifetime.
    let token_left = std::time::Duration::from_millis(expires_at.millis_since(clock::now()));
    let token_expiry = tokio::time::sleep(token_left);
    tokio::pin!(token_expiry);
    let stop = hub.shutdown.token();
    let gauge = metrics::gauge!("communication_connected_clients", "transport" => "v1_ws");
    gauge.increment(1.0);
    let (mut sink, mut stream) = socket.split();
    let mut liveness = hub.limits.liveness();
    let mut sent = Sent::after(last_event_id);
    let hello = json!({
        "type": "hello",
        "account_id": caller.account,
        "role": caller.role,
        "replaying_after": last_event_id.map(|id| id.to_string()),
    });
    let mut open = sink.send(frame(&hello)).await.is_ok();
    if open && let Some(last) = last_event_id {
        open = replay(&hub, &caller, last, &mut sink, &mut sent).await;
    }
    if open && caller.role == Role::Rider {
        // The driver of a trip under way, whose position the rider should see.
        if let Ok(trips) = hub.deps.trips.list(&caller, 5).await {
            for trip in trips {
                if trip.status.is_under_way()
                    && let Some(driver) = trip.driver_id
                {
                    hub.watch(driver, caller.account);
                    // It may have ended between the list and the watch.
                    let ended = hub
                        .deps
                        .trips
                        .get(&caller, trip.id)
                        .await
                        .map_or(true, |t| !t.status.is_under_way());
                    if ended {
                        hub.unwatch(driver, caller.account);
                    }
                }
            }
        }
    }
    if !open {
        gauge.decrement(1.0);
        return;
    }
    loop {
        let outgoing = tokio::select! {
            () = stop.cancelled() => {
                let _ = sink.send(close(close_code::AWAY, "server shutting down")).await;
                break;
            }
            () = &mut token_expiry => {
                let _ = sink
                    .send(close(close_code::POLICY, "the access token expired; reconnect with a fresh one and last_event_id"))
                    .await;
                break;
            }
            beat = liveness.tick() => match beat {
                Beat::Ping => Message::Ping(Default::default()),
                Beat::Idle => {
                    let _ = sink.send(close(close_code::POLICY, "idle too long; reconnect with last_event_id")).await;
                    break;
                }
            },
            incoming = stream.next() => match incoming {
                None | Some(Ok(Message::Close(_))) => break,
                Some(Err(e)) => {
                    if let Some(closing) = crate::limits::too_large(&e) {
                        let _ = sink.send(closing).await;
                    }
                    break;
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {
                    liveness.heard();
                    continue;
                }
                Some(Ok(Message::Binary(_))) => {
                    liveness.heard();
                    error_frame(&ApiError::new(
                        ErrorCode::InvalidInput,
                        "binary frames are not supported; send JSON text",
                    ))
                }
                Some(Ok(Message::Text(text))) => {
                    liveness.heard();
                    match handle_client(&hub, &caller, text.as_str()).await {
                        Ok(Some(reply)) => frame(&reply),
                        Ok(None) => continue,
                        Err(e) => error_frame(&e),
                    }
                }
            },
            next = live.recv() => match next {
                Some(first) => {
                    // This one and whatever else is already queued, in one write.
                    let mut written = true;
                    let mut next = Some(first);
                    let mut batch = 0;
                    while let Some(item) = next.take() {
                        if let Some(message) = live_frame(item, &mut sent, caller.account)
                            && sink.feed(message).await.is_err()
                        {
                            written = false;
                            break;
                        }
                        batch += 1;
                        if batch < WRITE_BATCH {
                            next = live.try_recv().ok();
                        }
                    }
                    if !written || sink.flush().await.is_err() {
                        break;
                    }
                    continue;
                }
                None => {
                    let _ = sink
                        .send(close(close_code::AGAIN, "fell behind; reconnect with last_event_id"))
                        .await;
                    break;
                }
            },
        };
        if sink.send(outgoing).await.is_err() {
            break;
        }
    }
    gauge.decrement(1.0);
}

/// Most queued messages a session writes at once (then flushes).
const WRITE_BATCH: usize = 64;

/// The frame of a live message for this session, or `None` for a notice it has sent already.
fn live_frame(item: Live, sent: &mut Sent, account: AccountId) -> Option<Message> {
    match item {
        Live::Notice(live) => sent.admit(live.notice.id).then(|| live.frame_for(account)),
        Live::Position(position) => Some(frame(&json!({
            "id": sent.position_id(),
            "type": "driver.position",
            "driver_id": position.driver,
            "position": position.position,
            "at": position.at,
        }))),
    }
}

/// Sends the caller's notices after `after`, page by page; false if the socket closed.
/// Every notice of the caller after `last` less the resend window; those up to `last` (the
/// client may have them) flagged `"resent": true`.
async fn replay(
    hub: &SessionHub,
    caller: &Caller,
    last: i64,
    sink: &mut futures_util::stream::SplitSink<WebSocket, Message>,
    sent: &mut Sent,
) -> bool {
    let mut cursor = last.saturating_sub(RESEND_WINDOW).max(0);
    loop {
        let page = match hub.deps.trips.notices(caller, cursor, REPLAY_PAGE).await {
            Ok(page) => page,
            Err(e) => {
                // Going on would let live notices move the client's last id past the gap:
                // close, and let it reconnect with the id it has.
                let error = ApiError::from(e);
                let _ = sink.send(error_frame(&error)).await;
                let _ = sink
                    .send(close(
                        close_code::AGAIN,
                        "cannot replay now; reconnect with last_event_id",
                    ))
                    .await;
                return false;
            }
        };
        let full = page.len() == REPLAY_PAGE as usize;
        for notice in &page {
            if sink
                .send(Message::Text(notice_text(notice, None, notice.id <= last)))
                .await
                .is_err()
            {
                return false;
            }
            cursor = notice.id;
            // Replayed ids are all new to the session; `admit` records them.
            sent.admit(notice.id);
        }
        if !full {
            return true;
        }
    }
}

/// What a `/v1/ws` client may send.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum ClientFrame {
    Ping,
    Location { lat: f64, lng: f64 },
}

/// A client's frame, read: a ping, or a valid position; anything else is a 4xx naming it.
fn parse_client_frame(text: &str) -> Result<Parsed, ApiError> {
    let message: ClientFrame = serde_json::from_str(text).map_err(|e| {
        ApiError::new(
            ErrorCode::InvalidInput,
            format!("unknown message ({e}); send {{\"type\": \"ping\"}} or {{\"type\": \"location\", \"lat\": …, \"lng\": …}}"),
        )
    })?;
    Ok(match message {
        ClientFrame::Ping => Parsed::Ping,
        ClientFrame::Location { lat, lng } => Parsed::Location(
            LatLng::new(lat, lng).map_err(|e| ApiError::invalid_field(e.field(), e.to_string()))?,
        ),
    })
}

/// A client frame, checked.
#[derive(Debug, PartialEq)]
enum Parsed {
    Ping,
    Location(LatLng),
}

async fn handle_client(
    hub: &SessionHub,
    caller: &Caller,
    text: &str,
) -> Result<Option<Value>, ApiError> {
    match parse_client_frame(text)? {
        Parsed::Ping => Ok(Some(json!({"type": "pong"}))),
        Parsed::Location(position) => {
            if caller.role != Role::Driver {
                return Err(ApiError::new(
                    ErrorCode::Forbidden,
                    "only drivers report positions",
                ));
            }
            hub.deps
                .supply
                .locate(caller.account, position)
                .await
                .map_err(ApiError::from)?;
            Ok(None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    mod fuzzing {
        use proptest::prelude::*;

        use super::super::{Parsed, parse_client_frame};

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(3000))]

            /// Whatever a `/v1/ws` client sends is a ping, a position on the globe, or a 4xx
            /// naming the problem (the session sends it as an error frame) — never a panic.
            #[test]
            fn any_frame_is_read_or_refused(text in platform::fuzz::text(&["type", "lat", "lng", "ping", "location"])) {
                match parse_client_frame(&text) {
                    Ok(Parsed::Ping) => {}
                    Ok(Parsed::Location(at)) => {
                        prop_assert!(at.lat().abs() <= 90.0 && at.lng().abs() <= 180.0);
                    }
                    Err(e) => prop_assert!(platform::fuzz::is_client_error(&e), "{e:?}"),
                }
            }
        }
    }

    #[test]
    fn late_notices_are_sent_once_and_never_dropped() {
        let last = RESEND_WINDOW + 10;
        let mut sent = Sent::after(Some(last));
        assert!(
            !sent.admit(9),
            "below the resend window: the client had it before connecting"
        );
        assert!(
            sent.admit(last - 1),
            "within the window: the client may have missed it (published late)"
        );
        assert_eq!(sent.position_id(), format!("{last}.1"));
        assert!(sent.admit(last + 2));
        assert_eq!(sent.position_id(), format!("{}.1", last + 2));
        // One published after a higher one: still sent, and it does not move the highest id.
        assert!(sent.admit(last + 1));
        assert_eq!(sent.position_id(), format!("{}.2", last + 2));
        assert!(
            !sent.admit(last + 1) && !sent.admit(last + 2),
            "a live copy of a sent notice"
        );
        assert!(sent.admit(last + 3));
        assert_eq!(sent.position_id(), format!("{}.1", last + 3));
        let mut fresh = Sent::after(None);
        assert!(fresh.admit(1) && fresh.admit(2) && !fresh.admit(1));
    }

    #[test]
    fn last_event_ids_of_both_kinds_parse_to_the_notice_id() {
        assert_eq!(parse_last_event_id("17").ok(), Some(17));
        assert_eq!(parse_last_event_id("17.3").ok(), Some(17));
        assert_eq!(parse_last_event_id("0").ok(), Some(0));
        for bad in ["", "x", "-1", "1e3", ".2"] {
            let err = parse_last_event_id(bad).expect_err(bad);
            assert_eq!(err.field.as_deref(), Some("last_event_id"));
        }
    }
}
