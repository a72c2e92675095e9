//! socket.io sessions: namespace `/communication` under the usual `/socket.io/` path, and the
//! default namespace `/` alike (the course's clients use either).
//!
//! A client identifies with the connect auth payload `{"name": "…"}` or later with an `identify`
//! event (a name string or `{"name": "…"}`); it is then in the room `user:<name>`. Anonymous
//! clients are in the room `everyone`. Server events: `identified`, `match`, `unmatched`, `error`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use domain::PersonName;
use serde_json::{Value, json};
use socketioxide::SocketIo;
use socketioxide::extract::{SocketRef, TryData};

use super::Notice;

pub(crate) const NAMESPACE: &str = "/communication";
/// Every namespace the course's sockets answer on.
const NAMESPACES: [&str; 2] = [NAMESPACE, "/"];
const EVERYONE: &str = "everyone";

fn user_room(name: &str) -> String {
    format!("user:{name}")
}

/// Accepts `"name"` or `{"name": "name"}`.
fn name_from(value: &Value) -> Result<PersonName, String> {
    let raw = match value {
        Value::String(s) => s.as_str(),
        Value::Object(map) => match map.get("name") {
            Some(Value::String(s)) => s.as_str(),
            _ => return Err("expected {\"name\": \"…\"}".to_owned()),
        },
        _ => return Err("expected a name string or {\"name\": \"…\"}".to_owned()),
    };
    PersonName::parse(raw).map_err(|e| e.to_string())
}

/// A socket has one identity at a time: identifying again replaces it.
fn identify(socket: &SocketRef, name: &PersonName) {
    socket.leave_all();
    socket.join(user_room(name.as_str()));
    let _ = socket.emit("identified", &json!({ "name": name.as_str() }));
}

/// Serves the namespaces, counting the sessions open in `sessions`.
pub(crate) fn register(io: &SocketIo, sessions: &Arc<AtomicUsize>) {
    for namespace in NAMESPACES {
        let sessions = sessions.clone();
        io.ns(
            namespace,
            async move |socket: SocketRef, auth: TryData<Value>| {
                on_connect(socket, auth, sessions);
            },
        );
    }
}

fn on_connect(socket: SocketRef, TryData(auth): TryData<Value>, sessions: Arc<AtomicUsize>) {
    // Gone before this ran: its disconnect handler would never run to count it out.
    if !socket.connected() {
        return;
    }
    sessions.fetch_add(1, Ordering::Relaxed);
    let gauge = metrics::gauge!("communication_connected_clients", "transport" => "socketio");
    gauge.increment(1.0);
    match auth.ok().filter(|v| !v.is_null()).map(|v| name_from(&v)) {
        Some(Ok(name)) => identify(&socket, &name),
        Some(Err(reason)) => {
            socket.join(EVERYONE);
            let _ = socket.emit(
                "error",
                &json!({ "code": "invalid_input", "message": reason }),
            );
        }
        None => socket.join(EVERYONE),
    }
    socket.on(
        "identify",
        async |socket: SocketRef, TryData(data): TryData<Value>| match data
            .map_err(|e| e.to_string())
            .and_then(|v| name_from(&v))
        {
            Ok(name) => identify(&socket, &name),
            Err(reason) => {
                let _ = socket.emit(
                    "error",
                    &json!({ "code": "invalid_input", "message": reason }),
                );
            }
        },
    );
    socket.on_disconnect(async move || {
        sessions.fetch_sub(1, Ordering::Relaxed);
        gauge.decrement(1.0);
    });
}

pub(crate) fn broadcast(io: &SocketIo, notice: Arc<Notice>) {
    let mut rooms: Vec<String> = notice.recipients.iter().map(|r| user_room(r)).collect();
    if notice.for_everyone {
        rooms.push(EVERYONE.to_owned());
    }
    for namespace in NAMESPACES.into_iter().filter_map(|n| io.of(n)) {
        let (rooms, notice) = (rooms.clone(), notice.clone());
        tokio::spawn(async move {
            if let Err(e) = namespace
                .to(rooms)
                .emit(&*notice.event, notice.payload())
                .await
            {
                tracing::debug!(error = %e, "socket.io broadcast failed");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_as_strings_or_objects() {
        assert_eq!(
            name_from(&json!("asha")).map(|n| n.to_string()),
            Ok("asha".into())
        );
        assert_eq!(
            name_from(&json!({"name": "asha"})).map(|n| n.to_string()),
            Ok("asha".into())
        );
        assert!(name_from(&json!(42)).is_err());
        assert!(name_from(&json!({"name": ""})).is_err());
    }
}
