// A lightsout control client in Node.js, written from docs/protocol.md alone.
//
//   npm install zeromq@6 @msgpack/msgpack@3
//   node control_client.mjs ipc:///tmp/DIR               # a cell run with --endpoint ipc:///tmp/DIR
//   node control_client.mjs tcp://HOST:PORT KEYS/NAME.key_secret KEYS/server.key
//
// It checks what an integrator needs: status, snapshot, robot and cell commands,
// a retry, an unknown command, faults, pace, an order, a REQ socket, telemetry with
// gap recovery by snapshot, and (over tcp with keys) CURVE roles. It ends the run
// with `shutdown` if the last argument is --shutdown.
import { readFileSync } from "node:fs";
import { randomUUID } from "node:crypto";
import * as zmq from "zeromq";
import { encode, decode } from "@msgpack/msgpack";

const [base, secretFile, serverFile] = process.argv.slice(2).filter((a) => !a.startsWith("--"));
const shutdown = process.argv.includes("--shutdown");

// the socket table: ipc://DIR/control.sock, or tcp://HOST:PORT+2 (control) and +3 (telemetry)
function endpoint(name) {
  if (base.startsWith("ipc://")) return `${base}/${name}.sock`;
  const [, host, port] = base.match(/^(tcp:\/\/.+):(\d+)$/);
  return `${host}:${Number(port) + (name === "control" ? 2 : 3)}`;
}

// ZeroMQ certificate text: `public-key = "<40 Z85 characters>"` (and secret-key)
function readCert(path) {
  const text = readFileSync(path, "utf8");
  const key = (name) => text.match(new RegExp(`^\\s*${name}\\s*=\\s*"(.{40})"\\s*$`, "m"))?.[1];
  return { public: key("public-key"), secret: key("secret-key") };
}

function curve(sock) {
  if (!secretFile) return sock;
  const me = readCert(secretFile);
  sock.curveServerKey = readCert(serverFile).public;
  sock.curvePublicKey = me.public;
  sock.curveSecretKey = me.secret;
  return sock;
}

function socket(Kind) {
  // no answer ever comes to a key the cell does not know: time out sends and receives
  const timeouts = Kind === zmq.Subscriber ? {} : { sendTimeout: 5000 };
  return curve(new Kind({ linger: 0, receiveTimeout: 5000, ...timeouts }));
}

const control = socket(zmq.Dealer);
control.connect(endpoint("control"));

async function ask(command, fields = {}) {
  const req = { type: "control_request", v: 1, cmd_id: randomUUID(), command, ...fields };
  for (let attempt = 0; attempt < 3; attempt++) {
    await control.send(encode(req)); // a retry sends the same cmd_id
    try {
      for (;;) {
        const [frame] = await control.receive();
        const reply = decode(frame);
        if (reply.cmd_id === req.cmd_id) return reply;
      }
    } catch (err) {
      if (err.code !== "EAGAIN") throw err;
    }
  }
  throw new Error(`no answer to ${command}`);
}

const check = (what, ok, detail = "") => {
  console.log(`${ok ? "ok  " : "FAIL"} ${what}${detail ? ": " + detail : ""}`);
  if (!ok) process.exitCode = 1;
};
const states = async () =>
  Object.fromEntries((await ask("status")).status.robots.map((r) => [r.robot, r.state]));
async function until(what, probe, ms = 60000) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await probe()) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  check(what, false, "timed out");
  return false;
}

const status = await ask("status");
check("status", status.ok && status.status.type === "cell_status",
  `pace ${status.status.pace}, rtf ${status.status.rtf}, refused ${status.status.refused}`);
check("snapshot", (await ask("snapshot")).ok);

const role = secretFile ? secretFile.match(/([^/]+)\.key_secret$/)[1] : "admin";
const hold = await ask("robot", { target: "R1", action: "Hold" });
if (secretFile && hold.code === "forbidden") {
  check(`${role} may not steer (forbidden)`, true, hold.reason);
} else {
  check("robot R1 Hold", hold.ok, hold.reason);
  await until("R1 Held", async () => (await states()).R1 === "Held");
  check("robot R1 Unhold", (await ask("robot", { target: "R1", action: "Unhold" })).ok);
  await until("R1 Execute", async () => (await states()).R1 === "Execute");
  const cellHold = await ask("cell", { action: "Hold" });
  check("cell Hold", cellHold.ok, cellHold.reason);
  await until("all Held", async () => Object.values(await states()).every((s) => s === "Held"));
  check("cell Unhold", (await ask("cell", { action: "Unhold" })).ok);
  await until("all Execute", async () => Object.values(await states()).every((s) => s === "Execute"));
  check("refused", (await ask("robot", { target: "R2", action: "Unhold" })).code === "refused");
  const unknown = await ask("dance");
  check("unknown command", unknown.code === "unknown_command", unknown.reason);
  const order = await ask("order", { action: "phone", value: 1 });
  check("order", order.ok && JSON.parse(order.data).order >= 1, order.data);
  // a retry: the same cmd_id again gets the first answer, and the order is not added twice
  const again = { type: "control_request", v: 1, cmd_id: randomUUID(), command: "order", action: "phone", value: 1 };
  const answers = [];
  for (let i = 0; i < 2; i++) {
    await control.send(encode(again));
    let reply;
    do [reply] = (await control.receive()).map((f) => decode(f));
    while (reply.cmd_id !== again.cmd_id);
    answers.push(reply);
  }
  check("a retry gets the first answer", JSON.stringify(answers[0]) === JSON.stringify(answers[1]),
    answers[1].reason);
  const jam = await ask("fault", { target: "infeed", action: "conveyor_jam", value: 1 });
  check("fault conveyor_jam", jam.ok, jam.reason);
  const slow = await ask("fault", { target: "R3", action: "slow_robot", value: 2, factor: 1 });
  check("slow_robot needs a factor > 1", slow.code === "bad_argument", slow.reason);
  const inf = await ask("pace", { action: "realtime", value: Infinity });
  check("pace realtime Infinity refused", inf.code === "bad_argument", inf.reason);
  check("pace realtime 2", (await ask("pace", { action: "realtime", value: 2 })).ok);
  const st = (await ask("status")).status;
  check("status at realtime", st.pace === "realtime x2" && st.rtf === 2, `${st.pace} ${st.rtf}`);
  check("pace pause", (await ask("pace", { action: "pause" })).ok);
  check("paused", (await ask("robot", { target: "R1", action: "Hold" })).code === "paused");
  check("pace run", (await ask("pace", { action: "run" })).ok);
  check("pace fast", (await ask("pace", { action: "fast" })).ok);
}

// a REQ socket: it adds the empty delimiter itself, the answer comes back with it
const req = socket(zmq.Request);
req.connect(endpoint("control"));
await req.send(encode({ type: "control_request", v: 1, cmd_id: randomUUID(), command: "status" }));
const [reqFrame] = await req.receive();
check("a REQ socket gets its answer", decode(reqFrame).ok === true);
req.close();

// telemetry: make a gap (no joints for a while), then recover by snapshot
const sub = socket(zmq.Subscriber);
sub.connect(endpoint("telemetry"));
sub.subscribe("joints", "parts", "events", "kpis");
const last = {};
const buffered = [];
let gaps = 0;
async function read(n) {
  for (let i = 0; i < n; i++) {
    const [topic, payload] = await sub.receive();
    const msg = decode(payload);
    const t = topic.toString();
    if (t in last && msg.seq !== last[t] + 1) gaps++;
    last[t] = msg.seq;
    buffered.push([t, msg]);
  }
}
await read(200);
sub.unsubscribe("joints");
await read(200);
sub.subscribe("joints");
while (gaps === 0) await read(1);
check("a gap is seen in seq", gaps > 0);
const start = buffered.length;
const snap = JSON.parse((await ask("snapshot")).data);
while (!["joints", "parts"].every((t) => buffered.slice(start).some(([b, m]) => b === t && m.seq > snap.seq[t]))) {
  await read(1);
}
for (const t of ["joints", "parts"]) {
  const kept = buffered.slice(start).filter(([b, m]) => b === t && m.seq > snap.seq[t]);
  check(`recovered ${t} from snapshot.seq + 1`, kept[0][1].seq === snap.seq[t] + 1,
    `snapshot ${snap.seq[t]}, first kept ${kept[0][1].seq}`);
}
sub.close();

if (shutdown) check("shutdown", (await ask("shutdown")).ok);
control.close();
