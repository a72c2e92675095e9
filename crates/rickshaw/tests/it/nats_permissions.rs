//! Internal traffic trusts nobody by default (issue 11, item 2): a real nats-server under the
//! `authorization` block `rickshaw nats-users` prints. A service's user publishes its own events
//! and calls the services it uses; publishing another service's event, calling a service it does
//! not use, answering another's calls, or a wrong password, are refused by the server. And TLS to
//! NATS, as an option, against a server that requires it.

use std::time::Duration;

use platform::ApiError;
use platform::Shutdown;
use platform::bus::{Bus, Envelope, NatsBus, NatsBusConfig, NatsTls};
use platform::rpc::{self, RpcClient};
use testkit::NatsServer;

fn password(user: &str) -> String {
    format!(
        "pw-{user}-{}",
        &uuid::Uuid::now_v7().simple().to_string()[24..]
    )
}

async fn bus(server: &NatsServer, user: &str, passwords: &[(String, String)]) -> NatsBus {
    let variable = rickshaw::nats_users::password_variable(user);
    let (_, password) = passwords
        .iter()
        .find(|(k, _)| *k == variable)
        .expect("a password");
    NatsBus::connect(NatsBusConfig {
        url: server.url.clone(),
        credentials: Some((user.to_owned(), password.clone())),
        stream_prefix: format!("PERM{}", server.port),
        durable_inactive_threshold: Some(Duration::from_secs(60)),
        ..NatsBusConfig::default()
    })
    .await
    .unwrap_or_else(|e| panic!("{user} connects: {e}"))
}

fn event(subject: &str) -> Envelope {
    Envelope::new(
        platform::clock::new_id(),
        subject.to_owned(),
        platform::clock::now(),
        Default::default(),
        b"{}".to_vec(),
    )
}

#[tokio::test]
async fn each_service_publishes_only_what_it_owns_and_calls_only_what_it_uses() {
    let scratch = tempfile::tempdir().expect("scratch");
    let config = scratch.path().join("auth.conf");
    std::fs::write(
        &config,
        rickshaw::nats_users::authorization(rickshaw::MODULES),
    )
    .expect("written");
    let mut users: Vec<&str> = rickshaw::MODULES.iter().map(|m| m.name()).collect();
    users.push(rickshaw::nats_users::OPS_USER);
    let passwords: Vec<(String, String)> = users
        .iter()
        .map(|u| (rickshaw::nats_users::password_variable(u), password(u)))
        .collect();
    let server = NatsServer::start_with(Some(&config), &passwords).await;

    // supply publishes its own event (and creates its stream); rider may not publish it.
    let supply = bus(&server, "supply", &passwords).await;
    supply
        .publish(event("supply.driver_status.v1"))
        .await
        .expect("supply publishes its own event");
    let rider = bus(&server, "rider", &passwords).await;
    rider
        .publish(event("rider.ride_requested.v1"))
        .await
        .expect("rider publishes its own event");
    assert!(
        rider
            .publish(event("supply.driver_status.v1"))
            .await
            .is_err(),
        "rider may not publish supply's events"
    );
    assert!(
        rider.publish(event("trip.notice.v1")).await.is_err(),
        "nor trip's notices (which reach users' sockets)"
    );

    // Only supply answers rpc.supply.*, and only its callers reach it.
    let shutdown = Shutdown::new();
    rpc::serve(
        supply.client(),
        "rpc.supply.set_status",
        "supply",
        &shutdown,
        |call: rpc::Call<String>| async move { Ok::<_, ApiError>(format!("ok {}", call.request)) },
    )
    .await
    .expect("supply answers its own calls");
    let call = |bus: &NatsBus| {
        let client = RpcClient::new(bus.client(), Duration::from_secs(1));
        async move {
            client
                .call::<_, String, ApiError>("rpc.supply.set_status", &"online".to_owned(), None)
                .await
        }
    };
    let gateway = bus(&server, "gateway", &passwords).await;
    assert_eq!(
        call(&gateway).await.expect("the gateway calls supply"),
        "ok online"
    );
    assert!(
        call(&rider).await.is_err(),
        "rider does not call supply: refused by the server"
    );
    // Another service's user cannot answer supply's calls: the server refuses its subscription
    // (were it let in, about half of the calls below would get its answer).
    let impostor = bus(&server, "pricing", &passwords).await;
    let _ = rpc::serve(
        impostor.client(),
        "rpc.supply.set_status",
        "supply",
        &shutdown,
        |_: rpc::Call<String>| async move { Ok::<_, ApiError>("forged".to_owned()) },
    )
    .await;
    for _ in 0..10 {
        assert_eq!(
            call(&gateway).await.expect("still answered"),
            "ok online",
            "never by another service's user"
        );
    }

    // A wrong password is refused at the door.
    let wrong = async_nats::ConnectOptions::with_user_and_password(
        "supply".to_owned(),
        "not-the-password".to_owned(),
    )
    .connect(server.url.as_str())
    .await;
    assert!(wrong.is_err(), "a wrong password connects");
    shutdown.trigger();
}

/// TLS between the processes and NATS, as an option (`nats.tls_ca_file`): against a server that
/// requires it, a client with the CA publishes; one without it publishes nothing.
#[tokio::test]
async fn nats_over_tls_with_the_configured_ca() {
    let scratch = tempfile::tempdir().expect("scratch");
    let certified =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).expect("a certificate");
    let (cert, key) = (
        scratch.path().join("cert.pem"),
        scratch.path().join("key.pem"),
    );
    std::fs::write(&cert, certified.cert.pem()).expect("written");
    std::fs::write(&key, certified.signing_key.serialize_pem()).expect("written");
    let config = scratch.path().join("tls.conf");
    std::fs::write(
        &config,
        format!(
            "tls {{\n  cert_file: \"{}\"\n  key_file: \"{}\"\n}}\n",
            cert.display(),
            key.display()
        ),
    )
    .expect("written");
    let server = NatsServer::start_with(Some(&config), &[]).await;
    let bus = |tls: Option<NatsTls>| {
        NatsBus::connect(NatsBusConfig {
            url: server.url.clone(),
            tls,
            stream_prefix: format!("TLS{}", server.port),
            ..NatsBusConfig::default()
        })
    };
    let secure = bus(Some(NatsTls {
        ca_file: cert.clone(),
        client: None,
    }))
    .await
    .expect("connects over TLS");
    secure
        .publish(event("supply.driver_status.v1"))
        .await
        .expect("published over TLS");
    // Without the CA the server's certificate is not trusted: no connection, nothing published.
    let plain = async_nats::ConnectOptions::new()
        .connect(server.url.as_str())
        .await;
    assert!(plain.is_err(), "a client without the CA connected");
}
