// Clerk's own decisions over session claims, for runtime/tests/clerk_differential.rs.
//
// Reads one JSON case per line on stdin: {"claims": {...}, "queries": [{"any": bool, "params": [...]}]},
// where each param is what Clerk's `has()` takes ({role}, {permission}, {feature}, {plan},
// {reverification}). Writes one line per case: {"parsed": bool, "decisions": [bool, ...]}.
//
// The auth object is built as @clerk/backend's `signedInAuthObject` builds it: the claims
// through `__experimental_JWTPayloadToAuthObjectProperties`, then `createCheckAuthorization`
// with `features: fea || ''` and `plans: pla || ''`. When the claims parser throws, Clerk
// refuses the session: every decision is false. `any` is Clerk's `has` of one value or
// another; otherwise every value must hold.
import { createInterface } from 'node:readline';
import { createCheckAuthorization } from '@clerk/shared/authorization';
import { __experimental_JWTPayloadToAuthObjectProperties as fromClaims } from '@clerk/shared/jwtPayloadParser';

function checker(claims) {
  try {
    const p = fromClaims(claims);
    return createCheckAuthorization({
      orgId: p.orgId,
      orgRole: p.orgRole,
      orgPermissions: p.orgPermissions,
      userId: p.userId,
      factorVerificationAge: p.factorVerificationAge,
      features: claims.fea || '',
      plans: claims.pla || '',
    });
  } catch {
    return null;
  }
}

const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
for await (const line of lines) {
  if (!line.trim()) continue;
  const { claims, queries } = JSON.parse(line);
  const has = checker(claims);
  const decisions = queries.map(({ any, params }) =>
    has !== null && (any ? params.some((p) => has(p)) : params.every((p) => has(p))),
  );
  process.stdout.write(JSON.stringify({ parsed: has !== null, decisions }) + '\n');
}
