#!/usr/bin/env node
// The request-smuggling corpus runner: crafted requests (smuggle_cases.js) and crafted
// upstream responses (recorder_upstream.js' RESPONSES) sent through reverse proxies ("fronts")
// to a recording upstream, judged by what the client got back and what the upstream got.
//
//   node tests/fakes/smuggle.js --front NAME=ADDR,RECORDER_DIR[,LABEL] ... [--must-pass NAME]...
//        [--relay-check NAME] [--only REGEX] [--json FILE] [--quiet-ms 300] [--cap-ms 8000] [--budget-s 240]
//   node tests/fakes/smuggle.js --list
//
//   --front      a proxy under test: ADDR is HOST:PORT, or `relay` for a transparent TCP relay
//                this process runs (the harness's own check: it forwards every byte, so the
//                judge must fail every case that has to be refused). RECORDER_DIR is the
//                --state-dir of the recorder_upstream.js that this front forwards to (one
//                recorder per front). LABEL names it in the summary ("nginx 1.22.1").
//   --must-pass  exit 1 unless every case of this front is PASS (repeatable).
//   --relay-check  this front is the relay: exit 2 (a harness error) unless it fails every
//                case that must be refused and passes every plain control.
//   --only       run the cases whose id matches REGEX.
//   --json       write every verdict to FILE.
//   --quiet-ms, --cap-ms, --budget-s   the bounds below (300 ms, 8 s) and one for a whole
//                front (240 s: a front that answers nothing is a harness error, not a hang).
//
// Each front runs the cases one after another (the fronts at once). Per case: a mark
// (GET /__mark/ID straight to the recorder, so the recorder's log says where the case
// starts), then one TCP connection to the front: the bytes (in two writes with a wait for a
// 1xx between them when the case says so), then reading until the front closes, or the
// case's answers are all in, or — once any answer or a refusal arrived — nothing more came
// for --quiet-ms; never longer than --cap-ms. Response cases with a probe send one more
// request on a fresh connection. When every case has run, the recorder's log is read once
// (after it stopped growing) and every case judged:
//
//   PASS     refused (4xx/5xx or closed) and nothing of the case reached the upstream; or
//            forwarded exactly the requests the client sent, each well-framed and intact
//            (method, target, body bytes), and answered one by one; for response cases:
//            502 (or a close) and none of the ambiguous bytes relayed, or a valid
//            response relayed intact.
//   LENIENT  a case that must be refused was forwarded, but what reached the upstream has
//            one meaning: one reading of the request, intact, or a request cut short.
//   FAIL     a request the client did not send as one (S, the smuggled request) reached the
//            upstream; the upstream got bytes it could not read; a valid request was refused
//            or changed; answers went to the wrong request; a field that must not be
//            forwarded was; an ambiguous response was relayed.
//
// Exit: 0 when every --must-pass front passed every case, 1 when one did not, 2 for a
// harness error (a front unreachable, a bad command line, the relay check failed).
'use strict';

const fs = require('fs');
const net = require('net');
const path = require('path');
const h1 = require('./lib/h1');
const { CASES, HOST } = require('./smuggle_cases');
const { RESPONSES } = require('./recorder_upstream');

const MARKER = 'EVIL';         // in every ambiguous crafted response, never in a valid one
const INTERIM_WAIT_MS = 3000;  // Expect: 100-continue: send the body anyway after this

function usage(msg) {
  if (msg) process.stderr.write(`smuggle: ${msg}\n`);
  process.stderr.write('usage: node smuggle.js --front NAME=ADDR,RECORDER_DIR[,LABEL]... [--must-pass NAME]...\n' +
    '                        [--relay-check NAME] [--only REGEX] [--json FILE] [--quiet-ms N] [--cap-ms N] [--budget-s N]\n' +
    '       node smuggle.js --list\n');
  process.exit(2);
}

function harnessError(msg) {
  process.stderr.write(`smuggle: harness error: ${msg}\n`);
  process.exit(2);
}

// ---- the corpus -----------------------------------------------------------------------------
function buildCases(only) {
  const out = [];
  for (const c of CASES) {
    const T = `/c/${c.id}`;
    const raw = c.raw(T);
    const segments = (Array.isArray(raw) ? raw : [raw]).map((s) => Buffer.from(s, 'latin1'));
    const requests = c.requests ? c.requests(T) : [];
    out.push(Object.assign({}, c, {
      kind: 'request', target: T, segments, requests,
      methods: requests.length ? requests.map((r) => r.method) : [firstMethod(segments[0])],
    }));
  }
  for (const [name, r] of Object.entries(RESPONSES)) {
    const id = `resp-${name}`;
    const T = `/c/${id}`;
    const method = r.method || 'GET';
    const target = `${T}/__respond/${name}`;
    out.push({
      kind: 'response', category: 'response', id, expect: r.expect, what: r.what, response: name,
      target: T, segments: [Buffer.from(`${method} ${target} HTTP/1.1\r\nHost: ${HOST}\r\n\r\n`, 'latin1')],
      requests: [{ method, target, body: '' }], methods: [method],
      status: r.status || 200, body: r.body, probe: !!r.probe,
    });
  }
  const ids = new Set();
  for (const c of out) {
    if (ids.has(c.id)) harnessError(`two cases are called ${c.id}`);
    ids.add(c.id);
  }
  return only ? out.filter((c) => only.test(c.id)) : out;
}

function firstMethod(buf) {
  const m = /^\s*([A-Za-z]+)/.exec(buf.latin1Slice(0, Math.min(buf.length, 32)));
  return m ? m[1].toUpperCase() : 'GET';
}

// ---- one client exchange --------------------------------------------------------------------
// Responses read from `buf` for requests of `methods` (in order; 1xx answers skip ahead).
function readResponses(buf, methods, eof) {
  const finals = [];
  const interim = [];
  let pos = 0;
  let error = null;
  let incomplete = false;
  while (pos < buf.length) {
    const method = methods[finals.length] || 'GET';
    const r = h1.parseResponse(buf, pos, { method, eof });
    if (r.state === 'incomplete') {
      incomplete = true;
      break;
    }
    if (r.state === 'error') {
      error = `${r.reason} at byte ${r.at}`;
      break;
    }
    pos = r.end;
    if (r.status < 200 && r.status !== 101) {
      interim.push(r);
      continue;
    }
    finals.push(r);
    if (r.status === 101) break;
  }
  return { finals, interim, error, incomplete, rest: buf.length - pos };
}

// Opens a connection to addr, sends the case's segments, reads until it is done.
function exchange(addr, c, opts) {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const sock = net.connect({ host: addr.host, port: addr.port });
    sock.setNoDelay(true);
    let received = Buffer.alloc(0);
    let closed = false;
    let error = null;
    let done = false;
    let quietTimer = null;
    let capTimer = null;
    let interimWait = null;
    let connected = false;
    // A response case sends one request; a request case to refuse has no count to wait for.
    const expectedFinals = c.kind === 'response' ? 1 : c.expect === 'refuse' ? Infinity : c.requests.length;

    const finish = (why) => {
      if (done) return;
      done = true;
      clearTimeout(quietTimer);
      clearTimeout(capTimer);
      if (interimWait) clearTimeout(interimWait.timer);
      sock.destroy();
      const parsed = readResponses(received, c.methods, closed);
      resolve({ why, connected, closed, error, received, parsed, ms: Date.now() - t0 });
    };
    const armCap = () => {
      clearTimeout(capTimer);
      capTimer = setTimeout(() => finish('cap'), opts.capMs);
    };
    const evaluate = () => {
      const p = readResponses(received, c.methods, false);
      if (interimWait && (p.interim.length || p.finals.length)) {
        const w = interimWait;
        interimWait = null;
        clearTimeout(w.timer);
        w.go();
      }
      if (p.finals.length >= expectedFinals && !interimWait) {
        finish('answered');
        return;
      }
      const refused = p.finals.some((r) => r.status >= 400) || p.error;
      if (refused || (c.expect === 'refuse' && p.finals.length)) {
        clearTimeout(quietTimer);
        quietTimer = setTimeout(() => finish('quiet'), opts.quietMs);
      }
    };
    const sendFrom = (i) => {
      if (done || i >= c.segments.length) return;
      sock.write(c.segments[i]);
      armCap();
      if (i + 1 < c.segments.length) {
        if (c.interim) {
          interimWait = { go: () => sendFrom(i + 1), timer: null };
          interimWait.timer = setTimeout(() => {
            const w = interimWait;
            interimWait = null;
            if (w) w.go();
          }, INTERIM_WAIT_MS);
          evaluate();
        } else {
          sendFrom(i + 1);
        }
      }
    };
    sock.on('connect', () => {
      connected = true;
      sendFrom(0);
    });
    sock.on('data', (d) => {
      received = Buffer.concat([received, d]);
      evaluate();
    });
    sock.on('end', () => {
      closed = true;
      finish('closed');
    });
    sock.on('error', (err) => {
      error = err.code || err.message;
      closed = true;
      finish('error');
    });
    sock.on('close', () => {
      closed = true;
      finish('closed');
    });
    armCap();
  });
}

// ---- the recorder: marks, and reading its log ---------------------------------------------
class Recorder {
  constructor(dir) {
    const readyFile = path.join(dir, 'ready.json');
    let ready;
    try {
      ready = JSON.parse(fs.readFileSync(readyFile, 'utf8'));
    } catch (err) {
      harnessError(`cannot read ${readyFile}: ${err.message}`);
    }
    this.port = ready.port;
    this.log = ready.log;
  }

  // GET /__mark/ID on a connection of its own (kept alive across marks).
  async mark(id) {
    const req = Buffer.from(`GET /__mark/${encodeURIComponent(id)} HTTP/1.1\r\nHost: recorder\r\n\r\n`);
    for (let attempt = 0; attempt < 2; attempt++) {
      if (!this.sock || this.sock.destroyed) await this.connect();
      if (this.sock.destroyed) continue;
      const ok = await new Promise((resolve) => {
        let buf = Buffer.alloc(0);
        const onData = (d) => {
          buf = Buffer.concat([buf, d]);
          const r = h1.parseResponse(buf, 0, { method: 'GET' });
          if (r.state === 'ok') done(r.status === 200);
          else if (r.state === 'error') done(false);
        };
        const onGone = () => done(false);
        const timer = setTimeout(() => done(false), 10000);
        const done = (v) => {
          clearTimeout(timer);
          this.sock.off('data', onData);
          this.sock.off('close', onGone);
          resolve(v);
        };
        this.sock.on('data', onData);
        this.sock.on('close', onGone);
        this.sock.write(req);
      });
      if (ok) return;
      this.sock.destroy();
    }
    harnessError(`the recorder on port ${this.port} did not answer a mark`);
  }

  // Resolves once connected, or once the attempt failed (the socket is then destroyed).
  connect() {
    return new Promise((resolve) => {
      const sock = net.connect({ host: '127.0.0.1', port: this.port });
      this.sock = sock;
      sock.setNoDelay(true);
      sock.once('connect', resolve);
      sock.once('close', resolve);
      sock.on('error', () => {});
    });
  }

  close() {
    if (this.sock) this.sock.destroy();
  }

  // Until the log stopped growing for quietMs (bounded).
  async settle(quietMs, maxMs) {
    const t0 = Date.now();
    let size = -1;
    let since = Date.now();
    while (Date.now() - t0 < maxMs) {
      const now = fs.statSync(this.log).size;
      if (now !== size) {
        size = now;
        since = Date.now();
      } else if (Date.now() - since >= quietMs) {
        return;
      }
      await sleep(50);
    }
  }

  // What reached the upstream, by case: { ID: { requests: [...], broken: [...] } }.
  readLog(caseIds) {
    const events = fs.readFileSync(this.log, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
    const marks = [];
    const control = new Set();
    const conns = new Map();
    for (const e of events) {
      if (e.ev === 'mark') {
        marks.push(e);
        control.add(e.conn);
      }
    }
    for (const e of events) {
      if (control.has(e.conn)) continue;
      if (!conns.has(e.conn)) conns.set(e.conn, { data: [], ended: false });
      const c = conns.get(e.conn);
      if (e.ev === 'end') c.ended = true;
      if (e.ev === 'data' && !c.ended) c.data.push({ seq: e.seq, buf: Buffer.from(e.b64, 'base64') });
    }
    const windowOf = (seq) => {
      let id = null;
      for (const m of marks) {
        if (m.seq < seq) id = m.id;
        else break;
      }
      return id;
    };
    const byCase = {};
    const slot = (id) => (byCase[id] = byCase[id] || { requests: [], broken: [] });
    const caseOf = (target, seq) => {
      const m = /\/c\/([A-Za-z0-9_.-]+)/.exec(target || '');
      if (m && caseIds.has(m[1])) return m[1];
      return windowOf(seq);
    };
    for (const [conn, c] of conns) {
      if (!c.data.length) continue;
      const buf = Buffer.concat(c.data.map((d) => d.buf));
      const starts = [];
      let off = 0;
      for (const d of c.data) {
        starts.push({ off, seq: d.seq });
        off += d.buf.length;
      }
      const seqAt = (pos) => {
        let s = starts[0].seq;
        for (const st of starts) if (st.off <= pos) s = st.seq;
        return s;
      };
      let pos = 0;
      while (pos < buf.length) {
        const r = h1.parseRequest(buf, pos);
        const seq = seqAt(pos);
        if (r.state === 'ok') {
          const id = caseOf(r.target, seq);
          if (id && id !== '__end') slot(id).requests.push(Object.assign({ conn, seq }, r));
          pos = r.end;
          continue;
        }
        const line = /^(\S+) (\S+)/.exec(buf.latin1Slice(pos, Math.min(buf.length, pos + 300)));
        const id = caseOf(line && line[2], seq);
        if (id && id !== '__end') {
          slot(id).broken.push({
            conn,
            what: r.state === 'error' ? `the upstream could not read it: ${r.reason}` : 'an incomplete request',
            incomplete: r.state === 'incomplete',
            head: r.head || null,
            bytes: h1.printable(buf.latin1Slice(pos, Math.min(buf.length, pos + 160)), 160),
          });
        }
        break;
      }
    }
    // In the order the upstream got them (pooled connections interleave: a front may send
    // a client's second request on an older connection than its first).
    for (const u of Object.values(byCase)) u.requests.sort((a, b) => a.seq - b.seq);
    return byCase;
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---- the transparent relay (the harness checking itself) -----------------------------------
function startRelay(upstreamPort) {
  return new Promise((resolve) => {
    const server = net.createServer((client) => {
      const up = net.connect({ host: '127.0.0.1', port: upstreamPort });
      client.pipe(up);
      up.pipe(client);
      const kill = () => {
        client.destroy();
        up.destroy();
      };
      client.on('error', kill);
      up.on('error', kill);
      client.on('close', () => up.end());
      up.on('close', () => client.end());
    });
    server.listen(0, '127.0.0.1', () => resolve({ server, port: server.address().port }));
  });
}

// ---- judging --------------------------------------------------------------------------------
const pathOf = (target) => {
  const m = /^https?:\/\/[^/?#]*(.*)$/i.exec(target);
  return m ? (m[1] || '/') : target;
};
const sameTarget = (got, want) => got === want || pathOf(got) === pathOf(want);
const bodyText = (b) => h1.printable(Buffer.isBuffer(b) ? b.latin1Slice(0, b.length) : b, 40);
const describeReq = (r) => `${r.method} ${h1.printable(r.target, 60)} (body ${r.body.length} bytes)`;

function clientSummary(x) {
  const p = x.parsed;
  if (p.finals.length) {
    const statuses = p.finals.map((r) => r.status).join(', ');
    return `answered ${statuses}${x.closed ? ', closed' : ''}`;
  }
  if (p.error) return `answered bytes that do not parse (${p.error})`;
  if (x.received.length) return `answered an incomplete response${x.closed ? ', then closed' : ''}`;
  if (x.why === 'cap') return 'no answer (the case timed out)';
  return 'closed without an answer';
}

function refusedByFront(x) {
  const p = x.parsed;
  if (!p.finals.length) return x.why !== 'cap' || x.received.length === 0;
  return p.finals.every((r) => r.status >= 400);
}

function forbiddenFields(c, reqs) {
  const out = [];
  if (c.noTrailers) {
    for (const r of reqs) {
      if (r.trailers.length) out.push(`forwarded trailer fields: ${r.trailers.map(([n]) => n).join(', ')}`);
    }
  }
  for (const name of c.noFields || []) {
    for (const r of reqs) {
      if (h1.fieldValues(r.fields, name).length || h1.fieldValues(r.trailers, name).length) {
        out.push(`forwarded the field ${name}`);
      }
    }
  }
  return out;
}

// Each answer must be the recorder's answer to the request it belongs to.
function answersMatch(x, reqs) {
  const finals = x.parsed.finals;
  if (finals.length < reqs.length) {
    return `the client got ${finals.length} answer(s) for ${reqs.length} request(s) (${clientSummary(x)})`;
  }
  for (let i = 0; i < reqs.length; i++) {
    const r = finals[i];
    if (r.status !== 200) return `request ${i + 1} was answered ${r.status}`;
    if (reqs[i].method === 'HEAD') continue;
    const m = /^rec \d+#\d+ (\S+) (\S+) body=(\d+)\n$/.exec(r.body.latin1Slice(0, r.body.length));
    if (!m || m[1] !== reqs[i].method || !sameTarget(m[2], reqs[i].target) ||
        Number(m[3]) !== Buffer.byteLength(reqs[i].body, 'latin1')) {
      return `answer ${i + 1} is not the answer to ${reqs[i].method} ${reqs[i].target}: '${bodyText(r.body)}'`;
    }
  }
  return null;
}

function judgeRequest(c, x, up) {
  const got = up.requests;
  const broken = up.broken;
  const client = clientSummary(x);
  const smuggledReqs = got.filter((r) => /\/smuggled/.test(r.target) &&
    !c.requests.some((w) => sameTarget(r.target, w.target)));
  if (smuggledReqs.length) {
    return {
      verdict: 'FAIL',
      reason: `smuggled: ${describeReq(smuggledReqs[0])}, bytes that follow the ambiguous part, reached the upstream ` +
        `as a request of their own; client ${client}`,
    };
  }
  const garbled = broken.filter((b) => !b.incomplete);
  if (garbled.length) {
    return { verdict: 'FAIL', reason: `forwarded bytes ${garbled[0].what} — '${garbled[0].bytes}'` };
  }
  const fields = forbiddenFields(c, got);

  if (c.expect === 'refuse') {
    if (!got.length && !broken.length) {
      if (x.parsed.finals.some((r) => r.status < 400)) {
        return { verdict: 'FAIL', reason: `answered ${x.parsed.finals[0].status} without forwarding anything` };
      }
      return { verdict: 'PASS', reason: client };
    }
    if (fields.length) return { verdict: 'FAIL', reason: fields[0] };
    if (!got.length) {
      return { verdict: 'LENIENT', reason: `forwarded an incomplete request before refusing ('${broken[0].bytes}'); client ${client}` };
    }
    const what = got.map(describeReq).join(' + ');
    return { verdict: 'LENIENT', reason: `forwarded ${what}; client ${client}` };
  }

  // pass / either
  if (!got.length && !broken.length) {
    if (c.expect === 'either' && refusedByFront(x)) return { verdict: 'PASS', reason: `refused: ${client}` };
    return { verdict: 'FAIL', reason: `a valid request was not forwarded: client ${client}` };
  }
  if (broken.length) return { verdict: 'FAIL', reason: `forwarded ${broken[0].what} — '${broken[0].bytes}'` };
  if (fields.length) return { verdict: 'FAIL', reason: fields[0] };
  if (got.length !== c.requests.length) {
    return { verdict: 'FAIL', reason: `${got.length} request(s) reached the upstream for ${c.requests.length}: ${got.map(describeReq).join(' + ')}` };
  }
  for (let i = 0; i < got.length; i++) {
    const g = got[i];
    const w = c.requests[i];
    if (g.method !== w.method || !sameTarget(g.target, w.target) || !g.body.equals(Buffer.from(w.body, 'latin1'))) {
      return { verdict: 'FAIL', reason: `forwarded ${describeReq(g)} body '${bodyText(g.body)}', expected ${w.method} ${w.target} body '${bodyText(w.body)}'` };
    }
  }
  const mismatch = answersMatch(x, c.requests);
  if (mismatch) return { verdict: 'FAIL', reason: mismatch };
  return { verdict: 'PASS', reason: 'forwarded intact' };
}

function judgeResponse(c, x, probe, up) {
  const text = x.received.latin1Slice(0, x.received.length);
  const relayed = text.includes(MARKER);
  const first = x.parsed.finals[0];
  const arrived = up.requests.filter((r) => r.target.includes('/__respond/')).length;
  if (!arrived) return { verdict: 'FAIL', reason: `the request never reached the upstream (client ${clientSummary(x)})` };

  const refusedOk = !relayed && ((first && first.status === 502) || (!first && !x.received.length && x.why !== 'cap'));
  const intactOk = !relayed && first && !x.parsed.error && first.status === c.status &&
    first.body.equals(Buffer.from(c.body, 'latin1'));
  let verdict = null;
  let reason;
  if (c.expect === 'refuse' && refusedOk) verdict = 'PASS';
  else if (c.expect === 'pass' && intactOk) verdict = 'PASS';
  else if (c.expect === 'either' && (refusedOk || intactOk)) verdict = 'PASS';
  if (verdict === 'PASS') {
    reason = first ? `answered ${first.status}` : 'closed without an answer';
  } else if (relayed) {
    const at = text.indexOf(MARKER);
    const status = first ? `status ${first.status}, ` : '';
    reason = `relayed the ambiguous bytes: ${status}'…${h1.printable(text.slice(Math.max(0, at - 50), at + 20), 110)}'`;
  } else if (c.expect === 'pass') {
    reason = first ? `relayed ${first.status} body '${bodyText(first.body)}', expected ${c.status} '${bodyText(c.body)}'`
      : `did not relay a valid response: ${clientSummary(x)}`;
  } else if (x.parsed.error) {
    reason = `relayed a response the client cannot read (${x.parsed.error}): '${h1.printable(text, 80)}'`;
  } else if (first) {
    reason = `answered ${first.status}${first.status === 502 ? '' : ', expected 502'} ('${h1.printable(text, 60)}')`;
  } else {
    reason = `expected 502: ${x.received.length ? `relayed part of a response, then closed ('${h1.printable(text, 60)}')` : clientSummary(x)}`;
  }
  if (verdict === 'PASS' && probe) {
    const ptext = probe.received.latin1Slice(0, probe.received.length);
    const pf = probe.parsed.finals[0];
    const want = `GET ${c.target}/probe body=0`;
    if (ptext.includes(MARKER) || !pf || pf.status !== 200 || !pf.body.latin1Slice(0, pf.body.length).includes(want)) {
      return { verdict: 'FAIL', reason: `the next request got the wrong answer: '${h1.printable(ptext, 90)}'` };
    }
  }
  return { verdict: verdict || 'FAIL', reason };
}

// ---- running a front ------------------------------------------------------------------------
async function runFront(front, cases, opts) {
  const rec = new Recorder(front.dir);
  let addr = front.addr;
  let relay = null;
  if (addr === 'relay') {
    relay = await startRelay(rec.port);
    addr = { host: '127.0.0.1', port: relay.port };
  }
  const results = {};
  const t0 = Date.now();
  for (const [i, c] of cases.entries()) {
    if (Date.now() - t0 > opts.budgetS * 1000) {
      harnessError(`${front.name}: the corpus ran over its budget of ${opts.budgetS}s with ${cases.length - i} ` +
        'cases left: is the front answering at all?');
    }
    await rec.mark(c.id);
    const x = await exchange(addr, c, opts);
    if (!x.connected) harnessError(`${front.name}: cannot connect to ${addr.host}:${addr.port} (${x.error})`);
    let probe = null;
    if (c.probe) {
      const p = {
        expect: 'pass', requests: [{ method: 'GET', target: `${c.target}/probe`, body: '' }], methods: ['GET'],
        segments: [Buffer.from(`GET ${c.target}/probe HTTP/1.1\r\nHost: ${HOST}\r\nConnection: close\r\n\r\n`)],
      };
      probe = await exchange(addr, p, opts);
    }
    results[c.id] = { x, probe };
  }
  await rec.mark('__end');
  await rec.settle(500, 5000);
  rec.close();
  if (relay) relay.server.close();
  const up = rec.readLog(new Set(cases.map((c) => c.id)));
  const verdicts = {};
  for (const c of cases) {
    const u = up[c.id] || { requests: [], broken: [] };
    const { x, probe } = results[c.id];
    const v = c.kind === 'response' ? judgeResponse(c, x, probe, u) : judgeRequest(c, x, u);
    v.ms = x.ms;
    v.timedOut = x.why === 'cap';
    verdicts[c.id] = v;
  }
  return verdicts;
}

// ---- output ---------------------------------------------------------------------------------
function printTable(cases, fronts, all) {
  const shown = fronts.filter((f) => !f.relay);
  const idW = Math.max(4, ...cases.map((c) => c.id.length));
  const catW = Math.max(8, ...cases.map((c) => c.category.length));
  const colW = Math.max(8, ...shown.map((f) => f.name.length));
  const pad = (s, n) => String(s).padEnd(n);
  const lines = [];
  lines.push(`${pad('case', idW)}  ${pad('category', catW)}  ${pad('expect', 6)}  ${shown.map((f) => pad(f.name, colW)).join('  ')}`);
  for (const c of cases) {
    lines.push(`${pad(c.id, idW)}  ${pad(c.category, catW)}  ${pad(c.expect, 6)}  ` +
      shown.map((f) => pad(all[f.name][c.id].verdict, colW)).join('  '));
  }
  process.stdout.write(lines.join('\n') + '\n');
}

function summarise(cases, front, verdicts) {
  const by = { PASS: [], LENIENT: [], FAIL: [] };
  for (const c of cases) by[verdicts[c.id].verdict].push(c);
  const label = front.label || front.name;
  const out = [];
  out.push(`${label}: ${by.PASS.length} PASS, ${by.LENIENT.length} LENIENT, ${by.FAIL.length} FAIL of ${cases.length}`);
  if (by.FAIL.length) {
    out.push(`${label} fails ${by.FAIL.length}: ${by.FAIL.map((c) => c.id).join(', ')}`);
    for (const c of by.FAIL) out.push(`  FAIL ${c.id} (${c.category}: ${c.what}): ${verdicts[c.id].reason}`);
  }
  const timedOut = cases.filter((c) => verdicts[c.id].timedOut);
  if (timedOut.length) {
    out.push(`${label}: ${timedOut.length} case(s) ended on the cap with no complete answer: ` +
      timedOut.map((c) => `${c.id} (${verdicts[c.id].verdict})`).join(', '));
  }
  if (by.LENIENT.length) {
    out.push(`${label} is lenient on ${by.LENIENT.length}: ${by.LENIENT.map((c) => c.id).join(', ')}`);
    for (const c of by.LENIENT) out.push(`  LENIENT ${c.id} (${c.category}: ${c.what}): ${verdicts[c.id].reason}`);
  }
  return { text: out.join('\n'), counts: { PASS: by.PASS.length, LENIENT: by.LENIENT.length, FAIL: by.FAIL.length } };
}

// The relay forwards every byte: every case to refuse must come out LENIENT or FAIL, and every
// control without forbidden fields PASS. Otherwise the judge is blind somewhere.
function relayProblems(cases, verdicts) {
  const problems = [];
  for (const c of cases) {
    const v = verdicts[c.id];
    if (c.expect === 'refuse' && v.verdict === 'PASS') problems.push(`${c.id}: PASS through a transparent relay (${v.reason})`);
    if (c.expect === 'pass' && !(c.noFields || []).length && !c.noTrailers && v.verdict !== 'PASS') {
      problems.push(`${c.id}: ${v.verdict} through a transparent relay (${v.reason})`);
    }
  }
  return problems;
}

// ---- main -----------------------------------------------------------------------------------
async function main() {
  const argv = process.argv.slice(2);
  const opts = { fronts: [], mustPass: [], relayCheck: null, only: null, json: null, quietMs: 300, capMs: 8000, budgetS: 240, list: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => (i + 1 < argv.length ? argv[++i] : usage(`${a} needs a value`));
    if (a === '--front') {
      const m = /^([A-Za-z0-9_.-]+)=([^,]+),([^,]+)(?:,(.+))?$/.exec(val());
      if (!m) usage('--front NAME=ADDR,RECORDER_DIR[,LABEL]');
      let addr = m[2];
      if (addr !== 'relay') {
        const am = /^([0-9.]+):([0-9]{1,5})$/.exec(addr);
        if (!am) usage(`bad front address '${addr}'`);
        addr = { host: am[1], port: Number(am[2]) };
      }
      opts.fronts.push({ name: m[1], addr, dir: m[3], label: m[4] || m[1], relay: false });
    } else if (a === '--must-pass') opts.mustPass.push(val());
    else if (a === '--relay-check') opts.relayCheck = val();
    else if (a === '--only') opts.only = new RegExp(val());
    else if (a === '--json') opts.json = val();
    else if (a === '--quiet-ms') opts.quietMs = Number(val());
    else if (a === '--cap-ms') opts.capMs = Number(val());
    else if (a === '--budget-s') opts.budgetS = Number(val());
    else if (a === '--list') opts.list = true;
    else if (a === '--help' || a === '-h') usage();
    else usage(`unknown argument '${a}'`);
  }
  const cases = buildCases(opts.only);
  if (opts.list) {
    for (const c of cases) process.stdout.write(`${c.id}\t${c.category}\t${c.expect}\t${c.what}\n`);
    const counts = {};
    for (const c of cases) counts[c.kind] = (counts[c.kind] || 0) + 1;
    process.stdout.write(`${cases.length} cases: ${counts.request || 0} requests, ${counts.response || 0} responses\n`);
    return 0;
  }
  if (!opts.fronts.length) usage('no --front');
  if (!cases.length) usage('no case matches --only');
  const names = new Set(opts.fronts.map((f) => f.name));
  for (const n of [...opts.mustPass, opts.relayCheck].filter(Boolean)) if (!names.has(n)) usage(`no front called ${n}`);
  for (const f of opts.fronts) f.relay = f.name === opts.relayCheck;

  const t0 = Date.now();
  const all = {};
  await Promise.all(opts.fronts.map(async (f) => {
    all[f.name] = await runFront(f, cases, opts);
  }));
  const nReq = cases.filter((c) => c.kind === 'request').length;
  process.stdout.write(`${cases.length} cases (${nReq} requests, ${cases.length - nReq} responses) through ` +
    `${opts.fronts.map((f) => f.name).join(', ')} in ${((Date.now() - t0) / 1000).toFixed(1)}s\n\n`);
  printTable(cases, opts.fronts, all);
  process.stdout.write('\n');

  let rc = 0;
  const summary = {};
  for (const f of opts.fronts) {
    const s = summarise(cases, f, all[f.name]);
    summary[f.name] = { label: f.label, counts: s.counts, verdicts: all[f.name] };
    if (f.relay) {
      const problems = relayProblems(cases, all[f.name]);
      const toRefuse = cases.filter((c) => c.expect === 'refuse');
      const flagged = toRefuse.filter((c) => all[f.name][c.id].verdict !== 'PASS').length;
      process.stdout.write(`harness check (${f.name}, a transparent TCP relay that forwards every byte): ` +
        `${flagged} of ${toRefuse.length} cases to refuse flagged, ${problems.length} problem(s)\n`);
      if (problems.length) {
        process.stdout.write(problems.map((p) => `  HARNESS: ${p}`).join('\n') + '\n');
        rc = 2;
      }
      continue;
    }
    process.stdout.write(s.text + '\n');
    if (opts.mustPass.includes(f.name) && s.counts.PASS !== cases.length) {
      process.stdout.write(`${f.label} must pass every case: ${cases.length - s.counts.PASS} did not\n`);
      if (rc === 0) rc = 1;
    }
  }
  if (opts.json) fs.writeFileSync(opts.json, JSON.stringify(summary, null, 1) + '\n');
  return rc;
}

main().then((rc) => process.exit(rc), (err) => harnessError(err && err.stack ? err.stack : String(err)));
