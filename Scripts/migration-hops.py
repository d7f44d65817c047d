#!/usr/bin/env python3
"""Per-hop CPU breakdown of the agents during tunnelled migrations (issue 18).

Reads `perf script -F comm,pid,tid,time,ip,sym,dso` output of a `perf record -g` run of
`hostmesh bench migrate` (Scripts/profile-migrate.sh makes both) and the benchmark's JSON, and
prints where the agents' CPU went while the tunnel rows ran: seal, open, the four socket hops
(kernel side), wake-ups, allocations, copies, QMP/JSON, SQLite, the rest. Seconds per GB use the
bytes the tunnel rows moved.

Windows: the benchmark runs both agents in its own process (the one with NIO threads). A tunnel
migration is the life of a source QEMU's `live_migration` thread during which that process did
AES-GCM work, widened by `--lead` seconds before (prepare, handshakes) and 0.2 s after (commit,
journal). Direct and qemu-tls rounds have no agent crypto and are left out.

usage: migration-hops.py PERF_SCRIPT BENCH_JSON FREQUENCY_HZ [--lead SECONDS]
"""
import collections
import json
import re
import sys


def parse(path):
    samples, current = [], None
    header = re.compile(r'\s*(.+?)\s+(\d+)/(\d+)\s+([\d.]+):')
    for line in open(path, errors='replace'):
        if not line.strip():
            if current:
                samples.append(current)
            current = None
        elif not line.startswith((' ', '\t')):
            m = header.match(line)
            current = (m.group(1), m.group(2), float(m.group(4)), []) if m else None
        elif current:
            parts = line.strip().split(None, 1)
            if len(parts) == 2:
                current[3].append(parts[1].rsplit(' (', 1)[0])
    if current:
        samples.append(current)
    return samples


def category(stack):
    """The hop or cost a sample belongs to, from its leaf upwards (kernel frames name the hop)."""
    leaf, joined = (stack[0] if stack else '?'), ' '.join(stack)
    if 'crypto_aead_aes256gcm_encrypt' in joined or 'crypto_aead_xchacha20poly1305_ietf_encrypt' in joined:
        return 'seal (AEAD)'
    if 'crypto_aead_aes256gcm_decrypt' in joined or 'crypto_aead_xchacha20poly1305_ietf_decrypt' in joined:
        return 'open (AEAD)'
    if 'unix_stream_recvmsg' in joined or 'unix_stream_read' in joined:
        return 'unix read (from source QEMU, kernel)'
    if 'unix_stream_sendmsg' in joined:
        return 'unix write (to destination QEMU, kernel)'
    if 'tcp_recvmsg' in joined:
        return 'TCP read (kernel)'
    if 'tcp_sendmsg' in joined or 'tcp_write_xmit' in joined or '__tcp_push_pending' in joined:
        return 'TCP write (kernel, loopback delivery included)'
    if 'asm_exc_page_fault' in joined:
        return 'page faults (fresh buffers)'
    if re.search(r'epoll_wait|futex|schedule|eventfd|finish_task_switch', joined):
        return 'wake-ups, scheduling, epoll'
    if 'JSON' in joined or 'QMP' in joined:
        return 'QMP + JSON (progress polling)'
    if 'GRDB' in joined or 'sqlite' in joined.lower() or 'fdatasync' in joined:
        return 'SQLite journal'
    if 'Logging' in joined or 'LogHandler' in joined:
        return 'logging'
    if 'entry_SYSCALL' in joined:
        return 'other system calls'
    if 'memmove' in leaf or 'memcpy' in leaf:
        return 'user-space copies (memcpy)'
    if re.search(r'malloc|free|_int_|calloc|tcache|swift_allocObject|swift_dealloc|swift_slowAlloc', leaf):
        return 'allocation (malloc/free)'
    if re.search(r'swift_retain|swift_release|swift_bridgeObject|swift_beginAccess|swift_endAccess', leaf):
        return 'Swift runtime (ARC, exclusivity)'
    if 'NIOPosix' in joined or 'NIOCore' in joined:
        return 'NIO event loop and pipeline'
    return 'other user code'


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    samples = parse(sys.argv[1])
    rows = json.load(open(sys.argv[2]))['rows']
    hz = float(sys.argv[3])
    lead = float(sys.argv[sys.argv.index('--lead') + 1]) if '--lead' in sys.argv else 0.3
    agents = collections.Counter(s[1] for s in samples if s[0].startswith('NIO-')).most_common(1)
    if not agents:
        sys.exit('no NIO threads in the profile: was it a hostmesh bench run?')
    pid = agents[0][0]

    def crypto(stack):
        return any('aes256gcm' in f or 'aesni' in f or 'xchacha20' in f for f in stack[:3])

    lives = collections.defaultdict(list)
    for s in samples:
        if s[0] == 'live_migration':
            lives[s[1]].append(s[2])
    windows = []
    for times in lives.values():
        a, b = min(times), max(times)
        if sum(1 for s in samples if s[1] == pid and a <= s[2] <= b and crypto(s[3])) > 5:
            windows.append((a - lead, b + 0.2))
    inside = [s for s in samples if s[1] == pid and any(a <= s[2] <= b for a, b in windows)]
    tunnel = [r for r in rows if r['path'] == 'tunnel']
    gb = sum(r['transferred_bytes'] for r in tunnel) / 1e9
    bench_cpu = sum((r.get('agent_cpu_s_per_gb') or 0) * r['transferred_bytes'] / 1e9 for r in tunnel)
    floor = tunnel[0].get('aead_floor_s_per_gb') if tunnel else None
    seconds = len(inside) / hz
    print(f'agents (pid {pid}): {len(windows)} tunnel migrations, {gb:.3f} GB moved; '
          f'{seconds:.2f} CPU s sampled in their windows ({bench_cpu:.2f} s by the benchmark\'s /proc figures)')
    if gb == 0 or not inside:
        return
    print(f'{"share":>6}  {"s/GB":>6}  hop or cost')
    counts = collections.Counter(category(s[3]) for s in inside)
    for name, n in counts.most_common():
        print(f'{100 * n / len(inside):5.1f}%  {n / hz / gb:6.3f}  {name}')
    print(f'{100.0:5.1f}%  {seconds / gb:6.3f}  all' + (f' ({seconds / gb / floor:.2f}x the AEAD floor of {floor:.3f} s/GB)' if floor else ''))
    threads = collections.Counter('event loops (NIO)' if s[0].startswith('NIO-') else 'Swift concurrency pool and others' for s in inside)
    print('by thread: ' + ', '.join(f'{name} {100 * n / len(inside):.1f}%' for name, n in threads.most_common()))


if __name__ == '__main__':
    main()
