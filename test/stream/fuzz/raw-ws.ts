// WebSockets by hand, for clients that misbehave below the ws library: half handshakes, sockets that
// stop mid-frame or never read, and frames masked ahead of time so that only the server's work is timed.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { connect as netConnect, type Socket } from 'node:net';
import { validateServerEvent, type WinnowServer } from '../../../src/stream/index.js';
import type { AnyEvent } from '../helpers.js';

export function upgradeRequest(s: WinnowServer, token: string): string {
  return (
    `GET / HTTP/1.1\r\nHost: 127.0.0.1:${s.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
    `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\nAuthorization: Bearer ${token}\r\n\r\n`
  );
}

/** A TCP connection to the server (the caller writes the handshake, or part of it). */
export async function rawSocket(s: WinnowServer): Promise<Socket> {
  const sock = netConnect(s.port, '127.0.0.1');
  sock.on('error', () => undefined);
  await new Promise<void>((resolve, reject) => {
    sock.once('connect', () => resolve());
    sock.once('error', reject);
  });
  return sock;
}

/** Completes the handshake; `events` then collects the server's text frames (validated like TestClient does). */
export async function rawUpgrade(s: WinnowServer, token: string): Promise<{ sock: Socket; events: AnyEvent[]; invalid: string[] }> {
  const sock = await rawSocket(s);
  sock.write(upgradeRequest(s, token));
  let head = Buffer.alloc(0);
  const rest = await new Promise<Buffer>((resolve, reject) => {
    const onData = (d: Buffer): void => {
      head = Buffer.concat([head, d]);
      const at = head.indexOf('\r\n\r\n');
      if (at >= 0) {
        sock.off('data', onData);
        resolve(head.subarray(at + 4));
      }
    };
    sock.on('data', onData);
    sock.once('close', () => reject(new Error(`closed during the handshake: ${head.toString('latin1')}`)));
  });
  assert.match(head.toString('latin1'), /^HTTP\/1\.1 101/);
  const events: AnyEvent[] = [];
  const invalid: string[] = [];
  let buf = rest;
  const parse = (): void => {
    for (;;) {
      if (buf.length < 2) return;
      const op = buf[0] & 0x0f;
      let len = buf[1] & 0x7f;
      let off = 2;
      if (len === 126) {
        if (buf.length < 4) return;
        len = buf.readUInt16BE(2);
        off = 4;
      } else if (len === 127) {
        if (buf.length < 10) return;
        len = Number(buf.readBigUInt64BE(2));
        off = 10;
      }
      if (buf.length < off + len) return;
      const payload = buf.subarray(off, off + len);
      buf = buf.subarray(off + len);
      if (op === 1) {
        const e = JSON.parse(payload.toString('utf8')) as AnyEvent;
        const v = validateServerEvent(e);
        if (!v.ok) invalid.push(`${e.type}: ${v.message}`);
        events.push(e);
      }
    }
  };
  sock.on('data', (d: Buffer) => {
    buf = buf.length ? Buffer.concat([buf, d]) : d;
    parse();
  });
  parse();
  return { sock, events, invalid };
}

/** A masked client frame. */
export function wsFrame(opcode: number, payload: Buffer): Buffer {
  const mask = randomBytes(4);
  const len = payload.length;
  const head = len < 126 ? Buffer.from([0x80 | opcode, 0x80 | len]) : len < 65_536 ? Buffer.alloc(4) : Buffer.alloc(10);
  if (len >= 126 && len < 65_536) {
    head[0] = 0x80 | opcode;
    head[1] = 0x80 | 126;
    head.writeUInt16BE(len, 2);
  } else if (len >= 65_536) {
    head[0] = 0x80 | opcode;
    head[1] = 0x80 | 127;
    head.writeBigUInt64BE(BigInt(len), 2);
  }
  const body = Buffer.alloc(len);
  for (let i = 0; i < len; i++) body[i] = payload[i] ^ mask[i & 3];
  return Buffer.concat([head, mask, body]);
}
