// The MCP gate for nginx (njs 0.7 or later; Debian: libnginx-mod-http-js).
// Written in the subset njs 0.7 parses (no destructuring, no for-of).
// nginx's auth_request cannot see the request body, and the tool an MCP
// client calls is in it, so this handler reads the JSON-RPC body itself,
// asks clawscale (`/_clawscale_authorize`, see mcp-gateway.conf) whether
// the caller may use that tool, and only then hands the request to the MCP
// server, with the identity clawscale answered. docs/gateway.md explains
// the whole set-up; integration/gates.rs runs it with real clients.

// clawscale's identity headers, and the js_var each travels in to the
// location that proxies to the MCP server.
const IDENTITY = [
  ['Tailscale-User-Login', 'clawscale_login'],
  ['Tailscale-User-Name', 'clawscale_name'],
  ['Tailscale-Node', 'clawscale_node'],
  ['Tailscale-Tags', 'clawscale_tags'],
  ['Tailscale-Caps', 'clawscale_caps'],
];

// What clawscale takes as a tool name in X-MCP-Tool.
const TOOL_NAME = /^[A-Za-z0-9_.:\/-]{1,128}$/;

// The tool a request body calls: '' when it calls none (initialize,
// tools/list, notifications, an empty GET or DELETE), or {error} for a
// body the gate refuses. JSON.parse reads the body as MCP servers' own
// parsers do (escapes decoded, the last of duplicate keys wins), so the
// gate and the server never disagree about which tool is called.
function toolOf(body) {
  if (!body) {
    return {tool: ''};
  }
  let msg;
  try {
    msg = JSON.parse(body);
  } catch (e) {
    return {error: 'the body is not JSON'};
  }
  if (Array.isArray(msg)) {
    return {error: 'JSON-RPC batches are not accepted'};
  }
  if (msg === null || typeof msg !== 'object' || msg.method !== 'tools/call') {
    return {tool: ''};
  }
  const name = msg.params !== null && typeof msg.params === 'object' ? msg.params.name : undefined;
  if (typeof name !== 'string' || !TOOL_NAME.test(name)) {
    return {error: 'tools/call without a valid tool name'};
  }
  return {tool: name};
}

async function gate(r) {
  const call = toolOf(r.requestText);
  if (call.error) {
    r.return(400, call.error + '\n');
    return;
  }
  // Read by `proxy_set_header X-MCP-Tool` in the subrequest's location.
  r.variables.clawscale_tool = call.tool;
  const reply = await r.subrequest('/_clawscale_authorize', {method: 'GET'});
  if (reply.status !== 200) {
    // 403 is clawscale's "no"; anything else (a bad API key, clawscale
    // unreachable) is the gateway's fault, and fails closed too.
    r.return(reply.status === 403 ? 403 : 502, reply.responseText || '');
    return;
  }
  IDENTITY.forEach(function (pair) {
    r.variables[pair[1]] = reply.headersOut[pair[0]] || '';
  });
  r.internalRedirect('@clawscale_mcp');
}

export default {gate};
