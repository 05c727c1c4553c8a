// The official MCP TypeScript SDK's client against examples/mcp_server.rs, for
// tests/mcp_server.rs. Usage: node client.mjs <case> <mcp url> [token]. Prints one JSON
// object: what the SDK did and what it saw (every HTTP exchange, through a recording fetch
// that never leaves the server's origin), for the Rust test to check.
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import {
  discoverOAuthProtectedResourceMetadata,
  selectResourceURL,
} from '@modelcontextprotocol/sdk/client/auth.js';

const [, , which, url, token] = process.argv;
const server = new URL(url);
const exchanges = [];

// Records each exchange; a request to another origin (the development issuer, which does not
// exist) fails at once like an unreachable host, without touching the network.
async function recordingFetch(input, init) {
  const target = new URL(input instanceof Request ? input.url : String(input));
  const entry = { method: init?.method ?? 'GET', url: target.href };
  exchanges.push(entry);
  if (target.origin !== server.origin) {
    entry.status = 'unreachable';
    throw new TypeError(`fetch failed: ${target.origin} is not reachable from this test`);
  }
  const response = await fetch(input, init);
  entry.status = response.status;
  entry.challenge = response.headers.get('www-authenticate');
  if (!response.ok) {
    entry.body = await response.clone().text();
  }
  return response;
}

// An OAuth client with no token yet: what a client starting from nothing does on a 401.
function emptyProvider(seen) {
  return {
    get redirectUrl() { return 'http://127.0.0.1:1/callback'; },
    get clientMetadata() { return { client_name: 'tokengate-test', redirect_uris: ['http://127.0.0.1:1/callback'] }; },
    clientInformation: () => undefined,
    tokens: () => undefined,
    saveTokens: () => {},
    redirectToAuthorization: (authorizationUrl) => { seen.authorizationUrl = authorizationUrl.href; },
    saveCodeVerifier: () => {},
    codeVerifier: () => 'verifier',
    saveDiscoveryState: (state) => { seen.discoveryState = JSON.parse(JSON.stringify(state)); },
  };
}

async function connect(options) {
  const client = new Client({ name: 'tokengate-e2e', version: '1.0.0' });
  const transport = new StreamableHTTPClientTransport(server, { fetch: recordingFetch, ...options });
  await client.connect(transport);
  return client;
}

const bearer = (t) => ({ requestInit: { headers: { Authorization: `Bearer ${t}` } } });
const failure = (e) => ({ name: e?.constructor?.name, code: e?.code, message: String(e?.message ?? e) });

async function discovery() {
  const seen = {};
  try {
    await connect({ authProvider: emptyProvider(seen) });
    seen.connected = true;
  } catch (e) {
    seen.error = failure(e);
  }
  // The SDK's own helpers, from nothing but the server URL: path-aware well-known discovery,
  // then its check of `resource` against the URL it called.
  const metadata = await discoverOAuthProtectedResourceMetadata(server, {}, recordingFetch);
  const resource = await selectResourceURL(server, {}, metadata);
  return { ...seen, metadata, selectedResource: resource?.href };
}

async function tools(t) {
  const client = await connect(bearer(t));
  const out = { tools: (await client.listTools()).tools.map((tool) => tool.name).sort() };
  for (const [name, args] of [['list_users', {}], ['delete_user', { id: 'user_2' }]]) {
    try {
      const result = await client.callTool({ name, arguments: args });
      out[name] = { ok: !result.isError, text: result.content?.[0]?.text };
    } catch (e) {
      out[name] = { error: failure(e) };
    }
  }
  await client.close();
  return out;
}

async function refused(t) {
  try {
    const client = await connect(bearer(t));
    await client.listTools();
    return { connected: true };
  } catch (e) {
    return { error: failure(e) };
  }
}

const cases = { discovery, tools, refused };
const result = await cases[which](token);
console.log(JSON.stringify({ ...result, exchanges }));
