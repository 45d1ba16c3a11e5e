// SourcePolicy: what ffmpeg may open for a client-named source. URL forms accepted/refused by code and
// reason; paths, playlists and concat scripts that point outside the allowed root yield no frame with real
// ffmpeg (4.1 and 5.1), while the same sources without a policy show that ffmpeg would have read the secret;
// maxInputPixels stops oversized pictures with a typed error.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createReadStream, mkdirSync, symlinkSync } from 'node:fs';
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { openVideo, SourcePolicy } from '../../src/ingest/index.js';
import type { ConfinedSource, IngestEvent } from '../../src/ingest/index.js';
import { WinnowError } from '../../src/errors.js';
import { collect, ffmpegBuilds, spawnedPids, Workdir } from './helpers.js';

const X264 = ['-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p', '-g', '5'];
const ALL_SCHEMES = ['rtsp', 'rtsps', 'rtmp', 'rtmps', 'srt', 'udp', 'rtp', 'http', 'https'];

async function refusal(p: Promise<unknown>): Promise<{ code: string; reason: unknown }> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof WinnowError, `a WinnowError, got ${String(e)}`);
    return { code: e.code, reason: e.details.reason };
  }
  assert.fail('expected a refusal');
}

describe('ingest: SourcePolicy URLs', () => {
  const all = new SourcePolicy({ allowUrlSchemes: ALL_SCHEMES });
  const rtspHttp = new SourcePolicy({ allowUrlSchemes: ['rtsp', 'HTTP:'] });
  const target = { networkTimeoutMs: 10_000, ffmpegPath: ffmpegBuilds()[0].ffmpegPath };

  it('accepts network URLs and hands ffmpeg the normalised href, never the client string', async () => {
    const cases: Array<[string, string]> = [
      ['http://example.com/a.mp4', 'http://example.com/a.mp4'],
      ['HTTP://Example.COM/a/../b.mp4', 'http://example.com/b.mp4'],
      ['http://host/%2e%2e/%2E%2e/etc/passwd', 'http://host/etc/passwd'],
      ['http://0x7f.1:8080/x', 'http://127.0.0.1:8080/x'],
      ['http://[::1]:8080/live.ts', 'http://[::1]:8080/live.ts'],
      ['http://good.com@evil.com/x', 'http://good.com@evil.com/x'],
      ['rtsp://user:pw@cam_1.local:554/stream?ch=1', 'rtsp://user:pw@cam_1.local:554/stream?ch=1'],
      ['RTSP://[::1]/a/./b', 'rtsp://[::1]/a/b'],
      ['rtmp://10.0.0.2/app/key', 'rtmp://10.0.0.2/app/key'],
      ['srt://relay.example:9000?streamid=x', 'srt://relay.example:9000?streamid=x'],
      ['udp://239.0.0.1:1234', 'udp://239.0.0.1:1234'],
      ['https://xn--nxasmq6b.example/v.m3u8', 'https://xn--nxasmq6b.example/v.m3u8'],
    ];
    for (const [raw, href] of cases) {
      const c = await all.confine({ url: raw }, undefined, target);
      assert.equal(c.kind, 'url', raw);
      assert.equal(c.input, href, raw);
      assert.equal(c.url, href, raw);
    }
    const cred = await all.confine({ url: 'rtsp://user:pw@cam/s' }, undefined, target);
    assert.equal(cred.label, 'rtsp://***:***@cam/s');
    assert.ok(!cred.label.includes('pw'));
  });

  it('refuses hostile URL forms with typed codes and reasons', async () => {
    const forbiddenCases: Array<[string, string, SourcePolicy?]> = [
      ['http:/../../../../../../srv/private/secret.mp4', 'url-form'],
      ['rtsp:/../../../../etc/passwd', 'url-form'],
      ['http:..', 'url-form'],
      ['http:../../etc/passwd', 'url-form'],
      ['http:///etc/passwd', 'url-form'],
      ['rtsp:////etc/passwd', 'url-form'],
      ['javascript:alert(1)', 'scheme'],
      ['//evil.com/x', 'url-form'],
      ['http:\\\\host\\x', 'characters'],
      ['http://evil.com\\@good.com/', 'characters'],
      ['http://h/ x', 'characters'],
      ['http://h/\tx', 'characters'],
      [' http://h/', 'characters'],
      ['http://h/\u0000', 'characters'],
      ['http://h\u3000x/', 'characters'],
      ['http://h/x\n', 'characters'],
      ['http://a@/', 'host'],
      ['http://user:pw@:80/', 'host'],
      ['http://:80/x', 'host'],
      ['http://../x', 'host'],
      ['http://.../x', 'host'],
      ['http://%2e%2e/x', 'host'],
      ['rtsp://%2e%2e/x', 'host'],
      ['rtsp://../etc/passwd', 'host'],
      ['http://a..b/', 'host'],
      ['http://h./', 'host'],
      ['file:///etc/passwd', 'scheme'],
      ['FILE:///etc/passwd', 'scheme'],
      ['gopher://h/x', 'scheme'],
      ['concat://h/x', 'scheme'],
      ['subfile://h/x', 'scheme'],
      ['https://h/x', 'scheme', rtspHttp],
      ['rtmp://h/x', 'scheme', rtspHttp],
      ['rtsp://cam/x', 'disabled', new SourcePolicy({ allowPaths: ['/tmp'] })],
    ];
    for (const [raw, reason, policy] of forbiddenCases) {
      const r = await refusal((policy ?? all).confine({ url: raw }, undefined, target));
      assert.deepEqual(r, { code: 'WINNOW_ERR_FORBIDDEN_SOURCE', reason }, JSON.stringify(raw));
    }
    for (const raw of ['', 'http://h:99999/', 'http://[::1/x', 'rtsp://[fe80::1%25eth0]/x', `http://h/${'a'.repeat(5000)}`]) {
      const r = await refusal(all.confine({ url: raw }, undefined, target));
      assert.equal(r.code, 'WINNOW_ERR_INVALID_ARGUMENT', JSON.stringify(raw));
    }
    await assert.rejects(all.confine({} as { url: string }), { code: 'WINNOW_ERR_INVALID_ARGUMENT' });
    await assert.rejects(all.confine({ url: 'http://h/', path: 'x' } as unknown as { url: string }), { code: 'WINNOW_ERR_INVALID_ARGUMENT' });
    assert.throws(() => new SourcePolicy({ allowUrlSchemes: ['file'] }), { code: 'WINNOW_ERR_INVALID_ARGUMENT' });
  });

  it('gives each scheme only the protocols it needs, and a read timeout', async () => {
    const opts = async (url: string): Promise<string[]> => (await all.confine({ url }, undefined, { ...target, networkTimeoutMs: 2500 })).inputOptions;
    assert.deepEqual(await opts('http://h/x'), ['-protocol_whitelist', 'http,tcp,crypto', '-rw_timeout', '2500000']);
    assert.deepEqual(await opts('https://h/x'), ['-protocol_whitelist', 'https,tls,tcp,crypto', '-rw_timeout', '2500000']);
    assert.deepEqual(await opts('rtmp://h/a/b'), ['-protocol_whitelist', 'rtmp,tcp', '-rw_timeout', '2500000']);
    assert.deepEqual(await opts('rtmps://h/a/b'), ['-protocol_whitelist', 'rtmps,tls,tcp', '-rw_timeout', '2500000']);
    assert.deepEqual(await opts('udp://h:1'), ['-protocol_whitelist', 'udp', '-timeout', '2500000']);
    assert.deepEqual(await opts('srt://h:1'), ['-protocol_whitelist', 'srt', '-timeout', '2500000']);
    assert.deepEqual(await opts('rtp://h:1'), ['-protocol_whitelist', 'rtp,udp']);
    for (const b of ffmpegBuilds()) {
      const rtsp = (await all.confine({ url: 'rtsps://h/x' }, undefined, { ffmpegPath: b.ffmpegPath, networkTimeoutMs: 2500 })).inputOptions;
      const spelled = b.name === 'bundled-4.1' ? '-stimeout' : '-timeout';
      assert.deepEqual(rtsp, ['-protocol_whitelist', 'rtsp,rtsps,rtp,tcp,udp,tls', '-rtsp_transport', 'tcp', spelled, '2500000'], b.name);
    }
    const none = await all.confine({ url: 'http://h/x' }, undefined, { networkTimeoutMs: 0 });
    assert.deepEqual(none.inputOptions, ['-protocol_whitelist', 'http,tcp,crypto']);
  });
});

describe('ingest: SourcePolicy paths and what they name', () => {
  const wd = new Workdir();
  const root = wd.path('root');
  const outside = wd.path('outside');
  let policy: SourcePolicy;
  let secretTs = '';
  let secretMp4 = '';
  const hls = (...lines: string[]): string => ['#EXTM3U', '#EXT-X-VERSION:3', '#EXT-X-TARGETDURATION:2', ...lines, '#EXT-X-ENDLIST', ''].join('\n');
  const seg = (uri: string): string[] => ['#EXTINF:1.0,', uri];

  before(() => {
    mkdirSync(join(root, 'sub'), { recursive: true });
    mkdirSync(outside);
    secretTs = wd.clip('outside/secret.ts', { seconds: 1, rate: 10, size: '160x120', codecArgs: [...X264, '-f', 'mpegts'] });
    secretMp4 = wd.clip('outside/secret.mp4', { seconds: 1, rate: 10, size: '160x120', codecArgs: X264 });
    wd.clip('root/in.mp4', { seconds: 1, rate: 10, size: '160x120', codecArgs: X264 });
    // Segments continue each other's timestamps, as a real HLS encoder writes them.
    for (const [i, name] of ['root/seg0.ts', 'root/sub/seg1.ts', 'root/seg2.ts'].entries()) {
      wd.clip(name, { seconds: 1, rate: 10, size: '160x120', codecArgs: [...X264, '-output_ts_offset', String(i), '-f', 'mpegts'] });
    }
    wd.ffmpeg('root/still.png', ['-f', 'lavfi', '-i', 'testsrc2=size=64x48', '-frames:v', '1']);
    symlinkSync(secretMp4, join(root, 'escape.mp4'));
    symlinkSync(secretTs, join(root, 'link.ts'));
    wd.write('root/ok.m3u8', hls(...seg('seg0.ts'), ...seg('sub/seg1.ts'), ...seg(`file://${root}/seg2.ts`)));
    wd.write('root/sub/v-ok.m3u8', hls(...seg('../seg0.ts'), ...seg('seg1.ts')));
    wd.write('root/master-ok.m3u8', ['#EXTM3U', '#EXT-X-STREAM-INF:BANDWIDTH=100000', 'sub/v-ok.m3u8', ''].join('\n'));
    wd.write('root/rel.m3u8', hls(...seg('../outside/secret.ts')));
    wd.write('root/abs.m3u8', hls(...seg(secretTs)));
    wd.write('root/fileurl.m3u8', hls(...seg(`file://${secretTs}`)));
    wd.write('root/fileurl-dots.m3u8', hls(...seg(`file://${root}/../outside/secret.ts`)));
    wd.write('root/sub/v-evil.m3u8', hls(...seg('../../outside/secret.ts')));
    wd.write('root/nested.m3u8', ['#EXTM3U', '#EXT-X-STREAM-INF:BANDWIDTH=100000', 'sub/v-evil.m3u8', ''].join('\n'));
    wd.write('root/map.m3u8', hls(`#EXT-X-MAP:URI="${secretMp4}"`, ...seg('seg0.ts')));
    wd.write('root/key.m3u8', hls(`#EXT-X-KEY:METHOD=AES-128,URI="../outside/secret.ts",IV=0x00000000000000000000000000000001`, ...seg('seg0.ts')));
    wd.write('root/media.m3u8', ['#EXTM3U', `#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="a",NAME="x",URI="${secretTs}"`, '#EXT-X-STREAM-INF:BANDWIDTH=1,AUDIO="a"', 'sub/v-ok.m3u8', ''].join('\n'));
    wd.write('root/symlink.m3u8', hls(...seg('link.ts')));
    wd.write('root/http.m3u8', hls(...seg('http://127.0.0.1:9/seg.ts')));
    // A "segment" that is itself a playlist: ffmpeg would demux it with a nested hls.
    wd.write('root/sub/disguised.ts', hls(...seg('../../outside/secret.ts')));
    wd.write('root/disguised.m3u8', hls(...seg('sub/disguised.ts')));
    // ffmpeg skips an ID3v2 tag before probing: a playlist behind one is still a playlist.
    wd.write('root/id3.mp3', Buffer.concat([Buffer.from([0x49, 0x44, 0x33, 4, 0, 0, 0, 0, 0, 4]), Buffer.from('abcd'), Buffer.from(hls(...seg('../outside/secret.ts')))]));
    wd.write('root/rel.ffconcat', `ffconcat version 1.0\nfile ../outside/secret.mp4\n`);
    wd.write('root/abs.ffconcat', `ffconcat version 1.0\nfile '${secretMp4}'\n`);
    wd.write('root/fileurl.ffconcat', `ffconcat version 1.0\nfile file:${secretMp4}\n`);
    wd.write('root/escape.ffconcat', `ffconcat version 1.0\nfile escape.mp4\n`);
    wd.write('root/option.ffconcat', `ffconcat version 1.0\nfile in.mp4\noption format_whitelist concat,mov\n`);
    wd.write('root/ok.ffconcat', `ffconcat version 1.0\nfile in.mp4\nfile '${join(root, 'in.mp4')}'\n`);
    wd.write('root/safe.ffconcat', `ffconcat version 1.0\nfile in.mp4\nduration 1\n`);
    wd.write('root/stream.sdp', 'v=0\no=- 0 0 IN IP4 127.0.0.1\ns=x\nc=IN IP4 127.0.0.1\nt=0 0\nm=video 5004 RTP/AVP 96\n');
    wd.write('root/stream.mpd', '<?xml version="1.0"?>\n<MPD xmlns="urn:mpeg:dash:schema:mpd:2011"></MPD>\n');
    for (const name of ['img%03d.png', 'img*.png', 'img?.png', 'a[1].png', 'a{1}.png']) wd.write(`root/${name}`, 'x');
    policy = new SourcePolicy({ allowPaths: [root], allowUrlSchemes: ['rtsp', 'http'] });
  });
  after(() => wd.cleanup());

  it('keeps checkPath semantics: real paths under the roots, no "..", no NUL, missing = forbidden', async () => {
    const c = await policy.confine({ path: 'in.mp4' });
    assert.equal(c.kind, 'file');
    assert.equal(c.input, `file:${join(root, 'in.mp4')}`);
    assert.equal(c.path, join(root, 'in.mp4'));
    assert.deepEqual(c.inputOptions.slice(0, 3), ['-protocol_whitelist', 'file', '-format_whitelist']);
    assert.ok(!c.inputOptions[3].split(',').some((f) => ['hls', 'concat', 'dash', 'sdp', 'lavfi'].includes(f)));
    assert.equal((await policy.confine({ path: join(root, 'sub', 'seg1.ts') })).path, join(root, 'sub', 'seg1.ts'));
    const cases: Array<[string, string]> = [
      ['../outside/secret.mp4', 'dotdot'],
      ['sub/../../outside/secret.mp4', 'dotdot'],
      [`${root}/../outside/secret.mp4`, 'dotdot'],
      [secretMp4, 'outside-roots'],
      ['/etc/passwd', 'outside-roots'],
      ['escape.mp4', 'outside-roots'],
      ['nope.mp4', 'outside-roots'],
      ['/etc/no-such-file', 'outside-roots'],
      ['in.mp4\0.png', 'characters'],
      ['sub', 'not-a-file'],
      ['img%03d.png', 'pattern'],
      ['img*.png', 'pattern'],
      ['img?.png', 'pattern'],
      ['a[1].png', 'pattern'],
      ['a{1}.png', 'pattern'],
      ['stream.sdp', 'unsupported-format'],
      ['stream.mpd', 'unsupported-format'],
    ];
    for (const [path, reason] of cases) {
      assert.deepEqual(await refusal(policy.confine({ path })), { code: 'WINNOW_ERR_FORBIDDEN_SOURCE', reason }, path);
    }
    // Existence outside the roots is not revealed: same reason and message for an existing and a missing file.
    const a = await policy.confine({ path: '/etc/passwd' }).catch((e: WinnowError) => e.message);
    const b = await policy.confine({ path: '/etc/no-such-file' }).catch((e: WinnowError) => e.message);
    assert.equal(String(a).replace('/etc/passwd', 'X'), String(b).replace('/etc/no-such-file', 'X'));
    assert.deepEqual(await refusal(new SourcePolicy({ allowUrlSchemes: ['http'] }).confine({ path: 'in.mp4' })), {
      code: 'WINNOW_ERR_FORBIDDEN_SOURCE',
      reason: 'disabled',
    });
  });

  it('checks every name in HLS playlists and concat scripts, recursively', async () => {
    const refused: Array<[string, string]> = [
      ['rel.m3u8', 'reference-outside-roots'],
      ['abs.m3u8', 'reference-outside-roots'],
      ['fileurl.m3u8', 'reference-outside-roots'],
      ['fileurl-dots.m3u8', 'reference-outside-roots'],
      ['nested.m3u8', 'reference-outside-roots'],
      ['map.m3u8', 'reference-outside-roots'],
      ['key.m3u8', 'reference-outside-roots'],
      ['media.m3u8', 'reference-outside-roots'],
      ['symlink.m3u8', 'reference-outside-roots'],
      ['http.m3u8', 'reference-outside-roots'],
      ['disguised.m3u8', 'reference-outside-roots'],
      // Sniffed as a playlist behind its ID3 tag, then refused for the NUL bytes of that tag.
      ['id3.mp3', 'reference-unsupported'],
      ['rel.ffconcat', 'reference-outside-roots'],
      ['abs.ffconcat', 'reference-outside-roots'],
      ['fileurl.ffconcat', 'reference-outside-roots'],
      ['escape.ffconcat', 'reference-outside-roots'],
      ['option.ffconcat', 'reference-unsupported'],
    ];
    for (const [path, reason] of refused) {
      assert.deepEqual(await refusal(policy.confine({ path })), { code: 'WINNOW_ERR_FORBIDDEN_SOURCE', reason }, path);
    }
    const formats = (c: ConfinedSource): string[] => c.inputOptions[c.inputOptions.indexOf('-format_whitelist') + 1].split(',');
    for (const path of ['ok.m3u8', 'master-ok.m3u8']) {
      const c = await policy.confine({ path });
      assert.ok(formats(c).includes('hls') && !formats(c).includes('concat'), path);
      assert.ok(!c.inputOptions.includes('-safe'));
    }
    const ok = await policy.confine({ path: 'ok.ffconcat' });
    assert.ok(formats(ok).includes('concat'));
    assert.deepEqual(ok.inputOptions.slice(-2), ['-safe', '0'], 'an absolute name inside the root needs -safe 0');
    const safe = await policy.confine({ path: 'safe.ffconcat' });
    assert.ok(!safe.inputOptions.includes('-safe'), 'names the demuxer accepts itself keep its safe mode');
  });

  for (const b of ffmpegBuilds()) {
    it(`${b.name}: sources that lead outside the root yield no frame under the policy (and would without it)`, async () => {
      const toSecret = `${'../'.repeat(16)}${secretMp4.slice(1)}`;
      const escapes = [
        `http:/${toSecret}`,
        `rtsp:/${toSecret}`,
        'rel.m3u8',
        'abs.m3u8',
        'fileurl.m3u8',
        'nested.m3u8',
        'disguised.m3u8',
        'symlink.m3u8',
        'rel.ffconcat',
        'abs.ffconcat',
        'escape.ffconcat',
        'escape.mp4',
        secretMp4,
      ];
      for (const source of escapes) {
        const r = await collect((onEvent) => openVideo(source, { policy, ffmpegPath: b.ffmpegPath, onEvent }));
        assert.equal(r.frames.length, 0, source);
        assert.equal(r.error?.code, 'WINNOW_ERR_FORBIDDEN_SOURCE', `${source}: ${r.error?.code} ${r.error?.message}`);
        assert.equal(spawnedPids(r.events).length, 0, `${source}: refused before ffmpeg was started`);
      }
      // The same playlists without a policy (the local user's semantics): ffmpeg really reads the secret.
      // Relative names resolve against the current directory, so these are made absolute.
      for (const source of [`http:/${toSecret}`, join(root, 'rel.m3u8'), join(root, 'nested.m3u8'), join(root, 'symlink.m3u8')]) {
        const r = await collect(() => openVideo(source, { ffmpegPath: b.ffmpegPath, maxFrames: 1 }));
        assert.equal(r.frames.length, 1, `control: ${source} does read the secret without a policy (${r.error?.message ?? ''})`);
      }
    });

    it(`${b.name}: files, stills, playlists and concat scripts inside the root play under the policy`, async () => {
      // Every frame: 4.1's hls demuxer restarts timestamps per segment, so sampling by time would hide segments.
      const expect: Array<[string, number]> = [
        ['in.mp4', 10],
        ['still.png', 1],
        ['ok.m3u8', 30],
        ['master-ok.m3u8', 20],
        ['ok.ffconcat', 20],
        ['safe.ffconcat', 10],
      ];
      for (const [source, frames] of expect) {
        const events: IngestEvent[] = [];
        const r = await collect(() => openVideo(source, { policy, ffmpegPath: b.ffmpegPath, fps: 'source', onEvent: (e) => events.push(e) }));
        assert.equal(r.error, undefined, `${source}: ${r.error?.code} ${r.error?.message}`);
        assert.ok(r.frames.length >= frames, `${source}: ${r.frames.length} frames`);
        const spawn = events.find((e): e is Extract<IngestEvent, { type: 'spawn' }> => e.type === 'spawn');
        assert.ok(spawn && spawn.args.includes('-format_whitelist') && spawn.args[spawn.args.indexOf('-protocol_whitelist') + 1] === 'file');
        assert.equal(spawn.args[spawn.args.indexOf('-i') + 1], `file:${join(root, source)}`);
      }
    });

    it(`${b.name}: a caller's inputOptions cannot lift the policy's whitelists; Readables reach only the pipe; devices are refused`, async () => {
      const r = await collect((onEvent) =>
        openVideo('ok.m3u8', { policy, ffmpegPath: b.ffmpegPath, inputOptions: ['-protocol_whitelist', 'file,http,tcp', '-format_whitelist', 'hls,mpegts'], onEvent }),
      );
      assert.equal(r.error, undefined);
      const spawn = r.events.find((e): e is Extract<IngestEvent, { type: 'spawn' }> => e.type === 'spawn')!;
      const last = (opt: string): string => spawn.args[spawn.args.lastIndexOf(opt) + 1];
      assert.equal(last('-protocol_whitelist'), 'file');
      assert.ok(last('-format_whitelist').startsWith('mov,'));
      for (const [file, fmt] of [['in.mp4', undefined], ['seg0.ts', 'mpegts']] as const) {
        const stream = createReadStream(join(root, file));
        const p = await collect((onEvent) => openVideo(stream, { policy, ffmpegPath: b.ffmpegPath, onEvent, ...(fmt ? { inputFormat: fmt } : {}) }));
        assert.equal(p.error, undefined, `${file}: ${p.error?.message}`);
        assert.ok(p.frames.length >= 1);
        const args = (p.events.find((e) => e.type === 'spawn') as Extract<IngestEvent, { type: 'spawn' }>).args;
        assert.equal(args[args.lastIndexOf('-protocol_whitelist') + 1], 'pipe');
      }
      const dev = await collect(() => openVideo({ device: 'testsrc2=size=32x32', format: 'lavfi' }, { policy, ffmpegPath: b.ffmpegPath }));
      assert.equal(dev.error?.code, 'WINNOW_ERR_FORBIDDEN_SOURCE');
      assert.equal(dev.error?.details.reason, 'device');
    });
  }

  it('an aborted signal stops confinement before anything is spawned', async () => {
    const r = await collect((onEvent) => openVideo('ok.m3u8', { policy, signal: AbortSignal.abort(), onEvent }));
    assert.equal(r.error?.code, 'WINNOW_ERR_ABORTED');
    const ac = new AbortController();
    const p = collect((onEvent) => openVideo('master-ok.m3u8', { policy, signal: ac.signal, onEvent }));
    ac.abort();
    const q = await p;
    assert.equal(q.error?.code, 'WINNOW_ERR_ABORTED');
    assert.equal(spawnedPids(q.events).length, 0);
  });
});

describe('ingest: decode size limit and default whitelists', () => {
  const wd = new Workdir();
  let big = '';
  before(() => {
    // One 5000×5000 frame, tiny on disk (flat colour): the picture a decoder would allocate is what matters.
    big = wd.ffmpeg('big.mkv', ['-f', 'lavfi', '-i', 'color=c=red:size=5000x5000:rate=1', '-frames:v', '1', '-c:v', 'mjpeg', '-q:v', '31']);
  });
  after(() => wd.cleanup());

  for (const b of ffmpegBuilds()) {
    it(`${b.name}: a picture over maxInputPixels is WINNOW_ERR_LIMIT_EXCEEDED; under the default limit it decodes`, async () => {
      const max = 4096 * 4096;
      const r = await collect((onEvent) => openVideo(big, { maxInputPixels: max, ffmpegPath: b.ffmpegPath, onEvent }));
      assert.equal(r.frames.length, 0);
      assert.equal(r.error?.code, 'WINNOW_ERR_LIMIT_EXCEEDED', r.error?.message);
      assert.deepEqual({ limit: r.error?.details.limit, max: r.error?.details.max }, { limit: 'maxInputPixels', max });
      const args = (r.events.find((e) => e.type === 'spawn') as Extract<IngestEvent, { type: 'spawn' }>).args;
      assert.ok(args.indexOf('-max_pixels') < args.indexOf('-i'));
      const ok = await collect(() => openVideo(big, { size: { width: 50, height: 50 }, ffmpegPath: b.ffmpegPath }));
      assert.equal(ok.error, undefined, ok.error?.message);
      assert.equal(ok.frames.length, 1);
    });
  }

  it('rejects a bad maxInputPixels or networkTimeoutMs', async () => {
    for (const o of [{ maxInputPixels: 0 }, { maxInputPixels: 1.5 }, { maxInputPixels: 2 ** 31 }, { networkTimeoutMs: -1 }, { networkTimeoutMs: Number.NaN }]) {
      const r = await collect(() => openVideo(big, o));
      assert.equal(r.error?.code, 'WINNOW_ERR_INVALID_ARGUMENT', JSON.stringify(o));
    }
  });

  it('without a policy, URL sources still get their scheme whitelist and timeout, Readables the pipe', async () => {
    const r = await collect((onEvent) => openVideo('http://127.0.0.1:9/x.ts', { networkTimeoutMs: 1000, reconnect: { attempts: 0 }, onEvent }));
    assert.equal(r.error?.code, 'WINNOW_ERR_SOURCE_UNREACHABLE');
    const args = (r.events.find((e) => e.type === 'spawn') as Extract<IngestEvent, { type: 'spawn' }>).args;
    assert.deepEqual(args.slice(args.indexOf('-protocol_whitelist'), args.indexOf('-protocol_whitelist') + 4), ['-protocol_whitelist', 'http,tcp,crypto', '-rw_timeout', '1000000']);
  });
});

describe('ingest: what an allowed http URL serves cannot reach local files', () => {
  const wd = new Workdir();
  let server: Server;
  let base = '';
  let secretTs = '';
  before(async () => {
    secretTs = wd.clip('secret.ts', { seconds: 1, rate: 10, size: '160x120', codecArgs: [...X264, '-f', 'mpegts'] });
    const playlist = (uri: string): string => `#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:1.0,\n${uri}\n#EXT-X-ENDLIST\n`;
    const routes: Record<string, (res: ServerResponse) => void> = {
      '/file-segment.m3u8': (res) => res.writeHead(200, { 'content-type': 'application/vnd.apple.mpegurl' }).end(playlist(`file://${secretTs}`)),
      '/crypto-segment.m3u8': (res) => res.writeHead(200).end(playlist(`crypto:file:${secretTs}`)),
      '/redirect.ts': (res) => res.writeHead(302, { location: `file://${secretTs}` }).end(),
      '/concat.txt': (res) => res.writeHead(200).end(`ffconcat version 1.0\nfile file:${secretTs}\n`),
    };
    server = createServer((req, res) => (routes[req.url ?? ''] ?? ((r) => r.writeHead(404).end()))(res));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
    wd.cleanup();
  });

  for (const b of ffmpegBuilds()) {
    it(`${b.name}: playlists, redirects and concat scripts served over http yield no frame of a local file`, async () => {
      const policy = new SourcePolicy({ allowUrlSchemes: ['http'] });
      for (const path of ['/file-segment.m3u8', '/crypto-segment.m3u8', '/redirect.ts', '/concat.txt']) {
        const r = await collect(() => openVideo(`${base}${path}`, { policy, ffmpegPath: b.ffmpegPath, reconnect: { attempts: 0 } }));
        assert.equal(r.frames.length, 0, path);
        assert.ok(r.error, path);
      }
    });
  }
});
