#!/usr/bin/python3
"""XMPP test client for Parley's integration tests, driven from Go.

Run with Debian's /usr/bin/python3 (it has python3-slixmpp):

    client.py --jid alice@xmpp.test/test --password alice --host 127.0.0.1 --port 5222

It connects to host:port without DNS and without TLS, authenticates
(SCRAM, PLAIN allowed on plaintext), sends initial presence and prints
{"ready": true}. Then it reads one JSON command per line on stdin:

    {"send": {"to": "bob@xmpp.test", "body": "hi", "id": "m1", "type": "chat"}}
    {"raw": "<message to='bob@xmpp.test'><body>hi</body></message>"}
    {"presence": {"to": "...", "type": "..."}}     (both optional)
    {"quit": true}

and writes one JSON line per received <message>:

    {"message": {"from", "to", "id", "type", "body", "thread", "xml",
                 "error": {"condition", "type", "text"}}}

Other lines: {"ready": true}, {"sent": "<id>"} after each send,
{"fatal": "..."} before exiting on failure, {"disconnected": "..."} at the end.
Output is ASCII JSON (\\u escapes), so UTF-8 survives any locale.
"""

import argparse
import asyncio
import json
import logging
import os
import sys

import slixmpp
from slixmpp.exceptions import IqError, IqTimeout


def emit(obj):
    sys.stdout.write(json.dumps(obj, ensure_ascii=True) + "\n")
    sys.stdout.flush()


class Client(slixmpp.ClientXMPP):
    def __init__(self, jid, password, host, port):
        super().__init__(jid, password)
        self.target = (host, port)
        self.ready = False
        self.finished = asyncio.Event()
        self.buf = b""
        self["feature_mechanisms"].unencrypted_plain = True
        self.add_event_handler("session_start", self.on_start)
        self.add_event_handler("message", self.on_message)
        # slixmpp routes type="error" messages to message_error only.
        self.add_event_handler("message_error", self.on_message)
        self.add_event_handler("failed_auth", self.on_failed_auth)
        self.add_event_handler("connection_failed", self.on_connection_failed)
        self.add_event_handler("disconnected", self.on_disconnected)

    # The harness gives an IP literal: never ask DNS (slixmpp would look up
    # the JID's domain first).
    async def get_dns_records(self, domain, port=None):
        return [(self.target[0], self.target[0], self.target[1])]

    async def on_start(self, _event):
        self.send_presence()
        # Ready means the server has processed the initial presence: a
        # message to our bare JID must reach us, not bounce. The server
        # handles one stream in order, so any answer to an iq sent after the
        # presence proves it (an error answer as well).
        try:
            iq = self.make_iq_get(queryxmlns="http://jabber.org/protocol/disco#info", ito=self.boundjid.domain)
            await iq.send(timeout=10)
        except IqError:
            pass
        except IqTimeout:
            self.fatal("server did not answer the initial disco#info")
            return
        self.ready = True
        self.loop.add_reader(sys.stdin.fileno(), self.on_stdin)
        emit({"ready": True})

    def on_failed_auth(self, _event):
        self.fatal("authentication failed")

    def on_connection_failed(self, err):
        self.fatal("connection failed: %s" % (err,))

    def on_disconnected(self, reason):
        emit({"disconnected": str(reason or "")})
        self.finished.set()

    def fatal(self, text):
        emit({"fatal": text})
        self.finished.set()

    def on_message(self, msg):
        out = {
            "from": str(msg["from"]),
            "to": str(msg["to"]),
            "id": msg["id"] or "",
            "type": msg["type"] or "",
            "body": msg["body"] or "",
            "thread": msg["thread"] or "",
            "xml": str(msg),
        }
        if msg["type"] == "error":
            err = msg["error"]
            out["error"] = {
                "condition": err["condition"] or "",
                "type": err["type"] or "",
                "text": err["text"] or "",
            }
        emit({"message": out})

    def on_stdin(self):
        try:
            chunk = os.read(sys.stdin.fileno(), 65536)
        except BlockingIOError:
            return
        if not chunk:
            self.loop.remove_reader(sys.stdin.fileno())
            self.disconnect(wait=0.5)
            return
        self.buf += chunk
        while b"\n" in self.buf:
            line, self.buf = self.buf.split(b"\n", 1)
            if line.strip():
                self.command(line)

    def command(self, line):
        try:
            cmd = json.loads(line.decode("utf-8"))
        except ValueError as e:
            emit({"bad_command": str(e)})
            return
        if "send" in cmd:
            s = cmd["send"]
            msg = self.make_message(mto=s["to"], mbody=s.get("body"), mtype=s.get("type") or "chat")
            if s.get("id"):
                msg["id"] = s["id"]
            msg.send()
            emit({"sent": msg["id"]})
        elif "raw" in cmd:
            self.send_raw(cmd["raw"])
            emit({"sent": ""})
        elif "presence" in cmd:
            p = cmd["presence"] or {}
            self.send_presence(pto=p.get("to"), ptype=p.get("type"))
            emit({"sent": ""})
        elif cmd.get("quit"):
            self.loop.remove_reader(sys.stdin.fileno())
            self.disconnect(wait=0.5)
        else:
            emit({"bad_command": "unknown command"})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--jid", required=True)
    ap.add_argument("--password", required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=5222)
    ap.add_argument("--debug", action="store_true")
    args = ap.parse_args()
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.ERROR,
                        stream=sys.stderr, format="%(levelname)s %(name)s %(message)s")
    # slixmpp leaves an internal task pending at exit; asyncio would log it.
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)
    os.set_blocking(sys.stdin.fileno(), False)
    c = Client(args.jid, args.password, args.host, args.port)
    c.connect((args.host, args.port), force_starttls=False, disable_starttls=True)
    c.loop.run_until_complete(c.finished.wait())


if __name__ == "__main__":
    main()
