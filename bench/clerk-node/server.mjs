// Clerk's Node SDK behind Node's own HTTP server: `GET /api/me` verifies the session token of
// the Authorization header offline (`verifyToken` with `jwtKey` and `authorizedParties`, as
// `authenticateRequest` does for a networkless session) and answers the caller as JSON — the
// same work as tokengate's example `GET /api/me`. Usage:
//   node server.mjs <dir> <port>     (dir holds public.pem, from `verify.mjs make`)
import { createServer } from 'node:http';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { verifyToken } from '@clerk/backend';

const [dir, port] = process.argv.slice(2);
const options = { jwtKey: readFileSync(join(dir, 'public.pem'), 'utf8'), authorizedParties: ['https://app.example.com'] };

const answer = (res, status, body) => {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
};

createServer(async (req, res) => {
  if (req.method !== 'GET' || req.url !== '/api/me') return answer(res, 404, { error: 'not found' });
  const token = (req.headers.authorization || '').replace(/^Bearer /, '');
  try {
    const result = await verifyToken(token, options);
    if (result?.errors) return answer(res, 401, { reason: result.errors[0]?.reason ?? 'invalid' });
    const claims = result?.data ?? result;
    return answer(res, 200, {
      tokenType: 'session_token', userId: claims.sub, sessionId: claims.sid, orgId: claims.o?.id ?? null, claims,
    });
  } catch (e) {
    return answer(res, 401, { reason: 'invalid' });
  }
}).listen(Number(port), '127.0.0.1', () => console.log('listening'));
