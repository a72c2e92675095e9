// A socket.io client from the JavaScript ecosystem (socket.io-client from npm, as a class's
// browser or Node clients use it) listening on Rickshaw. Prints every event as one JSON line
// {"event": ..., "data": ...} and exits 0 after --count events named --event, 1 on timeout.
//
// usage: node socketio_listen.mjs URL [--namespace /] [--event match] [--name NAME] [--count N] [--timeout S]
import { io } from "socket.io-client";

const [url, ...rest] = process.argv.slice(2);
const option = (name, fallback) => {
  const at = rest.indexOf(`--${name}`);
  return at >= 0 ? rest[at + 1] : fallback;
};
const namespace = option("namespace", "/communication");
const wanted = option("event", "match");
const count = Number(option("count", "1"));
const timeout = Number(option("timeout", "30")) * 1000;
const name = option("name", undefined);

const print = (event, data) => process.stdout.write(JSON.stringify({ event, data }) + "\n");
const socket = io(url + (namespace === "/" ? "" : namespace), {
  reconnection: false,
  auth: name ? { name } : undefined,
});
let seen = 0;
socket.on("connect", () => print("connected", { transport: socket.io.engine.transport.name }));
socket.on("connect_error", (e) => {
  print("connect_error", { message: String(e) });
  process.exit(1);
});
socket.onAny((event, data) => {
  print(event, data);
  if (event === wanted && ++seen >= count) {
    socket.disconnect();
    process.exit(0);
  }
});
setTimeout(() => process.exit(1), timeout);
