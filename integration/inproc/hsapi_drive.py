"""Drives a running clawscale with hsapi-client (PyPI), a real client of
Headscale's REST API: users, pre-auth keys, nodes and policy.

Run by integration/inproc/hsapi.rs with HSAPI_SERVER, HSAPI_API_TOKEN and
NODE_ID (a node of user "carol") set. Exits non-zero on the first failed
check.

hsapi-client 0.9.9 models a few answers in Headscale <= 0.25's shapes (a
pre-auth key's `user` as a name, node and API key times never null); since
Headscale 0.26 those are a User object and null times, and clawscale sends
what Headscale main sends. For those calls this script uses the library's
own HTTP layer (`HSAPICall.call`: settings, bearer key, error handling)
and reads the JSON, and its typed methods everywhere they fit.
"""

import os
import sys

from pydantic import BaseModel

from hsapi_client import Node, Policy, PreAuthKey, User
from hsapi_client.config import APISettings, HTTPException
from hsapi_client.nodes import v1SetTagsNodeRequest
from hsapi_client.preauthkeys import v1CreatePreAuthKeyRequest, v1ExpirePreAuthKeyRequest
from hsapi_client.users import v1CreateUserRequest


def check(cond, what):
    if not cond:
        print(f"FAIL: {what}", file=sys.stderr)
        sys.exit(1)


def refused(status, fn):
    try:
        fn()
    except HTTPException as e:
        check(e.status_code == status, f"expected {status}, got {e.status_code}: {e.message}")
        return
    check(False, f"expected HTTP {status}, the call succeeded")


class KeyId(BaseModel):
    id: str


settings = APISettings()
node_id = os.environ["NODE_ID"]

# --- users (typed) ---
users = User(settings)
alice = users.create(v1CreateUserRequest(name="alice")).user
check(alice.name == "alice" and alice.id > 0, f"created {alice}")
bob = users.create(v1CreateUserRequest(name="bob")).user
names = [u.name for u in users.list().users]
check(names == ["carol", "alice", "bob"], f"users {names}")
refused(409, lambda: users.create(v1CreateUserRequest(name="alice")))
robert = users.rename(str(bob.id), "robert").user
check(robert.name == "robert" and robert.id == bob.id, f"renamed {robert}")
users.delete(str(bob.id))
check([u.name for u in users.list().users] == ["carol", "alice"], "bob deleted")
refused(404, lambda: users.delete("999"))

# --- pre-auth keys (request models typed, answers read as JSON) ---
keys = PreAuthKey(settings)
req = v1CreatePreAuthKeyRequest(user=str(alice.id), reusable=True, aclTags=["ci"])
req.aclTags = ["tag:ci"]
k = keys.call("post", data=req).json()["preAuthKey"]
check(k["key"].startswith("cskey-auth-") and not k["key"].endswith("***"), "full secret once")
check(k["reusable"] is True and k["aclTags"] == ["tag:ci"], f"key {k}")
check(k["user"]["name"] == "alice", f"owner {k['user']}")
listed = keys.call("get").json()["preAuthKeys"]
check(len(listed) == 2, f"two keys (carol's and alice's): {listed}")
check(all(x["key"].endswith("-***") for x in listed), "listings are masked")
check(k["key"] not in str(listed), "no secret in the listing")
keys.call("post", "expire", data=KeyId(id=k["id"]))
after = [x for x in keys.call("get").json()["preAuthKeys"] if x["id"] == k["id"]][0]
check(after["expiration"] != "0001-01-01T00:00:00Z", f"expired {after}")
# hsapi-client's own expire sends Headscale <= 0.25's body: refused, as
# unknown fields are.
refused(400, lambda: keys.expire(v1ExpirePreAuthKeyRequest(user="alice", key="x")))
refused(404, lambda: keys.call("post", "expire", data=KeyId(id="999")))

# --- nodes ---
nodes = Node(settings)
listed = nodes.call("get").json()["nodes"]
check([n["id"] for n in listed] == [node_id], f"nodes {listed}")
check(listed[0]["user"]["name"] == "carol", "owner")
check(len(listed[0]["ipAddresses"]) == 2, "two addresses")
check(listed[0]["registerMethod"] == "REGISTER_METHOD_AUTH_KEY", "register method")
nodes.expire(node_id)
got = nodes.call("get", call_path=node_id).json()["node"]
check(got["expiry"] is not None, f"expired {got}")
renamed = nodes.call("post", f"{node_id}/rename/renamed").json()["node"]
check(renamed["givenName"] == "renamed", f"renamed {renamed}")
tagged = nodes.call("post", f"{node_id}/tags", v1SetTagsNodeRequest(tags=["server"])).json()
check(tagged["node"]["tags"] == ["tag:server"], f"tags {tagged}")
check(nodes.backfillips().changes == [], "nothing to backfill")
refused(404, lambda: nodes.delete("999"))
nodes.delete(node_id)
check(nodes.call("get").json()["nodes"] == [], "node deleted")

# --- policy (typed) ---
policy = Policy(settings)
put = policy.put('{"acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"]}]}')
check(put.policy["acls"][0]["action"] == "accept", f"policy {put}")
got = policy.get()
check(got.policy == put.policy and got.updatedAt is not None, f"read back {got}")
refused(400, lambda: policy.put('{"acls": ['))

# --- authentication ---
bad = APISettings(api_token="cskey-api-000000000000-" + "0" * 64)
refused(401, lambda: User(bad).list())

print("hsapi-client: all checks passed")
