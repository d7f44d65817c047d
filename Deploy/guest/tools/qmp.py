#!/usr/bin/env python3
"""Minimal QMP client for poking at test guests by hand (dev tool, not used by the agent).

    qmp.py SOCKET COMMAND ['{"json": "arguments"}'] [COMMAND [ARGS]] ...
    qmp.py /tmp/src.qmp query-status
    qmp.py /tmp/src.qmp migrate-set-parameters '{"max-bandwidth": 10000000000}' \
                        migrate '{"uri": "unix:/tmp/mig.sock"}' wait-migration

`wait-migration` is not a QMP command: it polls query-migrate until the migration ends
and prints the final query-migrate result. Each result is printed as one JSON line;
asynchronous events are ignored. Exits 1 on a QMP error.
"""
import json
import socket
import sys
import time


class QMP:
    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.buf = b""
        self._read()  # greeting
        self.call("qmp_capabilities")

    def _read(self):
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("QMP socket closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def call(self, cmd, args=None):
        msg = {"execute": cmd}
        if args:
            msg["arguments"] = args
        self.sock.sendall(json.dumps(msg).encode() + b"\n")
        while True:
            reply = self._read()
            if "return" in reply:
                return reply["return"]
            if "error" in reply:
                raise RuntimeError(f"{cmd}: {reply['error']}")
            # anything else is an event: skip it

    def wait_migration(self):
        while True:
            info = self.call("query-migrate")
            if info.get("status") in ("completed", "failed", "cancelled"):
                return info
            time.sleep(0.02)


def main(argv):
    if len(argv) < 3:
        sys.exit(__doc__)
    qmp = QMP(argv[1])
    rest = argv[2:]
    try:
        while rest:
            cmd, rest = rest[0], rest[1:]
            args = None
            if rest and rest[0].startswith("{"):
                args, rest = json.loads(rest[0]), rest[1:]
            result = qmp.wait_migration() if cmd == "wait-migration" else qmp.call(cmd, args)
            print(json.dumps(result))
    except RuntimeError as e:
        print(e, file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main(sys.argv)
