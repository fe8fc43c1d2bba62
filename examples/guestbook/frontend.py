"""The guestbook's frontend, in place of Google's gb-frontend image (PHP
with Predis): a web page that lists the messages and adds one, and
/guestbook.php, which answers
  ?cmd=set&key=K&value=V   by SET K V on redis-leader:  {"message": "Updated"}
  ?cmd=get&key=K           by GET K on redis-follower:  {"data": "V"}
The Redis hosts are the Services' names (DNS), or, with GET_HOSTS_FROM=env,
their REDIS_LEADER_SERVICE_HOST and REDIS_FOLLOWER_SERVICE_HOST variables,
as upstream's guestbook.php does. Python's standard library only: Redis is
spoken with the few lines of RESP below. Built into the image by
build-image (/usr/local/lib/guestbook/frontend.py)."""

import json
import os
import socket
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


def redis_host(service):
    """Where a Service is: its name, or the variable kubelet sets."""
    if os.environ.get("GET_HOSTS_FROM") == "env":
        return os.environ[service.upper().replace("-", "_") + "_SERVICE_HOST"]
    return service


def redis(service, *args):
    """One command to the Service's Redis; its reply (None for nil)."""
    with socket.create_connection((redis_host(service), 6379), timeout=5) as conn:
        request = b"*%d\r\n" % len(args)
        for arg in args:
            data = arg.encode()
            request += b"$%d\r\n%s\r\n" % (len(data), data)
        conn.sendall(request)
        reply = conn.makefile("rb")
        line = reply.readline().rstrip(b"\r\n")
        kind, rest = line[:1], line[1:].decode()
        if kind == b"+":
            return rest
        if kind == b"-":
            raise RuntimeError(rest)
        if kind == b"$":
            return None if rest == "-1" else reply.read(int(rest) + 2)[:-2].decode()
        raise RuntimeError(f"unexpected reply {line!r}")


PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Guestbook</title>
<style>body{font-family:sans-serif;max-width:40em;margin:2em auto}
input{width:70%}div.msg{border-bottom:1px solid #ddd;padding:.3em}</style></head>
<body><h2>Guestbook</h2>
<form id="f"><input id="m" placeholder="Messages" autofocus>
<button>Submit</button></form><div id="list"></div>
<script>
// As upstream's controllers.js: the messages are one comma-joined value.
let messages = [];
const call = (q) => fetch("guestbook.php?" + new URLSearchParams(q)).then(r => r.json());
const show = () => document.getElementById("list").innerHTML =
  messages.map(m => "<div class=msg></div>").join("");
const fill = () => { show(); document.querySelectorAll("div.msg").forEach((d, i) => d.textContent = messages[i]); };
call({cmd: "get", key: "messages"}).then(r => { messages = r.data ? r.data.split(",") : []; fill(); });
document.getElementById("f").onsubmit = (e) => {
  e.preventDefault();
  const m = document.getElementById("m");
  messages.push(m.value); m.value = "";
  call({cmd: "set", key: "messages", value: messages.join(",")}).then(fill);
};
</script></body></html>
"""


class Frontend(BaseHTTPRequestHandler):
    def answer(self, code, body, kind="application/json"):
        data = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        url = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        if url.path in ("/", "/index.html") and "cmd" not in query:
            return self.answer(200, PAGE, "text/html; charset=utf-8")
        if url.path not in ("/", "/guestbook.php"):
            return self.answer(404, json.dumps({"error": "not found"}))
        if query.get("cmd") not in ("set", "get") or "key" not in query:
            return self.answer(400, json.dumps({"error": "wanted ?cmd=set|get&key=K"}))
        try:
            if query["cmd"] == "set":
                redis("redis-leader", "SET", query["key"], query.get("value", ""))
                return self.answer(200, json.dumps({"message": "Updated"}))
            value = redis("redis-follower", "GET", query["key"])
            return self.answer(200, json.dumps({"data": value or ""}))
        except (OSError, RuntimeError, KeyError) as e:  # say which Redis failed
            return self.answer(503, json.dumps({"error": f"{type(e).__name__}: {e}"}))


if __name__ == "__main__":
    port = int(os.environ.get("PORT", "80"))
    print(f"guestbook frontend on :{port}", flush=True)
    ThreadingHTTPServer(("0.0.0.0", port), Frontend).serve_forever()
