//! End-to-end tests of the system as users reach it: HTTP, WebSocket, socket.io, the binary.

mod audit;
mod bad_input;
mod bench;
mod bot_run;
mod cluster;
mod course_flow;
mod deploy;
mod distributed;
mod fuzz;
mod limits;
mod mail;
mod nats_permissions;
mod ops;
mod outbox;
mod payments;
mod persistence;
mod product_flow;
mod ratings;
mod rpc;
mod socketio_interop;
mod traces;
mod web_apps;
