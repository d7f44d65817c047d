#!/usr/bin/env python3
"""QEMU's own direct migration of the test guest, pinged from the host every few ms: where the
moving guest stalls (issue 12's ~200 ms pre-copy stall), with no agent involved.

    Scripts/precopy-stall.py [--mib 128,256,512] [--ram aligned,plus8k] [--rounds 2]
                             [--interval-ms 5] [--smp 1] [--dir /tmp/hmg-stall] [--port 47311] [--json]
                             [--stop-cont-ms MS]

`--stop-cont-ms MS` pauses the guest with `stop`/`cont` in its own QEMU instead of migrating it:
the reply gap beyond the pause is what resuming costs when the guest's translated code is kept,
against the switchover gap of a migration, whose destination QEMU translates it afresh.

Two QEMUs (source booted, destination `-incoming tcp:`), the same argv shape as the agent's
(`QEMUCommandLine`: q35, qemu64, 1 vCPU, TCG, virtio-net on a unix datagram socket), the same
migration settings (`MigrationSettings`: events, auto-converge armed at 1 %, downtime-limit
300 ms, max-bandwidth 10 GiB/s). This script is the other end of both guests' datagram
sockets: it answers ARP for 10.77.0.1 and sends an ICMP echo request to 10.77.0.2 every
`--interval-ms`, to the source and the destination socket alike, and times each reply on the
host's monotonic clock (the moving guest's own clock stops while it is paused).

`--ram plus8k` is what the agent runs under TCG (`-m <MiB*1024+8>k`, see
`QEMUCommandLine.memoryArgument`: QEMU 7.2's dirty-bitmap sync then takes its per-page path,
which resets TCG's TLB for each dirty page); `aligned` is plain `-m <MiB>M` (the fast path,
which skips the TLB reset: unsafe on 7.2, measured only to show where the stall comes from).

Per move it prints QEMU's setup-time, downtime and total, and the longest gap between two
replies (what a pinging peer sees) that ended in pre-copy (from `migrate` to 50 ms before the
switchover) and at the switchover (from then to 1 s after completion), with when the pre-copy
one ended, relative to `migrate`; `lost` counts requests never answered (during a
stall the guest's socket queue fills, `net.unix.max_dgram_qlen`, and the rest are dropped
here). Each move's per-ping round trips go to `<dir>/../hmg-stall-<MiB>-<ram>.timeline`
(ms after `migrate` the ping was sent, round trip ms or -1). The QEMUs are this script's own
children and are killed at the end of each move.
"""
import argparse
import json
import os
import select
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
KERNEL = os.path.join(HERE, "..", "Deploy", "out", "guest", "kernel")
INITRD = os.path.join(HERE, "..", "Deploy", "out", "guest", "initrd.img")
HOST_MAC = bytes.fromhex("525400770001")
GUEST_MAC = bytes.fromhex("525400770002")
HOST_IP = socket.inet_aton("10.77.0.1")
GUEST_IP = socket.inet_aton("10.77.0.2")
ICMP_ID = 0x4D48


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return (~s) & 0xFFFF


def echo_request(seq):
    icmp = struct.pack("!BBHHH", 8, 0, 0, ICMP_ID, seq & 0xFFFF) + b"hmg-stall-probe!" * 2
    icmp = icmp[:2] + struct.pack("!H", checksum(icmp)) + icmp[4:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(icmp), seq & 0xFFFF, 0, 64, 1, 0, HOST_IP, GUEST_IP)
    ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
    return GUEST_MAC + HOST_MAC + b"\x08\x00" + ip + icmp


def arp_reply(frame):
    """The reply to an ARP request for HOST_IP, or None."""
    if len(frame) < 42 or frame[12:14] != b"\x08\x06":
        return None
    op = struct.unpack("!H", frame[20:22])[0]
    if op != 1 or frame[38:42] != HOST_IP:
        return None
    sender_mac, sender_ip = frame[22:28], frame[28:32]
    arp = struct.pack("!HHBBH", 1, 0x0800, 6, 4, 2) + HOST_MAC + HOST_IP + sender_mac + sender_ip
    return sender_mac + HOST_MAC + b"\x08\x06" + arp


def echo_reply_seq(frame):
    if len(frame) < 42 or frame[12:14] != b"\x08\x00" or frame[23] != 1:
        return None
    ihl = (frame[14] & 0x0F) * 4
    icmp = frame[14 + ihl:]
    if len(icmp) < 8 or icmp[0] != 0:
        return None
    ident, seq = struct.unpack("!HH", icmp[4:8])
    return seq if ident == ICMP_ID else None


class QMP:
    def __init__(self, path):
        for _ in range(200):
            try:
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.sock.connect(path)
                break
            except OSError:
                time.sleep(0.05)
        else:
            raise RuntimeError(f"no QMP at {path}")
        self.buf = b""
        self.events = []
        self._read()
        self.call("qmp_capabilities")

    def _read(self, timeout=None):
        while b"\n" not in self.buf:
            if timeout is not None:
                r, _, _ = select.select([self.sock], [], [], timeout)
                if not r:
                    return None
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("QMP closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        msg = json.loads(line)
        if "event" in msg:
            self.events.append((time.monotonic(), msg))
        return msg

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

    def poll_events(self):
        while self._read(timeout=0) is not None:
            pass


def ping_loop(hub, targets, interval, sent, replied, stop):
    seq = 0
    next_send = time.monotonic()
    while not stop.is_set():
        if time.monotonic() >= next_send:
            seq += 1
            frame = echo_request(seq)
            sent[seq] = time.monotonic()
            for t in targets:
                try:
                    hub.sendto(frame, t)
                except OSError:
                    pass  # that QEMU is not (or no longer) there: the other one is
            next_send += interval
        r, _, _ = select.select([hub], [], [], max(0, min(next_send - time.monotonic(), 0.002)))
        if not r:
            continue
        while True:
            try:
                frame, addr = hub.recvfrom(65536)
            except BlockingIOError:
                break
            reply = arp_reply(frame)
            if reply and addr:
                try:
                    hub.sendto(reply, addr)
                except OSError:
                    pass  # the asker went away; it asks again
            s = echo_reply_seq(frame)
            if s is not None and s not in replied:
                replied[s] = time.monotonic()


def qemu_argv(mib, ram, name, d, incoming_port=None, smp=1):
    mem = f"{mib}M" if ram == "aligned" else f"{mib * 1024 + 8}k"
    argv = ["qemu-system-x86_64", "-name", f"guest={name},debug-threads=on", "-machine", "q35",
            "-accel", "tcg", "-cpu", "qemu64", "-smp", str(smp), "-m", mem, "-nodefaults", "-no-user-config",
            "-display", "none", "-chardev", f"file,id=serial0,path={d}/{name}.serial", "-serial", "chardev:serial0",
            "-qmp", f"unix:{d}/{name}.qmp,server=on,wait=off",
            "-netdev", f"dgram,id=n0,local.type=unix,local.path={d}/{name}.sock,remote.type=unix,remote.path={d}/hub.sock",
            "-device", "virtio-net-pci,id=n0-dev,mac=52:54:00:77:00:02,romfile=,netdev=n0",
            "-kernel", KERNEL, "-initrd", INITRD,
            "-append", "console=ttyS0 quiet hm.ip=10.77.0.2/24 hm.work=heartbeat,echo:7"]
    if incoming_port:
        argv += ["-incoming", f"tcp:127.0.0.1:{incoming_port}"]
    return argv


def set_migration(qmp):
    qmp.call("migrate-set-capabilities", {"capabilities": [
        {"capability": "events", "state": True}, {"capability": "auto-converge", "state": True}]})
    qmp.call("migrate-set-parameters", {"downtime-limit": 300, "max-bandwidth": 10 << 30,
                                        "cpu-throttle-initial": 1, "cpu-throttle-increment": 1,
                                        "max-cpu-throttle": 1})


def start_source(mib, ram, d, smp):
    """A fresh directory, the hub's socket and the source QEMU; returns them once the guest says
    it is ready (the QEMU is killed if it does not within 60 s)."""
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    hub = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    hub.bind(f"{d}/hub.sock")
    hub.setblocking(False)
    proc = subprocess.Popen(qemu_argv(mib, ram, "src", d, smp=smp), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=open(f"{d}/src.err", "w"))
    deadline = time.monotonic() + 60
    while b"HOSTMESH-GUEST ready" not in open(f"{d}/src.serial", "rb").read() if os.path.exists(f"{d}/src.serial") else True:
        if time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            hub.close()
            raise RuntimeError("source guest did not boot")
        time.sleep(0.1)
    return hub, proc


def stop_cont(mib, ram, d, interval, pause_ms, smp=1):
    """The same guest paused by `stop` and resumed by `cont` in the same QEMU (its translated
    code kept): the reply gap beyond the pause is what resuming costs without a migration."""
    hub, proc = start_source(mib, ram, d, smp)
    try:
        src = QMP(f"{d}/src.qmp")
        sent, replied = {}, {}
        stop = threading.Event()
        pinger = threading.Thread(target=ping_loop, args=(hub, [f"{d}/src.sock"], interval, sent, replied, stop))
        pinger.start()
        try:
            time.sleep(5.0)
            t_stop = time.monotonic()
            src.call("stop")
            time.sleep(pause_ms / 1000)
            src.call("cont")
            t_cont = time.monotonic()
            time.sleep(3.0)
        finally:
            stop.set()
            pinger.join()
        times = sorted(replied.values())
        gaps = [b_ - a_ for a_, b_ in zip(times, times[1:]) if t_stop - 1.0 <= b_ <= t_cont + 1.0]
        return {"mib": mib, "ram": ram, "pause_ms": round((t_cont - t_stop) * 1000, 1),
                "gap_ms": round(max(gaps) * 1000, 1) if gaps else None}
    finally:
        proc.kill()
        proc.wait()
        hub.close()


def one_move(mib, ram, d, port, interval, smp=1):
    hub, source = start_source(mib, ram, d, smp)
    procs = [source]
    try:
        procs.append(subprocess.Popen(qemu_argv(mib, ram, "dst", d, port, smp=smp), stdin=subprocess.DEVNULL,
                                      stdout=subprocess.DEVNULL, stderr=open(f"{d}/dst.err", "w")))
        src, dst = QMP(f"{d}/src.qmp"), QMP(f"{d}/dst.qmp")
        set_migration(src)
        dst.call("migrate-set-capabilities", {"capabilities": [
            {"capability": "events", "state": True}, {"capability": "auto-converge", "state": True}]})
        sent, replied = {}, {}
        targets = [f"{d}/src.sock", f"{d}/dst.sock"]
        stop = threading.Event()
        # The pinger has its own thread: QMP commands wait for QEMU's big lock, which the
        # migration's setup holds for as long as the stall being measured.
        pinger = threading.Thread(target=ping_loop, args=(hub, targets, interval, sent, replied, stop))
        pinger.start()
        try:
            time.sleep(5.0)
            t_migrate = time.monotonic()
            src.call("migrate", {"uri": f"tcp:127.0.0.1:{port}"})
            while True:
                time.sleep(0.02)
                info = src.call("query-migrate")
                if info.get("status") in ("completed", "failed", "cancelled"):
                    break
                if time.monotonic() - t_migrate > 60:
                    raise RuntimeError("migration did not finish in 60 s")
            t_done = time.monotonic()
            if info["status"] != "completed":
                raise RuntimeError(f"migration {info['status']}")
            time.sleep(3.0)
        finally:
            stop.set()
            pinger.join()
        end = time.monotonic()
        src.poll_events()
        setup_end = next((t for t, e in src.events if e["event"] == "MIGRATION" and e["data"]["status"] == "active"), None)
        downtime = info.get("downtime", 0)
        switch_at = t_done - downtime / 1000 - 0.05
        # Gaps between consecutive replies (what a pinging peer sees), each placed by its end
        # (as `PeerGapSplit` does): a stall's gap starts at the last reply before it.
        times = sorted(replied.values())
        gaps = [(b_ - a_, b_ - t_migrate) for a_, b_ in zip(times, times[1:])]
        pre = [g for g in gaps if 0 < g[1] < switch_at - t_migrate]
        sw = [g for g in gaps if switch_at - t_migrate <= g[1] < t_done - t_migrate + 1.0]
        base = [g[0] for g in gaps if -2.0 <= g[1] <= 0]
        pre_max = max(pre) if pre else (0, 0)
        sw_max = max(sw) if sw else (0, 0)
        lost = sum(1 for s_, t in sent.items() if s_ not in replied and t_migrate - 2.0 <= t < end - 1.0)
        return {"mib": mib, "ram": ram, "setup_ms": info.get("setup-time"),
                "setup_event_ms": round((setup_end - t_migrate) * 1000, 1) if setup_end else None,
                "downtime_ms": downtime, "total_ms": info.get("total-time"),
                "baseline_max_gap_ms": round(max(base) * 1000, 1) if base else None,
                "precopy_gap_ms": round(pre_max[0] * 1000, 1), "precopy_gap_ended_at_ms": round(pre_max[1] * 1000),
                "switchover_gap_ms": round(sw_max[0] * 1000, 1), "lost": lost}
    finally:
        for p in procs:
            p.kill()
            p.wait()
        hub.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mib", default="128,256,512")
    ap.add_argument("--ram", default="plus8k,aligned")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--interval-ms", type=float, default=5)
    ap.add_argument("--dir", default="/tmp/hmg-stall")
    ap.add_argument("--port", type=int, default=47311)
    ap.add_argument("--smp", type=int, default=1, help="vCPUs (TCG resets each one's TLB per dirty page)")
    ap.add_argument("--stop-cont-ms", type=float, default=None,
                    help="instead of migrating, pause the guest this long with stop/cont in the same QEMU")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    if a.stop_cont_ms is not None:
        for r in range(a.rounds):
            for mib in [int(x) for x in a.mib.split(",")]:
                row = stop_cont(mib, a.ram.split(",")[0], a.dir, a.interval_ms / 1000, a.stop_cont_ms, a.smp)
                print(json.dumps(row) if a.json else f"{mib:4d} MiB stop/cont: paused {row['pause_ms']} ms, longest reply gap "
                      f"{row['gap_ms']} ms (beyond the pause: {round(row['gap_ms'] - row['pause_ms'], 1) if row['gap_ms'] else '-'} ms)", flush=True)
        return 0
    rows = []
    for r in range(a.rounds):
        for mib in [int(x) for x in a.mib.split(",")]:
            for ram in a.ram.split(","):
                load = os.getloadavg()[0]
                row = one_move(mib, ram, a.dir, a.port, a.interval_ms / 1000, a.smp)
                row["round"] = r + 1
                row["load1"] = round(load, 2)
                row["smp"] = a.smp
                rows.append(row)
                print(json.dumps(row) if a.json else
                      f"{mib:4d} MiB {ram:8s} {a.smp} vCPU setup {row['setup_ms']:>4} ms  downtime {row['downtime_ms']:>4} ms  "
                      f"total {row['total_ms']:>5} ms  pre-copy gap {row['precopy_gap_ms']:6.1f} ms "
                      f"(ended +{row['precopy_gap_ended_at_ms']} ms)  switchover gap {row['switchover_gap_ms']:6.1f} ms  "
                      f"gap before {row['baseline_max_gap_ms']} ms  lost {row['lost']}  load {row['load1']}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
