-- The MCP gate for HAProxy (2.6 or later, built with Lua 5.3; lua-cjson).
-- HAProxy has no forward-auth of its own and the tool an MCP client calls
-- is in the request body, so this action reads the JSON-RPC body itself,
-- asks clawscale's /api/v1/authorize whether the caller may use that tool,
-- and sets the caller's identity headers from clawscale's answer. It
-- leaves its verdict in txn.mcp_gate ("ok", "bad", "too_large", "denied"
-- or "error");
-- mcp-gateway.cfg turns every verdict but "ok" into a refusal.
-- docs/gateway.md explains the set-up; integration/gates.rs runs it with
-- real clients.

local cjson = require("cjson")

-- clawscale's identity headers, copied from its answer to the request.
local IDENTITY = {
  "Tailscale-User-Login",
  "Tailscale-User-Name",
  "Tailscale-Node",
  "Tailscale-Tags",
  "Tailscale-Caps",
}

-- The tool a request body calls: "" when it calls none (initialize,
-- tools/list, notifications, an empty GET or DELETE), or nil and a reason
-- for a body the gate refuses. cjson reads the body as MCP servers' own
-- parsers do (escapes decoded, the last of duplicate keys wins), so the
-- gate and the server never disagree about which tool is called.
local function tool_of(body)
  if body == nil or body == "" then
    return ""
  end
  if body:match("^%s*%[") then
    return nil, "JSON-RPC batches are not accepted"
  end
  local ok, msg = pcall(cjson.decode, body)
  if not ok then
    return nil, "the body is not JSON"
  end
  if type(msg) ~= "table" or msg.method ~= "tools/call" then
    return ""
  end
  local name = type(msg.params) == "table" and msg.params.name or nil
  -- What clawscale takes as a tool name in X-MCP-Tool.
  if type(name) ~= "string" or #name > 128 or not name:match("^[%w_.:/-]+$") then
    return nil, "tools/call without a valid tool name"
  end
  return name
end

-- The first value of a header in an httpclient response (HAProxy lists
-- each header's values from index 0).
local function header(res, name)
  local values = res.headers and res.headers[name:lower()]
  if values == nil then
    return nil
  end
  return values[0] or values[1]
end

-- http-request lua.mcp_gate <clawscale URL> <API key>
local function gate(txn, url, key)
  -- Whatever a client sent as its own identity or tool is dropped first.
  for _, h in ipairs(IDENTITY) do
    txn.http:req_del_header(h)
  end
  txn.http:req_del_header("X-MCP-Tool")

  local body = txn.sf:req_body() or ""
  -- HAProxy buffers at most tune.bufsize of the body; a longer one would
  -- be judged on a part, so it is refused.
  local declared = tonumber(txn.f:req_hdr("content-length") or "")
  if declared ~= nil and declared > #body then
    txn:set_var("txn.mcp_gate", "too_large")
    txn:set_var("txn.mcp_gate_reason", "the body is larger than the gate reads")
    return
  end
  local tool, reason = tool_of(body)
  if tool == nil then
    txn:set_var("txn.mcp_gate", "bad")
    txn:set_var("txn.mcp_gate_reason", reason)
    return
  end
  local headers = {
    ["Authorization"] = { "Bearer " .. key },
    -- Set, not appended to: the connection's own address.
    ["X-Forwarded-For"] = { txn.f:src() },
  }
  if tool ~= "" then
    headers["X-MCP-Tool"] = { tool }
  end
  local res = core.httpclient():get({
    url = url .. "/api/v1/authorize",
    headers = headers,
    timeout = 5000,
  })
  if res == nil or res.status ~= 200 then
    -- 403 is clawscale's "no"; anything else (a bad API key, clawscale
    -- unreachable) is the gateway's fault, and fails closed too.
    txn:set_var("txn.mcp_gate", (res and res.status == 403) and "denied" or "error")
    return
  end
  for _, h in ipairs(IDENTITY) do
    local v = header(res, h)
    if v ~= nil then
      txn.http:req_set_header(h, v)
    end
  end
  txn:set_var("txn.mcp_gate", "ok")
end

core.register_action("mcp_gate", { "http-req" }, gate, 2)
