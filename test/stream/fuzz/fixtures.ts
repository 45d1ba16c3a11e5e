// The files and hosts the source and container properties aim at: a secret clip outside every allowed
// root, hostile playlists and links inside one, an HTTP host that serves only ways to reach the secret,
// and pushed containers whose frames sit above, at and below the media server's pixel limit.
import { spawnSync } from 'node:child_process';
import { readFile, symlink, writeFile } from 'node:fs/promises';
import { createServer as createHttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { VideoFormat } from '../../../src/stream/index.js';
import { GEN_FFMPEG } from '../../ingest/helpers.js';

export interface Clip {
  name: string;
  format: Exclude<VideoFormat, 'jpeg'>;
  bytes: Buffer;
  /** Width × height of its frames (null: not a video). */
  pixels: number | null;
}

export const playlist = (segment: string): string => `#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n#EXTINF:2.0,\n${segment}\n#EXT-X-ENDLIST\n`;

const concatScript = (secret: string): string => `ffconcat version 1.0\nfile '${secret}'\n`;

/** Files in the allowed `root`: nothing but ways to reach `secret` (and one file that is not a video). */
export const ROOT_FILES = ['evil-abs.m3u8', 'evil-file.m3u8', 'evil-rel.m3u8', 'evil-disguised.mp4', 'evil-master.m3u8', 'evil.ffconcat', 'notes.txt', 'link.mp4', 'dirlink/secret.mp4', 'dirlink'];

/** Writes ROOT_FILES; `secret` lives in `privateDir`, a sibling of `root`. */
export async function writeHostileRoot(root: string, secret: string, privateDir: string): Promise<void> {
  await writeFile(join(root, 'evil-abs.m3u8'), playlist(secret));
  await writeFile(join(root, 'evil-file.m3u8'), playlist(`file://${secret}`));
  await writeFile(join(root, 'evil-rel.m3u8'), playlist('../private/secret.mp4'));
  await writeFile(join(root, 'evil-disguised.mp4'), playlist(secret));
  await writeFile(join(root, 'evil-master.m3u8'), `#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1000\nevil-abs.m3u8\n`);
  await writeFile(join(root, 'evil.ffconcat'), concatScript(secret));
  await writeFile(join(root, 'notes.txt'), 'not a video\n');
  await symlink(secret, join(root, 'link.mp4'));
  await symlink(privateDir, join(root, 'dirlink'));
}

/** An allowed-scheme host that serves only ways to reach `secret` (never a video itself). */
export async function startEvilHost(secret: string): Promise<{ base: string; close: () => Promise<void> }> {
  const evil = createHttpServer((req, res) => {
    const m3u8 = { 'content-type': 'application/vnd.apple.mpegurl' };
    const path = (req.url ?? '').split('?')[0];
    if (path === '/abs.m3u8') res.writeHead(200, m3u8).end(playlist(secret));
    else if (path === '/file.m3u8') res.writeHead(200, m3u8).end(playlist(`file://${secret}`));
    else if (path === '/redir-file') res.writeHead(302, { location: `file://${secret}` }).end();
    else if (path === '/redir-abs') res.writeHead(302, { location: secret }).end();
    else res.writeHead(404).end();
  });
  await new Promise<void>((r) => evil.listen(0, '127.0.0.1', () => r()));
  return {
    base: `http://127.0.0.1:${(evil.address() as AddressInfo).port}/`,
    close: () => new Promise<void>((r) => evil.close(() => r())),
  };
}

function ffmpeg(out: string, args: string[]): void {
  const r = spawnSync(GEN_FFMPEG, ['-hide_banner', '-loglevel', 'error', '-nostdin', '-y', ...args, out], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ffmpeg failed making ${out}: ${r.stderr}`);
}

/** Pushed containers with frames above, at and below 64×64 pixels, rendered in `dir`, and pushed playlists naming `secret`. */
export async function renderClips(dir: string, secret: string): Promise<Clip[]> {
  const color = (size: string): string[] => ['-f', 'lavfi', '-i', `color=c=red:s=${size}:r=1:d=1`, '-frames:v', '1'];
  const h264 = ['-c:v', 'libx264', '-pix_fmt', 'yuv420p', '-preset', 'ultrafast'];
  const mp4 = [...h264, '-movflags', '+faststart', '-f', 'mp4'];
  const mjpeg = ['-c:v', 'mjpeg', '-pix_fmt', 'yuvj420p', '-f', 'mjpeg'];
  const specs: { name: string; format: Clip['format']; pixels: number; args: string[] }[] = [
    { name: 'bomb-2048.mp4', format: 'mp4', pixels: 2048 * 2048, args: [...color('2048x2048'), ...mp4] },
    { name: 'bomb-2048.mjpeg', format: 'mjpeg', pixels: 2048 * 2048, args: [...color('2048x2048'), ...mjpeg] },
    { name: 'bomb-4096x64.ts', format: 'mpegts', pixels: 4096 * 64, args: [...color('4096x64'), ...h264, '-f', 'mpegts'] },
    { name: 'over-66x64.webm', format: 'webm', pixels: 66 * 64, args: [...color('66x64'), '-c:v', 'libvpx', '-f', 'webm'] },
    { name: 'at-64x64.mp4', format: 'mp4', pixels: 64 * 64, args: [...color('64x64'), ...mp4] },
    { name: 'under-32x24.ts', format: 'mpegts', pixels: 32 * 24, args: [...color('32x24'), ...h264, '-f', 'mpegts'] },
    { name: 'under-48x48.mjpeg', format: 'mjpeg', pixels: 48 * 48, args: [...color('48x48'), ...mjpeg] },
  ];
  const clips: Clip[] = [];
  for (const s of specs) {
    const out = join(dir, s.name);
    ffmpeg(out, s.args);
    clips.push({ name: s.name, format: s.format, bytes: await readFile(out), pixels: s.pixels });
  }
  clips.push({ name: 'pushed.m3u8', format: 'mp4', bytes: Buffer.from(playlist(secret)), pixels: null });
  clips.push({ name: 'pushed-file.m3u8', format: 'webm', bytes: Buffer.from(playlist(`file://${secret}`)), pixels: null });
  clips.push({ name: 'pushed.ffconcat', format: 'mp4', bytes: Buffer.from(concatScript(secret)), pixels: null });
  return clips;
}
