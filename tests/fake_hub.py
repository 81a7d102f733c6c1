"""The Hub's side of an upload, on localhost: the four endpoints huggingface_hub 1.x calls to create a repo and commit
a folder (repos/create, validate-yaml, preupload, commit), answering every file as a "regular" (inline) upload so
each commit carries the files' bytes. Point HF_ENDPOINT at `url` and `ssd push` runs huggingface_hub's own calls
over real HTTP to here; `repos` and `commits` record what arrived. No hub is reachable from CI, so this is where
"tested up to the network" ends: the real Hub's YAML validation, LFS/Xet transfer of large files and permissions
are not exercised."""

from __future__ import annotations

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeHub:
    def __init__(self, refuse_token: bool = False):
        self.repos: list[dict] = []
        self.commits: list[dict] = []  # {"kind", "repo", "summary", "files": {path: bytes}, "token"}
        self.refuse_token = refuse_token
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _body(self) -> bytes:
                if self.headers.get("Content-Length"):
                    return self.rfile.read(int(self.headers["Content-Length"]))
                data = b""
                while self.headers.get("Transfer-Encoding") == "chunked":
                    size = int(self.rfile.readline().strip(), 16)
                    chunk = self.rfile.read(size)
                    self.rfile.readline()
                    if not size:
                        break
                    data += chunk
                return data

            def _send(self, code: int, obj) -> None:
                body = json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                self._send(404, {"error": "not found"})

            def do_POST(self):
                body, token = self._body(), self.headers.get("Authorization", "")
                if hub.refuse_token:
                    return self._send(401, {"error": "Invalid credentials in Authorization header"})
                if self.path == "/api/repos/create":
                    d = json.loads(body)
                    hub.repos.append({**d, "token": token})
                    return self._send(200, {"url": f"{hub.url}/{d.get('organization')}/{d['name']}", "name": d["name"]})
                if self.path == "/api/validate-yaml":
                    return self._send(200, {"errors": [], "warnings": []})
                if "/preupload/" in self.path:
                    files = json.loads(body)["files"]
                    return self._send(200, {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
                                                      for f in files], "commitOid": "0" * 40})
                if "/commit/" in self.path:
                    kind, repo = self.path.split("/")[2], "/".join(self.path.split("/")[3:5])
                    lines = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
                    files = {x["value"]["path"]: base64.b64decode(x["value"]["content"]) for x in lines if x["key"] == "file"}
                    summary = next(x["value"]["summary"] for x in lines if x["key"] == "header")
                    hub.commits.append({"kind": kind, "repo": repo, "summary": summary, "files": files, "token": token})
                    return self._send(200, {"commitUrl": f"{hub.url}/{repo}/commit/{len(hub.commits)}",
                                            "commitOid": f"{len(hub.commits):040d}", "success": True})
                self._send(404, {"error": f"not served here: {self.path}"})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
