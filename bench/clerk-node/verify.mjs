// Clerk's Node SDK verifying one RS256 session token offline (`jwtKey`), in a loop, on the
// event loop's thread. Usage:
//   node verify.mjs make <dir>              writes <dir>/key.pem, <dir>/public.pem, <dir>/token.txt
//   node verify.mjs verify <dir> <seconds>  prints "clerk-node <verifications/s>"
//   node verify.mjs many <dir> <n>          also writes <dir>/tokens.txt: n distinct session
//                                           tokens (another session each), for http.sh
import { generateKeyPairSync, createSign } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { verifyToken } from '@clerk/backend';

const AZP = 'https://app.example.com';
const [mode, dir, seconds] = process.argv.slice(2);

const b64url = (data) => Buffer.from(data).toString('base64url');

// A Clerk-shaped (v2) session token for session `sid`, signed with `privateKey`.
const sessionToken = (privateKey, sid) => {
  const now = Math.floor(Date.now() / 1000);
  const header = { alg: 'RS256', kid: 'ins_bench', typ: 'JWT' };
  const claims = {
    azp: AZP, exp: now + 3600, iat: now, nbf: now - 10, iss: 'https://clerk.example.com',
    sid, sts: 'active', sub: 'user_2abcdefghijklmnopqrstuvwxyz', v: 2,
  };
  const message = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
  const signature = createSign('RSA-SHA256').update(message).sign(privateKey);
  return `${message}.${b64url(signature)}`;
};

if (mode === 'make' || mode === 'many') {
  const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  writeFileSync(join(dir, 'public.pem'), publicKey.export({ type: 'spki', format: 'pem' }));
  writeFileSync(join(dir, 'token.txt'), sessionToken(privateKey, 'sess_2abcdefghijklmnopqrstuvwxyz'));
  if (mode === 'many') {
    const n = Number(seconds || 100000);
    const tokens = [];
    for (let i = 0; i < n; i++) tokens.push(sessionToken(privateKey, `sess_bench${String(i).padStart(10, '0')}`));
    writeFileSync(join(dir, 'tokens.txt'), `${tokens.join('\n')}\n`);
  }
} else if (mode === 'verify') {
  const token = readFileSync(join(dir, 'token.txt'), 'utf8').trim();
  const jwtKey = readFileSync(join(dir, 'public.pem'), 'utf8');
  const options = { jwtKey, authorizedParties: [AZP] };
  const once = async () => {
    const result = await verifyToken(token, options);
    // verifyToken returns { data } or { errors } (v2+) or throws (v1): refuse anything but a pass.
    if (result?.errors) throw new Error(`verification failed: ${result.errors[0]?.message}`);
    const payload = result?.data ?? result;
    if (payload?.sub !== 'user_2abcdefghijklmnopqrstuvwxyz') throw new Error('unexpected payload');
  };
  await once();
  for (let warm = Date.now() + 1000; Date.now() < warm; ) await once();
  const limit = Number(seconds || 5) * 1000;
  let count = 0;
  const start = process.hrtime.bigint();
  let elapsed = 0;
  while (elapsed < limit) {
    for (let i = 0; i < 100; i++) await once();
    count += 100;
    elapsed = Number(process.hrtime.bigint() - start) / 1e6;
  }
  console.log(`clerk-node ${(count / (elapsed / 1000)).toFixed(0)}`);
} else {
  console.error('usage: node verify.mjs make <dir> | many <dir> <n> | verify <dir> <seconds>');
  process.exit(2);
}
